"""Runtimes: placement (where a replica runs) and transport (how messages reach it).

``LocalRuntime`` (embedded, the default) and ``RayRuntime`` (:mod:`alto.runtime.ray`,
imported on first use) run the same engine (:mod:`alto.engine`) behind one contract
(:class:`Runtime`).
"""

from alto.runtime._api import make_runtime, run, run_async
from alto.runtime._base import Runtime
from alto.runtime._local import LocalRuntime

__all__ = ["LocalRuntime", "Runtime", "make_runtime", "run", "run_async"]
