"""Per-hop overhead of the LocalRuntime against hand-written asyncio.Queue chains.

Two workloads, each run by ALTO and by the floor (the same work written by hand with
bounded ``asyncio.Queue``s in the same process, the floor for Python):

* ``chain``: one request expands into N items that pass through 10 no-op async map
  stages and are counted by an aggregate (10 hops per item, plus expand/aggregate).
* ``fanout``: R requests, each a 1 -> 1,000 expand whose children are aggregated.

And CPU per request of a fact-check-shaped pipeline over a zero-delay SIMULATED engine,
ALTO against the same stages chained by hand (``benchmarks/cpu_per_request.py``; keys
``cpu_ms_per_request_alto`` and ``cpu_ms_per_request_handwritten``).

Usage::

    python benchmarks/overhead.py --out docs/overhead.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from pathlib import Path

import alto

sys.path.insert(0, str(Path(__file__).parent))
import cpu_per_request

STAGES = 10


async def noop(x: int) -> int:
    return x


async def children(n: int):
    for i in range(n):
        yield i


def count(parent: object, children: list[int]) -> int:
    return len(children)


def noop_blocking(x: int) -> int:
    return x


def chain_pipeline(n_items: int, fn=noop) -> alto.Pipeline:
    p = alto.Pipeline("chain")
    s = p.input().expand(children)
    for i in range(STAGES):
        s = s.map(fn, name=f"noop{i}")
    p.output(s.aggregate(count))
    return p


def fanout_pipeline() -> alto.Pipeline:
    p = alto.Pipeline("fanout")
    p.output(p.input().expand(children).aggregate(count))
    return p


async def alto_chain(n_items: int, fn=noop, **options) -> float:
    p = chain_pipeline(n_items, fn)
    async with alto.LocalRuntime(p, **options) as rt:
        t0 = time.perf_counter()
        result = await rt.submit(n_items)
        elapsed = time.perf_counter() - t0
    assert result == n_items, result
    return elapsed


async def floor_chain(n_items: int) -> float:
    queues = [asyncio.Queue(maxsize=256) for _ in range(STAGES + 1)]
    end = object()

    async def stage(qin: asyncio.Queue, qout: asyncio.Queue) -> None:
        while True:
            x = await qin.get()
            if x is not end:
                x = await noop(x)
            await qout.put(x)
            if x is end:
                return

    async def produce() -> None:
        async for i in children(n_items):
            await queues[0].put(i)
        await queues[0].put(end)

    async def consume() -> int:
        n = 0
        while (await queues[-1].get()) is not end:
            n += 1
        return n

    t0 = time.perf_counter()
    tasks = [asyncio.create_task(stage(queues[i], queues[i + 1])) for i in range(STAGES)]
    prod = asyncio.create_task(produce())
    n = await consume()
    elapsed = time.perf_counter() - t0
    await asyncio.gather(prod, *tasks)
    assert n == n_items
    return elapsed


async def alto_fanout(requests: int, width: int) -> float:
    async with alto.LocalRuntime(fanout_pipeline()) as rt:
        t0 = time.perf_counter()
        results = await rt.map([width] * requests)
        elapsed = time.perf_counter() - t0
    assert results == [width] * requests
    return elapsed


async def floor_fanout(requests: int, width: int) -> float:
    q: asyncio.Queue = asyncio.Queue(maxsize=256)

    async def expand(rid: int) -> None:
        async for i in children(width):
            await q.put((rid, i))
        await q.put((rid, None))

    async def aggregate() -> dict[int, int]:
        counts: dict[int, int] = {}
        done = 0
        while done < requests:
            rid, i = await q.get()
            if i is None:
                done += 1
            else:
                counts[rid] = counts.get(rid, 0) + 1
        return counts

    t0 = time.perf_counter()
    producers = [asyncio.create_task(expand(r)) for r in range(requests)]
    counts = await aggregate()
    elapsed = time.perf_counter() - t0
    await asyncio.gather(*producers)
    assert all(c == width for c in counts.values())
    return elapsed


def report(result: dict, out: Path | None) -> None:
    """Print the results as JSON, and write them to ``out`` (``--out``) if given."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")


def best(fn, *args, repeat: int) -> float:
    return min(asyncio.run(fn(*args)) for _ in range(repeat))


async def alto_chain_timed(n_items: int) -> float:
    """The chain with ``stage_metrics=True``: every item timed in every stage (``alto serve``)."""
    return await alto_chain(n_items, noop, stage_metrics=True)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=20_000, help="items through the 10-stage chain")
    ap.add_argument("--requests", type=int, default=20, help="requests in the fan-out workload")
    ap.add_argument("--width", type=int, default=1_000, help="children per request in the fan-out")
    ap.add_argument("--repeat", type=int, default=5, help="runs per measurement (best is kept)")
    ap.add_argument("--cpu-requests", type=int, default=400, help="requests in the CPU-per-request comparison")
    ap.add_argument("--out", type=Path, help="write the JSON results here")
    args = ap.parse_args(argv)

    hops = args.items * STAGES
    a_chain = best(alto_chain, args.items, repeat=args.repeat)
    f_chain = best(floor_chain, args.items, repeat=args.repeat)
    a_sync = best(alto_chain, args.items, noop_blocking, repeat=args.repeat)
    a_timed = best(alto_chain_timed, args.items, repeat=args.repeat)
    fan_items = args.requests * args.width
    a_fan = best(alto_fanout, args.requests, args.width, repeat=args.repeat)
    f_fan = best(floor_fanout, args.requests, args.width, repeat=args.repeat)

    cpu = cpu_per_request.measure(args.cpu_requests, args.repeat)

    result = {
        "alto_us_per_hop": a_chain / hops * 1e6,
        "floor_us_per_hop": f_chain / hops * 1e6,
        "ratio": a_chain / f_chain,
        "alto_item_hops_per_s": hops / a_chain,
        "floor_item_hops_per_s": hops / f_chain,
        "chain": {"stages": STAGES, "items": args.items, "alto_s": a_chain, "floor_s": f_chain},
        "chain_plain_functions": {
            "note": "the same chain with plain (blocking) no-op functions, run in worker threads",
            "alto_s": a_sync,
            "alto_us_per_hop": a_sync / hops * 1e6,
            "ratio": a_sync / f_chain,
        },
        "chain_stage_metrics": {
            "note": "the same chain with stage_metrics=True (a latency histogram per stage, as alto serve runs)",
            "alto_s": a_timed,
            "alto_us_per_hop": a_timed / hops * 1e6,
            "cost_us_per_hop": (a_timed - a_chain) / hops * 1e6,
        },
        "fanout": {
            "requests": args.requests,
            "width": args.width,
            "alto_s": a_fan,
            "floor_s": f_fan,
            "alto_us_per_item": a_fan / fan_items * 1e6,
            "floor_us_per_item": f_fan / fan_items * 1e6,
            "alto_items_per_s": fan_items / a_fan,
            "ratio": a_fan / f_fan,
        },
        **cpu,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "repeat": args.repeat,
        "note": "best of --repeat runs; one core (asyncio is single-threaded)",
    }
    report(result, args.out)
    return result


if __name__ == "__main__":
    main()
