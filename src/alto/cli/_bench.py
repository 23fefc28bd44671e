"""``alto bench``: open-loop load on any pipeline, and the paper's experiment.

alto bench run examples.pipelines:words -i inputs.jsonl --rates 5,10,20 --baseline --out w.json
alto bench paper --quick --out paper.json

``run`` uses :mod:`alto.testing`'s load generator; ``paper`` runs ``benchmarks/paper.py``,
which ships in ALTO's repository, not in the installed package, so it runs from a checkout.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from alto.cli._load import load_pipeline

bench_app = typer.Typer(no_args_is_help=True, help="Measure latency and throughput under open-loop Poisson load.")
err = Console(stderr=True)


def _rates(text: str) -> list[float]:
    try:
        rates = sorted(float(x) for x in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"--rates {text!r}: expected numbers separated by commas, e.g. 1,2,4") from None
    if not rates or rates[0] <= 0:
        raise typer.BadParameter("--rates must be positive requests per second")
    return rates


@bench_app.command("run")
def bench_run(
    target: str = typer.Argument(..., help="MODULE:NAME of a Pipeline (or a function returning one)"),
    input: Path = typer.Option(..., "--input", "-i", help="JSON lines, one input per line (cycled to --requests)"),
    rates: str = typer.Option("1,2,4,8", help="requests per second, comma-separated"),
    requests: int = typer.Option(100, help="requests per rate (the first 10% are warm-up)"),
    target_s: float = typer.Option(4.0, "--target", help="latency target in seconds"),
    runtime: str = typer.Option("local", help="local or ray"),
    baseline: bool = typer.Option(False, help="also measure the stage-by-stage baseline (streaming=False)"),
    out: Path = typer.Option(None, "--out", "-o", help="write the JSON results here"),
) -> None:
    """Poisson arrivals at each rate (the same requests in the same order at every rate);
    latency, time to first partial output, and throughput at the target."""
    from alto.testing import curve, runtime_factory, sweep

    pipeline = load_pipeline(target)
    lines = [json.loads(line) for line in input.read_text().splitlines() if line.strip()]
    if not lines:
        raise typer.BadParameter(f"{input}: no inputs")
    inputs = [lines[i % len(lines)] for i in range(requests)]
    if runtime not in ("local", "ray"):
        raise typer.BadParameter("--runtime must be local or ray")

    def factory(stream: bool) -> Any:
        return runtime_factory(lambda: pipeline, streaming=stream, runtime=runtime)

    systems = {"streaming": factory(True)}
    if baseline:
        systems["baseline"] = factory(False)
    runs, mismatches = asyncio.run(sweep(systems, inputs, _rates(rates)))
    result: dict[str, Any] = {name: curve(s, target_s) for name, s in runs.items()}
    result["identical_outputs"] = not mismatches
    _table(result, target_s)
    if out:
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        err.print(f"[dim]wrote {out}[/dim]")


def _table(result: dict[str, Any], target_s: float) -> None:
    table = Table(title="latency (s) by rate")
    table.add_column("system")
    table.add_column("rate/s", justify="right")
    for col in ("mean", "P50", "P99", "first output", "errors"):
        table.add_column(col, justify="right")
    for name, c in result.items():
        if not isinstance(c, dict):
            continue
        for i, rate in enumerate(c["rates"]):
            table.add_row(
                name,
                f"{rate:g}",
                f"{c['mean_s'][i]:.3f}",
                f"{c['p50_s'][i]:.3f}",
                f"{c['p99_s'][i]:.3f}",
                f"{c['first_mean_s'][i]:.3f}",
                str(c["errors"][i]),
            )
        err.print(
            f"{name}: throughput at mean <= {target_s:g} s: {c['throughput_at_slo']:.2f}/s "
            f"({c['throughput_at_slo_how']}); at P99 <= {target_s:g} s: {c['throughput_at_slo_p99']:.2f}/s "
            f"({c['throughput_at_slo_p99_how']})"
        )
    err.print(table)


@bench_app.command(
    "paper", context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
)
def bench_paper(ctx: typer.Context) -> None:
    """The paper's fact-check experiment on SIMULATED engines (options: --quick,
    --heatmap, --runtime ray, --out FILE; --help for all)."""
    _paper().main(list(ctx.args))


def _import_paper() -> ModuleType | None:
    try:
        return importlib.import_module("benchmarks.paper")
    except ModuleNotFoundError as exc:
        if exc.name not in ("benchmarks", "benchmarks.paper"):
            raise  # something the experiment itself imports is missing: say what
        return None


def _paper() -> ModuleType:
    """``benchmarks.paper``; from the current directory when ``benchmarks`` is not importable as is."""
    paper = _import_paper()
    if paper is None and (cwd := str(Path.cwd())) not in sys.path:
        sys.path.insert(0, cwd)
        importlib.invalidate_caches()
        paper = _import_paper()
    if paper is None:
        err.print(
            "alto bench paper: the paper's experiment ships in ALTO's repository (benchmarks/paper.py), not in "
            f"the installed package, and {Path.cwd()} has no benchmarks/paper.py. Run it from a checkout of the "
            "repository: cd there, then `alto bench paper --quick` (or `python benchmarks/paper.py --quick`).",
            style="red",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(1)
    return paper
