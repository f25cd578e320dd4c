"""Shared benchmark plumbing: arguments, environment, the table and the JSON file.

Every ``benchmarks/<name>.py`` does::

    args = parse_args("name", "what it measures")
    ...measure, running the baseline or peer in the same run...
    report("name", args, {"metric.key": value, ...}, ratios={...})

and is run as ``python benchmarks/<name>.py [--quick] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS_DIR = Path(__file__).resolve().parent / "results"
console = Console()


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process on this machine has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_percent(pids: list[int], seconds: float) -> float:
    """Mean percent of one core each process uses over the next ``seconds``."""
    before, started = {pid: process_cpu_s(pid) for pid in pids}, time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    return statistics.mean((process_cpu_s(pid) - before[pid]) / elapsed * 100 for pid in pids)


def idle_actor_cpu(seconds: float, settle_s: float = 0.0) -> float:
    """Percent of one core an async Ray actor that does nothing uses (after ``settle_s``):
    the floor under any actor's figure.  Needs a connected Ray."""
    import ray

    @ray.remote(num_cpus=0)
    class Idle:
        async def pid(self) -> int:
            return os.getpid()

    actor = Idle.remote()  # type: ignore[attr-defined]
    try:
        pid = ray.get(actor.pid.remote())
        time.sleep(settle_s)
        return cpu_percent([pid], seconds)
    finally:
        ray.kill(actor)


def parse_args(name: str, description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"benchmarks/{name}.py", description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS_DIR / f"{name}.json",
        help="where to write the JSON result",
    )
    return parser.parse_args()


def environment() -> dict[str, Any]:
    """Where the figures were measured: CPU, cores, kernel and library versions."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ray": _version("ray"),
        "torch": _version("torch"),
        "git_sha": _git_sha(),
    }


def flatten(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float | str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; leaves are numbers, or short labels
    such as ``xdp.mode = "drv"`` where the measured thing is a category."""
    flat: dict[str, float | str] = {}
    for key, value in metrics.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, full + "."))
        elif isinstance(value, bool | int | float | str):
            flat[full] = value
        else:
            raise TypeError(f"metric {full} is {type(value).__name__}, not a number or label")
    return flat


def report(
    name: str,
    args: argparse.Namespace,
    metrics: Mapping[str, Any],
    notes: Mapping[str, str] | None = None,
) -> Path:
    """Print the metrics as a table and write the JSON result; return its path."""
    flat = flatten(metrics)
    table = Table(title=f"{name}{' (quick)' if args.quick else ''}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in flat.items():
        table.add_row(key, f"{value:,.3f}" if isinstance(value, float) else str(value))
    console.print(table)
    payload: dict[str, Any] = {
        "benchmark": name,
        "quick": bool(args.quick),
        "env": environment(),
        "metrics": flat,
    }
    if notes:
        payload["notes"] = dict(notes)
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {out}")
    return out


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()
