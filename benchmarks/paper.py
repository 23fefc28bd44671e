"""The paper's result: the fact-check pipeline, streaming against not (SIMULATED engines).

    python benchmarks/paper.py --quick --out /tmp/paper.json      # < 1 min
    python benchmarks/paper.py --heatmap --out docs/paper.json    # the full sweep
    python benchmarks/paper.py --runtime ray --out docs/paper_ray.json

Also ``alto bench paper``. The setting, its sources and the ideal-latency calculation
are in :mod:`alto.bench.paper`.
"""

from alto.bench.paper import main

if __name__ == "__main__":
    main()
