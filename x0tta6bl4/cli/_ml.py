"""``x0tta6bl4 ml ...`` (datasets, training, evaluation, models) and ``x0tta6bl4 rca DIR``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from x0tta6bl4.cli._common import console, settings_of

__all__ = ["app", "rca"]

app = typer.Typer(
    help="Root-cause analysis models: datasets, training, evaluation.", no_args_is_help=True
)


@contextmanager
def _progress() -> Iterator[Any]:
    """A rich progress display and a ``progress(stage, done, total)`` callback into it."""
    bars = Progress(
        TextColumn("{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], completed=done, total=total)

    with bars:
        yield update


def _service(ctx: typer.Context) -> Any:
    from x0tta6bl4.ml.service import RcaService

    settings = settings_of(ctx)
    return RcaService(settings.ml, settings.data_dir)


@app.command()
def dataset(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the cases to.")],
    cases: Annotated[int, typer.Option(help="Number of cases.")] = 200,
    seed: Annotated[int, typer.Option(help="Master seed; the same seed gives the same cases.")] = 0,
    heldout: Annotated[
        bool, typer.Option(help="Use the held-out topologies (grid, ring, big Waxman).")
    ] = False,
    families: Annotated[
        str | None, typer.Option(help="Comma-separated generators, e.g. waxman,grid.")
    ] = None,
    min_nodes: Annotated[int | None, typer.Option(help="Smallest topology.")] = None,
    max_nodes: Annotated[int | None, typer.Option(help="Largest topology.")] = None,
) -> None:
    """Generate twin fault cases into OUT (one directory per case plus manifest.json)."""
    from x0tta6bl4.ml.scenarios.dataset import (
        HELDOUT_SPEC,
        TRAIN_SPEC,
        generate_dataset,
        write_dataset,
    )

    settings_of(ctx)
    spec = replace(HELDOUT_SPEC if heldout else TRAIN_SPEC, cases=cases, seed=seed)
    if families:
        spec = replace(spec, families=tuple(f.strip() for f in families.split(",") if f.strip()))
    spec = replace(
        spec, min_nodes=min_nodes or spec.min_nodes, max_nodes=max_nodes or spec.max_nodes
    )
    with _progress() as progress:
        made = generate_dataset(spec, lambda d: progress("generate", d, cases))
        write_dataset(made, out, spec, lambda d: progress("write", d, cases))
    console.print(f"wrote {cases} cases to [bold]{out}[/]")


@app.command()
def train(
    ctx: typer.Context,
    quick: Annotated[
        bool, typer.Option(help="Small dataset and few epochs (about a minute on a CPU).")
    ] = False,
    data: Annotated[
        Path | None,
        typer.Option(help="Train on this dataset directory instead of fresh twin cases."),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the number of epochs.")] = None,
    export: Annotated[
        Path | None, typer.Option(help="Also write the checkpoint to this file.")
    ] = None,
) -> None:
    """Train the GraphSAGE RCA model, score it on held-out topologies, register it as current."""
    from x0tta6bl4.ml.registry import load_checkpoint, save_checkpoint
    from x0tta6bl4.ml.scenarios.dataset import read_dataset

    service = _service(ctx)
    cases = read_dataset(data) if data else None
    with _progress() as progress:
        record = service.train(quick=quick, cases=cases, epochs=epochs, progress=progress)
    _print_metrics(f"model {record['version']} (data {record['data_hash']})", record["metrics"])
    if export:
        model, meta = load_checkpoint(record["path"])
        save_checkpoint(model, export, meta)
        console.print(f"exported to [bold]{export}[/]")


@app.command("eval")
def evaluate(
    ctx: typer.Context,
    data: Annotated[
        Path | None, typer.Option(help="Dataset directory; default: fresh held-out cases.")
    ] = None,
    cases: Annotated[
        int, typer.Option(help="Held-out cases to generate when --data is not given.")
    ] = 100,
    version: Annotated[
        str | None, typer.Option(help="Registry version; default: the current model.")
    ] = None,
    baselines: Annotated[bool, typer.Option(help="Also score random, BARO and PageRank.")] = True,
) -> None:
    """Score a model (and the baselines) on held-out cases: AC@1, AC@3, Avg@5, anomaly F1."""
    from x0tta6bl4.ml.evaluate import baseline_scorers, evaluate_scorer, model_scorer
    from x0tta6bl4.ml.rank import default_model
    from x0tta6bl4.ml.scenarios.dataset import HELDOUT_SPEC, generate_dataset, read_dataset
    from x0tta6bl4.ml.train import make_samples

    service = _service(ctx)
    if version is not None:
        model, _ = service.registry.load(version)
    else:
        model = service.analyzer().model if service.registry.current() else default_model()
    with _progress() as progress:
        if data:
            held = read_dataset(data)
        else:
            held = generate_dataset(
                replace(HELDOUT_SPEC, cases=cases), lambda d: progress("generate", d, cases)
            )
        samples = make_samples(held, 3.0, seed=7)
        rows = {"model": evaluate_scorer(model_scorer(model), held, samples)}
        progress("evaluate", 1, 4 if baselines else 1)
        if baselines:
            for i, (name, scorer) in enumerate(baseline_scorers().items(), start=2):
                rows[name] = evaluate_scorer(scorer, held, samples, threshold_logit=None)
                progress("evaluate", i, 4)
    table = Table(title=f"RCA on {len(held)} held-out cases")
    keys = ["ac1", "ac3", "avg5", "anomaly.f1"]
    table.add_column("ranker")
    for key in keys:
        table.add_column(key, justify="right")
    for name, row in rows.items():
        table.add_row(name, *(f"{row[k]:.3f}" if k in row else "-" for k in keys))
    console.print(table)


@app.command()
def models(ctx: typer.Context) -> None:
    """List the registered models; the current one is marked."""
    service = _service(ctx)
    current = service.registry.current()
    table = Table(title=f"models in {service.registry.root}")
    for col in ("version", "created", "held-out AC@1", "train s", "data hash"):
        table.add_column(col)
    for r in service.registry.records():
        mark = " *" if current and r.version == current.version else ""
        table.add_row(
            r.version + mark,
            r.created_at,
            f"{r.metrics.get('heldout.ac1', float('nan')):.3f}",
            f"{r.metrics.get('train.seconds', float('nan')):.1f}",
            r.data_hash,
        )
    console.print(table)


def rca(
    ctx: typer.Context,
    scenario: Annotated[
        Path, typer.Argument(help="A case directory (graph.json, metrics.npz, label.json).")
    ],
    start: Annotated[
        float | None, typer.Option(help="Anomaly start; default: the label's start_s.")
    ] = None,
    top: Annotated[int | None, typer.Option(help="Root causes to show.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Rank the root causes of the anomaly in a scenario directory and explain them."""
    from x0tta6bl4.ml.scenarios.case import load_case

    service = _service(ctx)
    case = load_case(scenario)
    result = service.infer(
        case.frame(), case.topology, case.label.start_s if start is None else start, top
    )
    if as_json:
        console.print_json(json.dumps(result))
        return
    console.print(f"model {result['model_version']}, anomaly start {result['anomaly_start']:g} s")
    for i, cause in enumerate(result["root_causes"], start=1):
        console.print(
            f"{i}. [bold]{cause['entity']}[/] {cause['kind']} "
            f"(p {cause['kind_confidence']:.2f}) score {cause['score']:.3f}"
        )
        console.print(f"   {cause['explanation']['text']}")
    if case.label.location is not None:
        console.print(f"labelled: {case.label.kind} at {case.label.location}")


def _print_metrics(title: str, metrics: dict[str, float]) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.3f}")
    console.print(table)
