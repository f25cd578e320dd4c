"""GraphSAGE training on the CPU and on a GPU, side by side, in one run.

The same cases, seed and configuration train once per device; each row reports
the training time and the AC@1 of what it trained on held-out cases (both
devices must learn the same thing, only faster or slower).  Each device first
runs one short warm-up fit, so CUDA's start-up is not billed to the GPU row.
Without a visible GPU only the CPU row is measured and ``gpu.available`` is 0.

    python benchmarks/train_device.py [--quick] [--out FILE]
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import console, parse_args, report
from x0tta6bl4.ml.evaluate import evaluate_scorer, model_scorer
from x0tta6bl4.ml.scenarios import HELDOUT_SPEC, TRAIN_SPEC, generate_dataset
from x0tta6bl4.ml.train import TrainConfig, fit, make_samples

NAME = "train_device"
JITTER_S = 3.0


def main() -> None:
    args = parse_args(NAME, __doc__.splitlines()[0])
    train_cases = generate_dataset(replace(TRAIN_SPEC, cases=200 if args.quick else 900))
    held_cases = generate_dataset(replace(HELDOUT_SPEC, cases=40 if args.quick else 240))
    train = make_samples(train_cases, JITTER_S, seed=0)
    held = make_samples(held_cases, JITTER_S, seed=7)
    config = TrainConfig(epochs=5 if args.quick else 30, layers=3)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    metrics: dict[str, Any] = {"gpu": {"available": int("cuda" in devices)}}
    for device in devices:
        fit(train[:16], replace(config, epochs=1), device=device)  # warm-up, not timed
        started = time.perf_counter()
        model, history = fit(train, config, device=device)
        seconds = time.perf_counter() - started
        ac1 = evaluate_scorer(model_scorer(model), held_cases, held)["ac1"]
        console.print(f"{device}: {seconds:.1f} s, AC@1 {ac1:.3f}")
        row = "gpu" if device == "cuda" else "cpu"
        metrics.setdefault(row, {}).update(
            train_s=seconds,
            s_per_epoch=seconds / config.epochs,
            ac1=ac1,
            final_loss=history["final_loss"],
        )
    if "cuda" in devices:
        metrics["ratio"] = {"cpu_over_gpu": metrics["cpu"]["train_s"] / metrics["gpu"]["train_s"]}
    metrics.update(
        cases={"train": len(train_cases), "heldout": len(held_cases)},
        epochs=config.epochs,
        torch_threads=torch.get_num_threads(),
    )
    notes = {
        "gpu": torch.cuda.get_device_name(0) if "cuda" in devices else "none visible",
        "torch": torch.__version__,
    }
    report(NAME, args, metrics, notes=notes)


if __name__ == "__main__":
    main()
