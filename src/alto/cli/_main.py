"""The ``alto`` command: ``run``, ``graph``, ``serve``, ``bench``, and ``demo`` and ``eval`` from alto_apps.

alto demo                                   # the fact-check, streamed, then the baseline
alto run examples.pipelines:words --input in.jsonl
alto graph examples/pipelines.py:nested --format mermaid
alto eval factcheck eval/factcheck/test.jsonl --out result.json
alto bench paper --quick --out paper.json     # the paper's experiment (SIMULATED engines)

``demo`` and ``eval`` are the fact-check's commands, defined in :mod:`alto_apps.cli` and
imported only when listed or run (:class:`alto.cli._lazy.LazyGroup`).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import typer
from rich.console import Console

import alto
from alto._jsonable import to_jsonable
from alto.cli._bench import bench_app
from alto.cli._lazy import Lazy, LazyGroup
from alto.cli._load import load_pipeline
from alto.dataflow._graph import to_dot, to_mermaid

__all__ = ["app", "load_pipeline", "main"]


class _AltoGroup(LazyGroup):
    lazy = {
        "demo": Lazy("alto_apps.cli:app", before="serve"),
        "eval": Lazy("alto_apps.cli:app", before="bench"),
    }


app = typer.Typer(
    cls=_AltoGroup, add_completion=False, no_args_is_help=True, help="ALTO: streaming compound AI pipelines."
)
err = Console(stderr=True)


@app.command()
def run(
    target: str = typer.Argument(..., help="MODULE:NAME of a Pipeline (or a function returning one)"),
    input: Path = typer.Option(Path("-"), "--input", "-i", help="JSON lines, one input per line ('-' = stdin)"),
    output: Path = typer.Option(Path("-"), "--output", "-o", help="where to write JSON lines ('-' = stdout)"),
    streaming: bool = typer.Option(True, help="--no-streaming runs the stage-by-stage baseline"),
) -> None:
    """Run any pipeline over JSON-lines inputs; write one JSON line per input, in order."""
    pipeline = load_pipeline(target)
    text = sys.stdin.read() if str(input) == "-" else input.read_text()
    inputs = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                inputs.append(json.loads(line))
            except ValueError as exc:
                raise typer.BadParameter(f"{input}:{n}: not JSON ({exc}); each line must be one JSON value") from exc
    t0 = time.perf_counter()
    results = alto.run(pipeline, inputs, streaming=streaming, return_exceptions=True)
    failed = 0
    lines = []
    for x, r in zip(inputs, results, strict=True):
        if isinstance(r, alto.StageError):
            failed += 1
            lines.append(json.dumps({"input": x, "error": str(r), "stage": r.stage, "path": list(r.path)}))
        else:
            lines.append(json.dumps({"input": x, "result": to_jsonable(r)}))
    body = "\n".join(lines) + ("\n" if lines else "")
    if str(output) == "-":
        sys.stdout.write(body)
    else:
        output.write_text(body)
    err.print(f"[dim]{len(inputs)} inputs, {failed} failed, {time.perf_counter() - t0:.2f}s[/dim]")
    if failed:
        raise typer.Exit(1)


@app.command()
def graph(
    target: str = typer.Argument(..., help="MODULE:NAME of a Pipeline"),
    format: str = typer.Option("mermaid", "--format", "-f", help="mermaid or dot"),
) -> None:
    """Print the pipeline's graph: stages, replicas and ancestry levels."""
    pipeline = load_pipeline(target)
    if format not in ("mermaid", "dot"):
        raise typer.BadParameter("--format must be mermaid or dot")
    print(to_mermaid(pipeline) if format == "mermaid" else to_dot(pipeline))


@app.command()
def serve(
    target: str = typer.Argument(..., help="MODULE:NAME of a Pipeline (or a function returning one)"),
    runtime: str = typer.Option("local", help="local or ray"),
    host: str = typer.Option("127.0.0.1", help="address to bind (loopback unless you say otherwise)"),
    port: int = typer.Option(8000, help="port to listen on"),
    token: str = typer.Option(None, envvar="ALTO_TOKEN", help="bearer token required on every endpoint but /healthz"),
    max_inflight: int = typer.Option(64, help="requests run at once; more get 429 with Retry-After"),
    timeout: float = typer.Option(60.0, help="seconds per run; longer ones get 504 and are cancelled"),
    drain: float = typer.Option(30.0, help="on SIGTERM, seconds to let runs in flight finish"),
    trace: str = typer.Option(
        "off",
        help="OpenTelemetry spans per run and per item in each stage: off; console (JSON lines on stderr); "
        "on (to the tracer provider that TARGET's module configures)",
    ),
) -> None:
    """Serve a pipeline over HTTP: POST /v1/runs (JSON or Server-Sent Events), /metrics, /docs."""
    import uvicorn

    from alto.serve import create_app
    from alto.serve._server import DrainingServer

    if runtime not in ("local", "ray"):
        raise typer.BadParameter("--runtime must be local or ray")
    if trace not in ("off", "console", "on"):
        raise typer.BadParameter("--trace must be off, console or on")
    setup = None
    if trace == "console":
        from alto.engine._observe import console_tracing

        console_tracing()
        setup = console_tracing
    api = create_app(
        load_pipeline(target),
        runtime=runtime,
        token=token,
        max_inflight=max_inflight,
        timeout_s=timeout,
        drain_s=drain,
        tracing=trace != "off",
        trace_setup=setup,
    )
    err.print(f"serving {target} on http://{host}:{port} ({runtime} runtime); web view at /, API docs at /docs")
    config = uvicorn.Config(api, host=host, port=port, timeout_graceful_shutdown=math.ceil(drain), log_level="info")
    DrainingServer(config).run()


app.add_typer(bench_app, name="bench")


def main() -> None:
    app()
