"""The fact-check's commands, ``alto demo`` and ``alto eval factcheck``, with their rich output.

``alto`` imports this module only when one of these commands is listed or run
(:mod:`alto.cli._lazy`), so ``import alto.cli`` never imports :mod:`alto_apps`.

alto demo                                   # the fact-check, streamed, then the baseline
alto eval factcheck eval/factcheck/test.jsonl --out result.json
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

import alto
from alto.serve import to_jsonable

app = typer.Typer(add_completion=False, no_args_is_help=True, help="ALTO's applications: demo, eval.")
eval_app = typer.Typer(no_args_is_help=True, help="Measure an application on labelled data.")
app.add_typer(eval_app, name="eval")
console = Console()
err = Console(stderr=True)


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
            cited = set(v.cited)
            ev = "; ".join(f"{'[b]' * (e.id in cited)}{e.id} {e.title}{'[/b]' * (e.id in cited)}" for e in v.evidence)
            style = _STYLE.get(v.label, "white")
            t.add_row(
                f"{row['t']:.1f}s",
                row["claim"],
                f"[{style}]{v.label}[/{style}]\n[dim]{v.reason or f'score {v.evidence_score:.2f}'}[/dim]",
                ev or "-",
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
    from alto_apps.factcheck import DEFAULT_QUESTION, FactCheckConfig, build_pipeline, embedded_components

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
    counts = rep.get("counts") or {}
    console.print(
        f"\nReport: [green]{counts.get('supported', 0)} supported[/green], "
        f"[red]{counts.get('refuted', 0)} refuted[/red], "
        f"[yellow]{counts.get('not enough info', 0)} not enough info[/yellow] — score {rep.get('score', 0):.2f} "
        "(share of claims supported by FOLDOC)."
    )
    for v in rep.get("verdicts", []):
        if v["label"] == "refuted":
            console.print(f"  [red]refuted[/red] {v['claim']!r}: {v['reason']}")
    console.print(
        "[dim]Verdicts come from the evidence rule: each claim's subject is looked up in FOLDOC and its entry "
        "compared with the claim: a number, name, layer or expansion the entry gives differently, an opposite "
        "word, a denial, or a description that fits another entry better refutes it. It checks what a dictionary "
        "entry states, "
        "not arbitrary world facts; held-out accuracy in docs/factcheck_eval.md. The 135M model's own label is "
        "shown beside it and is noise. Plug a larger model in through alto.llm.OpenAICompatible with "
        "FactCheckConfig(judge='llm').[/dim]"
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
        f"embedded model: {tokens_per_s:.0f} tokens/s per engine, {getattr(llm, 'engines', 1)} llama.cpp engine(s) × "
        f"{getattr(llm, 'n_threads', 1)} thread (never more threads than cores)"
    )
    if "baseline" in runs:
        s, b = runs["streaming"], runs["baseline"]
        console.print(
            f"streaming: first verdict {b['first_verdict'] / max(s['first_verdict'] or 1e-9, 1e-9):.1f}x sooner, "
            f"total {b['total'] / s['total']:.2f}x sooner"
        )
    if json_out:
        out: dict[str, Any] = {m: {k: v for k, v in r.items() if k != "report"} for m, r in runs.items()}
        out["report"] = to_jsonable(rep)
        out["tokens_per_s"] = tokens_per_s
        json_out.write_text(json.dumps(out, indent=2))


# -- eval ------------------------------------------------------------------------------------


def _percent(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _ci(m: dict[str, Any], key: str = "accuracy") -> str:
    low, high = m[f"{key}_ci"]
    return f"[bold]{m[key]:.3f}[/bold] (95% CI {low:.2f}-{high:.2f})"


def _print_scores(m: dict[str, Any], title: str) -> None:
    from alto_apps.factcheck import LABELS

    table = Table(title=f"{title}: gold (rows) -> verdict (columns), n={m['n']}")
    table.add_column("gold")
    for label in LABELS:
        table.add_column(label, justify="right")
    table.add_column("recall", justify="right")
    for gold in LABELS:
        row = m["confusion"][gold]
        table.add_row(gold, *(str(row[p]) for p in LABELS), _percent(m["per_label"][gold]["recall"]))
    table.add_row("precision", *(_percent(m["per_label"][p]["precision"]) for p in LABELS), "", style="dim")
    console.print(table)
    console.print(f"accuracy {_ci(m)}   not-enough-info share {m['nei_share']:.3f}")


def _print_summary(result: dict[str, Any]) -> None:
    sr, absent, made = result["in_corpus"], result["absent"], result["by_construction"]
    console.print(
        f"[bold]supported/refuted claims[/bold] (subject in the corpus), n={sr['n']}: accuracy {_ci(sr)}, "
        f"refuted recall {_percent(sr['per_label']['refuted']['recall'])}, "
        f"not-enough-info share {sr['nei_share']:.3f}"
    )
    if absent["n"]:
        console.print(
            f"[bold]subject not in the corpus[/bold], n={absent['n']}: said not enough info {_ci(absent, 'nei_share')}"
        )
    if made["n"]:
        console.print(
            f"[dim]not enough info by construction (pronoun subjects), n={made['n']}, counted apart: "
            f"said not enough info {made['nei_share']:.3f}[/dim]"
        )
    for group, m in result.get("by_source", {}).items():
        c = m["in_corpus"]
        checked = f"; supported/refuted n={c['n']}, accuracy {_ci(c)}" if c["n"] else ""
        console.print(f"  {group}: n={m['n']}, accuracy {_ci(m)}{checked}")


@eval_app.command("factcheck")
def eval_factcheck(
    file: Path = typer.Argument(..., help='JSON lines {"claim": ..., "label": supported|refuted|not enough info}'),
    judge: str = typer.Option("evidence", help="evidence (the rule decides) or llm (the LLM's label decides)"),
    out: Path = typer.Option(None, "--out", "-o", help="write accuracy, confusion and per-claim records here"),
    corpus: list[Path] = typer.Option(None, help="check against these .txt/.md/.jsonl files instead of FOLDOC"),
    llm: str = typer.Option(
        "embedded", help="embedded (SmolLM2), simulated (SIMULATED engine: no model), or an OpenAI-compatible URL"
    ),
    model: str = typer.Option(None, help="model name for an OpenAI-compatible --llm URL"),
) -> None:
    """Run labelled claims through the fact-check's verification stages and score the verdicts."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from alto.llm import OpenAICompatible, Simulated
    from alto.retrieval import load_files
    from alto_apps.evaluate import read_claims, records, run_claims, score
    from alto_apps.factcheck import FactCheckConfig, build_checker, embedded_components

    if judge not in ("evidence", "llm"):
        raise typer.BadParameter("--judge must be evidence or llm")
    try:
        rows = read_claims(file)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    backend: Any = None
    if llm == "simulated":
        backend = Simulated(time_scale=0, seed=0)
        err.print("[yellow]using the SIMULATED engine: queries and the LLM's labels are synthetic[/yellow]")
    elif llm.startswith(("http://", "https://")):
        backend = OpenAICompatible(llm, model)
    elif llm != "embedded":
        raise typer.BadParameter("--llm must be embedded, simulated or an http(s):// URL")
    docs = load_files(corpus) if corpus else None
    backend, retriever, dense = embedded_components(corpus=docs, llm=backend)
    pipeline = build_checker(backend, retriever, scorer=dense, config=FactCheckConfig(judge=judge))
    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err) as progress:
        task = progress.add_task(f"checking {len(rows)} claims", total=len(rows))
        verdicts = asyncio.run(run_claims(pipeline, [r["claim"] for r in rows], lambda: progress.advance(task)))
    backend.close()
    items = records(rows, verdicts)
    result = score(rows, [it["predicted"] for it in items])
    errors = sum("error" in it for it in items)
    _print_scores(result, "all claims")
    _print_scores(result["in_corpus"], "claims whose subject is in the corpus (gold supported or refuted)")
    _print_summary(result)
    if errors:
        err.print(f"[red]{errors} claim(s) failed; counted as not enough info (see 'error' in --out)[/red]")
    if out:
        meta = {"file": str(file), "judge": judge, "llm": llm, "errors": errors}
        out.write_text(json.dumps({**result, **meta, "items": items}, indent=2, default=str) + "\n")
        console.print(f"[dim]wrote {out}[/dim]")


if __name__ == "__main__":
    app()
