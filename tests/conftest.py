"""Shared fixtures: the contract suite runs once per runtime in RUNTIMES."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import alto

RUNTIMES = ["local"]


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    """Name of the runtime under test (passed as ``alto.run(..., runtime=...)``)."""
    return request.param


@pytest.fixture
def make_runtime(runtime: str):
    """Construct the runtime under test for a pipeline: ``async with make_runtime(p) as rt``."""

    def make(pipeline: alto.Pipeline, **options: Any) -> alto.Runtime:
        if runtime == "local":
            return alto.LocalRuntime(pipeline, **options)
        raise AssertionError(runtime)

    return make


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


def arun(coro):
    """Run a coroutine in a fresh loop (tests stay sync, like users of alto.run)."""
    return asyncio.run(coro)
