"""Testing pipelines: the sequential reference interpreter, and open-loop load.

``reference_run(pipeline, inputs)`` computes what every runtime must return, one item
at a time, with none of the engine's code; ``matches_reference`` compares a runtime's
results with it. The load generator (``arrivals``, ``drive``, ``sweep``, ``curve``)
drives any system with Poisson arrivals and summarises latency and throughput.
"""

from alto.testing._load import Sample, Summary, System, arrivals, drive, summarize, throughput_at
from alto.testing._reference import (
    DROP,
    FAILED,
    Node,
    evaluate,
    expected_failures,
    matches_reference,
    reference_run,
)
from alto.testing._sweep import alto_system, compare, cpu_ms_per_request, curve, runtime_factory, sweep

__all__ = [
    "DROP",
    "FAILED",
    "Node",
    "Sample",
    "Summary",
    "System",
    "alto_system",
    "arrivals",
    "compare",
    "cpu_ms_per_request",
    "curve",
    "drive",
    "evaluate",
    "expected_failures",
    "matches_reference",
    "reference_run",
    "runtime_factory",
    "summarize",
    "sweep",
    "throughput_at",
]
