"""The ``alto`` command: ``demo``, ``run``, ``graph``.

alto demo                                   # the fact-check, streamed, then the baseline
alto run examples.pipelines:words --input in.jsonl
alto graph alto.apps.factcheck:demo_pipeline --format mermaid
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

import alto

from .graph import to_dot, to_mermaid

app = typer.Typer(add_completion=False, no_args_is_help=True, help="ALTO: streaming compound AI pipelines.")
console = Console()
err = Console(stderr=True)


def to_jsonable(value: Any) -> Any:
    """Results as JSON: dataclasses become dicts, unknown objects their repr."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def load_pipeline(target: str) -> alto.Pipeline:
    """``module:attr`` or ``path/to/file.py:attr``; ``attr`` is a Pipeline or a function
    returning one."""
    module_name, _, attr = target.partition(":")
    if not attr:
        raise typer.BadParameter(f"{target!r}: expected MODULE:NAME, e.g. examples.pipelines:words")
    try:
        if module_name.endswith(".py") or "/" in module_name:
            path = Path(module_name)
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
        else:
            sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise typer.BadParameter(f"cannot import {module_name!r}: {exc}") from exc
    obj = getattr(module, attr, None)
    if obj is None:
        raise typer.BadParameter(f"{module_name!r} has no attribute {attr!r}")
    if callable(obj) and not isinstance(obj, alto.Pipeline):
        obj = obj()
    if not isinstance(obj, alto.Pipeline):
        raise typer.BadParameter(f"{target!r} is a {type(obj).__name__}, not an alto.Pipeline")
    return obj


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


# -- demo ------------------------------------------------------------------------------------

_STYLE = {"supported": "green", "refuted": "red", "not enough info": "yellow"}


def _table(rows: dict[tuple[int, ...], dict[str, Any]], title: str) -> Table:
    t = Table(title=title, expand=True, show_lines=False)
    t.add_column("t", justify="right", width=6)
    t.add_column("claim (as generated)", ratio=3)
    t.add_column("verdict", width=16)
    t.add_column("evidence (FOLDOC)", ratio=2)
    t.add_column("LLM judge said", ratio=1)
    for _, row in sorted(rows.items()):
        v = row.get("verdict")
        if v is None:
            t.add_row(f"{row['t']:.1f}s", row["claim"], "[dim]checking...[/dim]", "", "")
        else:
            ev = "; ".join(f"{e.id} {e.title} ({e.similarity:.2f})" for e in v.evidence) or "-"
            style = _STYLE.get(v.label, "white")
            t.add_row(
                f"{row['t']:.1f}s",
                row["claim"],
                f"[{style}]{v.label}[/{style}]\n[dim]score {v.evidence_score:.2f}[/dim]",
                ev,
                v.llm_text or "-",
            )
    return t


async def _demo_once(pipeline: alto.Pipeline, question: str, streaming: bool, live: bool) -> dict[str, Any]:
    rows: dict[tuple[int, ...], dict[str, Any]] = {}
    first_claim = first_verdict = None
    report: Any = None
    label = "streaming" if streaming else "baseline: streaming=False"
    t0 = time.perf_counter()
    with Live(_table(rows, label), console=console, refresh_per_second=8, transient=False) if live else _Null() as view:
        async with alto.LocalRuntime(pipeline, streaming=streaming) as rt:
            async for ev in rt.stream(question):
                now = time.perf_counter() - t0
                if ev.stage == "claims":
                    first_claim = first_claim if first_claim is not None else now
                    rows[ev.path] = {"t": now, "claim": ev.value["claim"]}
                elif ev.stage == "verdicts":
                    first_verdict = first_verdict if first_verdict is not None else now
                    rows.setdefault(ev.path, {"t": now, "claim": ev.value.claim})["verdict"] = ev.value
                elif ev.final:
                    report = ev.value
                if live:
                    view.update(_table(rows, label))
    total = time.perf_counter() - t0
    return {"first_claim": first_claim, "first_verdict": first_verdict, "total": total, "report": report}


async def _engine_speed(llm: Any, tokens: int = 64) -> float:
    """Tokens per second of one engine generating alone (after the prompt is read)."""
    first = None
    n = 0
    async for _ in llm.stream("Write a long paragraph about computer networks.", max_tokens=tokens):
        n += 1
        first = first or time.perf_counter()
    if first is None or n < 2:
        return 0.0
    return (n - 1) / (time.perf_counter() - first)


class _Null:
    def __enter__(self) -> _Null:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def update(self, *_: Any) -> None:
        return None


@app.command()
def demo(
    question: str = typer.Option(None, "--question", "-q", help="the question to answer and fact-check"),
    baseline: bool = typer.Option(True, help="also run with streaming=False and compare"),
    max_claims: int = typer.Option(5, help="claims to check"),
    json_out: Path = typer.Option(None, "--json", help="write timings and the report here"),
) -> None:
    """Fact-check an LLM answer against FOLDOC on the embedded default (no server, no network)."""
    from .apps.factcheck import DEFAULT_QUESTION, FactCheckConfig, build_pipeline, embedded_components

    question = question or DEFAULT_QUESTION
    console.rule("[bold]ALTO fact-check demo[/bold] — embedded: SmolLM2-135M (llama.cpp) + FOLDOC (BM25 + MiniLM)")
    t = time.perf_counter()
    llm, retriever, dense = embedded_components()
    console.print(
        f"[dim]components ready in {time.perf_counter() - t:.1f}s: {llm!r}, {len(dense.docs):,} FOLDOC entries[/dim]"
    )
    console.print(f"[bold]Question:[/bold] {question}\n")
    pipeline = build_pipeline(llm, retriever, scorer=dense, config=FactCheckConfig(max_claims=max_claims))
    asyncio.run(_demo_once(pipeline, "warm-up: what is a byte?", True, live=False))  # load engines, warm caches
    tokens_per_s = asyncio.run(_engine_speed(llm))
    runs = {"streaming": asyncio.run(_demo_once(pipeline, question, True, live=True))}
    if baseline:
        console.print(
            "\n[bold]Same question, streaming=False[/bold] (each stage waits for the whole output before it):"
        )
        runs["baseline"] = asyncio.run(_demo_once(pipeline, question, False, live=True))
    rep = runs["streaming"]["report"] or {}
    console.print(
        f"\nReport: {rep.get('counts')} — score {rep.get('score', 0):.2f} "
        "(share of claims supported by FOLDOC evidence)."
    )
    console.print(
        "[dim]Verdicts come from the evidence score (cosine similarity of claim and FOLDOC entry, threshold "
        f"{FactCheckConfig().support_threshold}); the 135M model's own judgement is shown beside it and is not "
        "reliable. Plug a larger model in through alto.llm.OpenAICompatible with FactCheckConfig(judge='llm').[/dim]"
    )
    table = Table(title="timings (same question, same process)")
    table.add_column("mode")
    table.add_column("first claim", justify="right")
    table.add_column("first verdict", justify="right")
    table.add_column("total", justify="right")
    for mode, r in runs.items():
        fmt = lambda x: f"{x:.2f}s" if x is not None else "-"  # noqa: E731
        table.add_row(mode, fmt(r["first_claim"]), fmt(r["first_verdict"]), fmt(r["total"]))
    console.print(table)
    console.print(
        f"embedded model: {tokens_per_s:.0f} tokens/s per engine, {llm.engines} llama.cpp engine(s) × "
        f"{llm.n_threads} thread (never more threads than cores)"
    )
    if "baseline" in runs:
        s, b = runs["streaming"], runs["baseline"]
        console.print(
            f"streaming: first verdict {b['first_verdict'] / max(s['first_verdict'] or 1e-9, 1e-9):.1f}x sooner, "
            f"total {b['total'] / s['total']:.2f}x sooner"
        )
    if json_out:
        out = {m: {k: v for k, v in r.items() if k != "report"} for m, r in runs.items()}
        out["report"] = to_jsonable(rep)
        out["tokens_per_s"] = tokens_per_s
        json_out.write_text(json.dumps(out, indent=2))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
