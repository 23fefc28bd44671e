"""The Ray runtime: every replica an actor, the same engine as the local runtime.

Importing this package does not import Ray; Ray is imported when a runtime starts.
"""

from alto.runtime.ray._runtime import RayRuntime, ray_init

__all__ = ["RayRuntime", "ray_init"]
