"""Shared fixtures: the contract suite runs once per runtime in RUNTIMES."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import pytest

import alto

RUNTIMES = ["local", "ray"]

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # bind Ray to loopback
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="session")
def ray_cluster():
    """One Ray session for the whole suite: a simulated 3-node cluster on this machine.

    The head has 4 logical CPUs; two workers carry custom resources ("zone_a",
    "zone_b") so that placement can be tested.
    """
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 4, "resources": {"head": 1}, "include_dashboard": False},
    )
    nodes = {
        "zone_a": cluster.add_node(num_cpus=2, resources={"zone_a": 4}),
        "zone_b": cluster.add_node(num_cpus=2, resources={"zone_b": 4}),
    }
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    cluster.named_nodes = nodes
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    """Name of the runtime under test (passed as ``alto.run(..., runtime=...)``)."""
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    return request.param


@pytest.fixture
def make_runtime(runtime: str):
    """Construct the runtime under test for a pipeline: ``async with make_runtime(p) as rt``."""

    def make(pipeline: alto.Pipeline, **options: Any) -> alto.Runtime:
        if runtime == "local":
            return alto.LocalRuntime(pipeline, **options)
        from alto.runtime.ray import RayRuntime

        return RayRuntime(pipeline, **options)

    return make


def local_only(runtime: str, why: str) -> None:
    """Skip a check that observes this process's memory (stages run elsewhere on Ray)."""
    if runtime != "local":
        pytest.skip(f"local-runtime internals: {why}")


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Every test must stop the threads it started (runtimes own their thread pools)."""
    before = set(threading.enumerate())
    yield
    for _ in range(100):
        extra = [t for t in threading.enumerate() if t not in before and t.name.startswith("alto-")]
        if not extra:
            return
        threading.Event().wait(0.02)
    raise AssertionError(f"threads left running: {extra}")


@pytest.fixture(scope="session")
def llama():
    """The real embedded model, shared by the suite: one engine, one thread (the other
    core stays free for the OpenAI-compatible server test's process)."""
    from alto.llm import LlamaCpp

    llm = LlamaCpp(engines=1, n_threads=1)
    yield llm
    llm.close()


@pytest.fixture(scope="session")
def foldoc():
    """FOLDOC documents (fetched once into the data folder)."""
    from alto.retrieval import load_foldoc

    return load_foldoc()


@pytest.fixture(scope="session")
def foldoc_bm25(foldoc):
    from alto.retrieval import BM25

    return BM25(foldoc)


@pytest.fixture(scope="session")
def mail_subset(foldoc):
    """A small FOLDOC subset (mail and networking entries plus others) for dense tests."""
    known = {"Simple Mail Transfer Protocol", "Internet Message Access Protocol", "Post Office Protocol"}
    keep = [d for d in foldoc if d.title in known or "garbage collection" in d.title]
    keep += [d for d in foldoc if any(w in d.text.lower() for w in ("mail", "protocol"))][:400]
    others = foldoc[:: max(1, len(foldoc) // 300)]
    seen, docs = set(), []
    for d in keep + others:
        if d.id not in seen:
            seen.add(d.id)
            docs.append(d)
    return docs


@pytest.fixture(scope="session")
def subset_dense(mail_subset, tmp_path_factory):
    from alto.retrieval import Dense

    return Dense(mail_subset, cache=tmp_path_factory.mktemp("dense"))


def arun(coro):
    """Run a coroutine in a fresh loop (tests stay sync, like users of alto.run)."""
    return asyncio.run(coro)


def letters(texts: list[str]) -> Any:
    """A toy embedding (letter counts): deterministic, no model, for custom-label tests."""
    import numpy

    out = numpy.zeros((len(texts), 26), dtype="float32")
    for i, t in enumerate(texts):
        for ch in t.lower():
            if "a" <= ch <= "z":
                out[i, ord(ch) - 97] += 1
    return out / numpy.maximum(numpy.linalg.norm(out, axis=1, keepdims=True), 1e-9)
