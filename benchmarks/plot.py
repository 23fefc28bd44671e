"""Plots of the benchmark JSON files in docs/ (run after the benchmarks).

python benchmarks/plot.py            # docs/overhead.png, docs/ray_overhead.png, docs/scheduling.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

DOCS = Path(__file__).resolve().parents[1] / "docs"


def bars(ax, labels: list[str], values: list[float], title: str, unit: str, log: bool = False) -> None:
    colors = ["#2b6cb0" if label.startswith("ALTO") else "#a0aec0" for label in labels]
    ax.barh(labels[::-1], values[::-1], color=colors[::-1])
    ax.set_title(title)
    ax.set_xlabel(unit)
    if log:
        ax.set_xscale("log")
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f" {v:,.2f}" if v < 100 else f" {v:,.0f}", va="center", fontsize=8)


def ray_plot(data: dict, out: Path) -> None:
    rows = [
        ("ALTO (TCP transport)", "alto"),
        ("ALTO (transport='ray')", "alto_ray_calls"),
        ("hand-written actors", "actors"),
        ("Ray Serve chain", "serve"),
    ]
    rows = [(label, key) for label, key in rows if key in data]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.2))
    labels = [label for label, _ in rows]
    bars(a, labels, [data[k]["hop_p50_ms"] for _, k in rows], "per-hop latency, p50 (lower is better)", "ms")
    bars(b, labels, [data[k]["items_per_s"] for _, k in rows], "items/s through 10 stages", "items/s (log)", log=True)
    fig.suptitle("RayRuntime overhead, 10 no-op stages, same Ray instance (2 cores)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def local_plot(data: dict, out: Path) -> None:
    cpu = "cpu_ms_per_request_alto" in data
    fig, axes = plt.subplots(1, 2 if cpu else 1, figsize=(12 if cpu else 7, 2.8), squeeze=False)
    labels = ["ALTO LocalRuntime (async stages)", "ALTO LocalRuntime (plain functions)", "asyncio.Queue floor"]
    values = [data["alto_us_per_hop"], data["chain_plain_functions"]["alto_us_per_hop"], data["floor_us_per_hop"]]
    bars(axes[0][0], labels, values, "µs per item per hop, 10 no-op stages (lower is better)", "µs")
    if cpu:
        blocking = data["cpu_per_request"]["blocking_functions"]
        labels = ["ALTO (async stages)", "hand-written asyncio", "ALTO (plain functions)", "hand-written + to_thread"]
        values = [
            data["cpu_ms_per_request_alto"],
            data["cpu_ms_per_request_handwritten"],
            blocking["alto_ms"],
            blocking["handwritten_ms"],
        ]
        bars(axes[0][1], labels, values, "CPU per request, fact-check shape (SIMULATED LLM)", "ms")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def scheduling_plot(runs: list[dict], out: Path) -> None:
    """One row per runtime: mean latency, P99 latency, prefix-cache hit rate by rate."""
    fig, axes = plt.subplots(len(runs), 3, figsize=(13, 3.4 * len(runs)), squeeze=False)
    colors = {"round_robin": "#a0aec0", "pow2_count": "#718096", "prompt_aware": "#2b6cb0"}
    for row, data in zip(axes, runs, strict=True):
        a, b, c = row
        for policy, color in colors.items():
            d = data[policy]
            a.plot(d["rates"], d["mean_s"], marker="o", color=color, label=policy)
            b.plot(d["rates"], d["p99_s"], marker="o", color=color, label=policy)
            if "prefix_hit_rate" in d:
                c.plot(d["rates"], [100 * h for h in d["prefix_hit_rate"]], marker="o", color=color, label=policy)
        a.axhline(data["slo_s"], color="red", linestyle="--", linewidth=0.8, label=f"target {data['slo_s']:g} s")
        where = f"{data['runtime']} runtime"
        a.set_title(f"mean latency, {where}")
        b.set_title(f"P99 latency, {where}")
        c.set_title(f"prefix cache hits, {where}")
        for ax in (a, b):
            ax.set_ylabel("s (simulated)")
            ax.set_yscale("log")
        c.set_ylabel("% of requests")
        c.set_ylim(0, 100)
        for ax in row:
            ax.set_xlabel("requests / s (Poisson)")
            ax.legend(fontsize=8)
    first = runs[0]["setting"]
    fig.suptitle(
        f"LLM stage, {first['replicas']} replicas, {first['senders']} senders, SIMULATED engines",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def paper_plot(data: dict, out: Path, heat_out: Path) -> None:
    """Latency curves of the paper experiment per placement (95% intervals shaded; the
    tail labelled P99/P90/max by what each rate's sample resolves), and the heat map of
    throughput ratios with unresolved cells marked."""
    import numpy as np

    placements = [p for p in ("shared", "dedicated") if p in data]
    colors = {"streaming": "#2b6cb0", "baseline": "#a0aec0", "barrier": "#742a2a", "langgraph": "#dd6b20"}
    fig, axes = plt.subplots(len(placements), 3, figsize=(14, 3.6 * len(placements)), squeeze=False)
    for row, placement in zip(axes, placements, strict=True):
        res = data[placement]
        panels = (
            ("mean_s", "mean latency"),
            ("tail_s", "tail latency (P99 / P90 / max)"),
            ("first_mean_s", "first verdict (mean)"),
        )
        for ax, (key, title) in zip(row, panels, strict=True):
            for name, color in colors.items():
                if name not in res:
                    continue
                curve = res[name]
                ax.plot(curve["rates"], curve[key], marker="o", color=color, label=name)
                if key + "_ci" in curve:
                    lo = [c[0] for c in curve[key + "_ci"]]
                    hi = [c[1] for c in curve[key + "_ci"]]
                    ax.fill_between(curve["rates"], lo, hi, color=color, alpha=0.15)
                if key == "tail_s":
                    for x, y, label in zip(curve["rates"], curve[key], curve["tail_label"], strict=True):
                        ax.annotate(label, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
            if key != "first_mean_s":
                target = data["slo_s"]
                ax.axhline(target, color="red", linestyle="--", linewidth=0.8, label=f"target {target:g} s")
                ax.axhline(res["ideal_mean_s"], color="green", linestyle=":", linewidth=0.8, label="ideal (mean)")
            ax.set_title(f"{placement}: {title}", fontsize=9)
            ax.set_xlabel("requests / s (Poisson)")
            ax.set_ylabel("s (simulated)")
            ax.legend(fontsize=7)
    fig.suptitle(
        f"FacTool-style fact-check, SIMULATED 7B/A100 engines, {len(data['seeds'])} arrival seeds, 95% bootstrap "
        "intervals",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    heat = data.get("shared", {}).get("heatmap")
    if not heat:
        return
    raw = heat["throughput_ratio"]
    grid = np.array([[np.nan if v is None else float(v) for v in row] for row in raw], dtype=float)
    shown = np.where(np.isfinite(grid), grid, np.nan)
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    top = float(np.nanmax(shown)) if np.isfinite(shown).any() else 3.0
    im = ax.imshow(shown, cmap="Blues", aspect="auto", vmin=0.5, vmax=max(3.0, top))
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            v = grid[i, j]
            if raw[i][j] is None:
                text = "unresolved"
            elif v == np.inf:
                text = "only\nstreaming"
            else:
                text = "neither" if np.isnan(v) else f"{v:.2f}x"
            ax.text(j, i, text, ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(heat["targets_s"])), [f"{t:g} s" for t in heat["targets_s"]])
    ax.set_yticks(range(len(heat["sentences"])), [str(c) for c in heat["sentences"]])
    ax.set_xlabel("latency target (mean)")
    ax.set_ylabel("sentences per answer")
    ax.set_title("throughput at the target: streaming / stage barriers (SIMULATED, shared pool, 1 seed)", fontsize=9)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(heat_out, dpi=110)


def main() -> None:
    plots = (("overhead", local_plot), ("ray_overhead", ray_plot))
    sched = [DOCS / "scheduling.json", DOCS / "scheduling_ray.json"]
    runs = [json.loads(p.read_text()) for p in sched if p.exists()]
    if runs:
        scheduling_plot(runs, DOCS / "scheduling.png")
        print("wrote docs/scheduling.png", file=sys.stderr)
    src = DOCS / "paper.json"
    if src.exists():
        paper_plot(json.loads(src.read_text()), DOCS / "paper.png", DOCS / "paper_heatmap.png")
        print("wrote docs/paper.png", file=sys.stderr)
    for name, plot in plots:
        src = DOCS / f"{name}.json"
        if not src.exists():
            print(f"skipping {src.name}: run benchmarks/{name}.py --out {src} first", file=sys.stderr)
            continue
        plot(json.loads(src.read_text()), DOCS / f"{name}.png")
        print(f"wrote docs/{name}.png", file=sys.stderr)


if __name__ == "__main__":
    main()
