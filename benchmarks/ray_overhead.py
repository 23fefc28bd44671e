"""RayRuntime overhead against a hand-written Ray actor chain and a Ray Serve chain.

All three run in the same process on the same Ray instance:

* **alto**: ``RayRuntime`` with 10 no-op async ``map`` stages (each an actor), items on
  direct TCP connections between replicas (the default ``transport="tcp"``);
* **alto_ray_calls**: the same with ``transport="ray"`` (items as Ray actor calls);
* **actors**: 10 hand-written async actors, each forwarding to the next
  (latency: one item per call; throughput: batches of 64, like ALTO);
* **serve**: 10 Ray Serve deployments chained with ``DeploymentHandle`` streaming
  (each deployment iterates the previous one's stream and yields every item).

Per-hop latency: the end-to-end latency of one item through the 10-stage chain minus
that through a 0-stage chain, divided by 10 (p50 and p99 over ``--samples`` items).
Throughput: items per second through the 10-stage chain, and for ALTO also the
1 -> 1,000 expand + aggregate.

    python benchmarks/ray_overhead.py --out docs/ray_overhead.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray
from overhead import (  # same folder: the same no-op stage functions
    STAGES,
    chain_pipeline,
    fanout_pipeline,
    noop,
    report,
)

import alto
from alto.runtime.ray import RayRuntime, ray_init


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def summary(lat_chain: list[float], lat_empty: list[float], hops: int) -> dict[str, float]:
    return {
        "e2e_p50_ms": pct(lat_chain, 0.5) * 1e3,
        "e2e_p99_ms": pct(lat_chain, 0.99) * 1e3,
        "hop_p50_ms": max(pct(lat_chain, 0.5) - pct(lat_empty, 0.5), 0) / hops * 1e3,
        "hop_p99_ms": max(pct(lat_chain, 0.99) - pct(lat_empty, 0.5), 0) / hops * 1e3,
    }


# -- ALTO -----------------------------------------------------------------------------------


def chain(n_stages: int) -> alto.Pipeline:
    p = alto.Pipeline(f"chain{n_stages}")
    s = p.input()
    for i in range(n_stages):
        s = s.map(noop, name=f"noop{i}")
    p.output(s)
    return p


async def alto_latency(n_stages: int, samples: int, transport: str) -> list[float]:
    async with RayRuntime(chain(n_stages), transport=transport) as rt:
        for _ in range(20):
            await rt.submit(1)
        out = []
        for i in range(samples):
            t0 = time.perf_counter()
            assert await rt.submit(i) == i
            out.append(time.perf_counter() - t0)
        return out


async def alto_throughput(items: int, transport: str) -> float:
    async with RayRuntime(chain_pipeline(items), transport=transport) as rt:
        await rt.submit(100)
        t0 = time.perf_counter()
        assert await rt.submit(items) == items
        return items / (time.perf_counter() - t0)


async def alto_fanout(requests: int, width: int, transport: str) -> float:
    async with RayRuntime(fanout_pipeline(), transport=transport) as rt:
        await rt.submit(10)
        t0 = time.perf_counter()
        assert await rt.map([width] * requests) == [width] * requests
        return requests * width / (time.perf_counter() - t0)


# -- hand-written actors ---------------------------------------------------------------------


@ray.remote(num_cpus=0)
class Hop:
    def __init__(self, nxt: Any = None) -> None:
        self.nxt = nxt

    async def push(self, batch: list[Any]) -> Any:
        batch = [await noop(x) for x in batch]
        if self.nxt is None:
            return len(batch)
        return await self.nxt.push.remote(batch)


def actor_chain(n: int) -> Any:
    head = Hop.remote(None)
    for _ in range(n - 1):
        head = Hop.remote(head)
    return head


async def actors_latency(n_stages: int, samples: int) -> list[float]:
    if n_stages == 0:
        sink = Hop.remote(None)
        call = lambda i: sink.push.remote([i])  # noqa: E731 - the unavoidable single call
    else:
        head = actor_chain(n_stages)
        call = lambda i: head.push.remote([i])  # noqa: E731
    for _ in range(20):
        await call(0)
    out = []
    for i in range(samples):
        t0 = time.perf_counter()
        await call(i)
        out.append(time.perf_counter() - t0)
    return out


async def actors_throughput(items: int, batch: int = 64) -> float:
    head = actor_chain(STAGES)
    await head.push.remote([0])
    t0 = time.perf_counter()
    pending = [head.push.remote(list(range(i, min(i + batch, items)))) for i in range(0, items, batch)]
    total = sum(await asyncio.gather(*pending))
    assert total == items
    return items / (time.perf_counter() - t0)


# -- Ray Serve ---------------------------------------------------------------------------------


def serve_chain(n: int) -> Any:
    from ray import serve

    @serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000)
    class Source:
        async def __call__(self, n_items: int):
            for i in range(n_items):
                yield i

    @serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000)
    class Stage:
        def __init__(self, upstream: Any) -> None:
            self.up = upstream.options(stream=True)

        async def __call__(self, n_items: int):
            async for x in self.up.remote(n_items):
                yield await noop(x)

    app = Source.bind()
    for i in range(n):
        app = Stage.options(name=f"Stage{i}").bind(app)
    return serve.run(app, name=f"chain{n}", route_prefix=None).options(stream=True)


async def serve_latency(handle: Any, samples: int) -> list[float]:
    async def one() -> None:
        async for _ in handle.remote(1):
            pass

    for _ in range(10):
        await one()
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        await one()
        out.append(time.perf_counter() - t0)
    return out


async def serve_throughput(handle: Any, items: int) -> float:
    t0 = time.perf_counter()
    n = 0
    async for _ in handle.remote(items):
        n += 1
    assert n == items
    return items / (time.perf_counter() - t0)


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=200, help="single-item requests for latency")
    ap.add_argument("--items", type=int, default=20_000, help="items through the chain for throughput")
    ap.add_argument("--serve-items", type=int, default=2_000, help="items through the Serve chain (slower)")
    ap.add_argument("--requests", type=int, default=20, help="requests in the 1 -> 1,000 fan-out")
    ap.add_argument("--no-serve", action="store_true", help="skip the Ray Serve comparison")
    ap.add_argument("--out", type=Path, help="write the JSON results here")
    args = ap.parse_args(argv)

    ray_init(num_cpus=os.cpu_count())
    print(f"Ray {ray.__version__} on {os.cpu_count()} cores; {STAGES}-stage no-op chain", file=sys.stderr)
    result: dict[str, Any] = {"stages": STAGES, "python": sys.version.split()[0], "machine": platform.machine()}

    for key, transport in (("alto", "tcp"), ("alto_ray_calls", "ray")):
        print(f"alto (transport={transport}) ...", file=sys.stderr)
        a10 = asyncio.run(alto_latency(STAGES, args.samples, transport))
        a0 = asyncio.run(alto_latency(0, args.samples, transport))
        result[key] = {
            **summary(a10, a0, STAGES),
            "items_per_s": asyncio.run(alto_throughput(args.items, transport)),
            "fanout_items_per_s": asyncio.run(alto_fanout(args.requests, 1000, transport)),
        }
    print("hand-written actors ...", file=sys.stderr)
    h10 = asyncio.run(actors_latency(STAGES, args.samples))
    h0 = asyncio.run(actors_latency(0, args.samples))
    result["actors"] = {**summary(h10, h0, STAGES), "items_per_s": asyncio.run(actors_throughput(args.items))}
    if not args.no_serve:
        from ray import serve

        print("ray serve ...", file=sys.stderr)
        h = serve_chain(STAGES)
        s10 = asyncio.run(serve_latency(h, args.samples))
        s_tput = asyncio.run(serve_throughput(h, args.serve_items))
        h0 = serve_chain(0)
        s0 = asyncio.run(serve_latency(h0, args.samples))
        result["serve"] = {**summary(s10, s0, STAGES), "items_per_s": s_tput}
        serve.shutdown()
    result["ratios"] = {
        "alto_vs_actors_items_per_s": result["alto"]["items_per_s"] / result["actors"]["items_per_s"],
        "actors_vs_alto_hop_p50": result["actors"]["hop_p50_ms"] / max(result["alto"]["hop_p50_ms"], 1e-9),
    }
    if "serve" in result:
        result["ratios"]["alto_vs_serve_items_per_s"] = result["alto"]["items_per_s"] / result["serve"]["items_per_s"]
        result["ratios"]["serve_vs_alto_hop_p50"] = result["serve"]["hop_p50_ms"] / max(
            result["alto"]["hop_p50_ms"], 1e-9
        )
    result["note"] = "same process, same Ray instance; 2-core machine: actors share cores, so absolute times are noisy"
    report(result, args.out)
    return result


if __name__ == "__main__":
    main()
