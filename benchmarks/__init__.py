"""ALTO's benchmarks: every figure in ``docs/`` and the baselines it is measured against.

Scripts (``python benchmarks/<name>.py --help``): ``paper`` (the paper's experiment, also
``alto bench paper``), ``scheduling``, ``apps``, ``overhead``, ``ray_overhead``,
``cpu_per_request``, ``real_model``, ``plot``. Modules they share: ``paper_model`` (the
paper's pipeline and setting on SIMULATED engines) and ``langgraph_apps`` (the same
pipelines written in LangGraph). They use ALTO's public API like any user.
"""
