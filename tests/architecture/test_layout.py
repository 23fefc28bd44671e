"""The architecture, checked: the public line, the layers, no import circles.

DESIGN.md's layout is enforced here rather than described only: ``alto.__all__`` is
pinned (httpx's exported-members test), implementation modules are private, arrows
between the packages point down only, no module imports another that (directly or
not) imports it back -- at module level or inside a function -- and ``import alto``
loads no application, benchmark or optional dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import alto

SRC = Path(__file__).resolve().parents[2] / "src"

# The names users and outside tests import (DESIGN.md's contract, plus additions).
EXPORTED = [
    "AltoError",
    "AsyncClient",
    "Client",
    "Event",
    "ItemContext",
    "LocalRuntime",
    "Pipeline",
    "PipelineError",
    "PowerOfTwo",
    "PromptAware",
    "RayRuntime",
    "Rendezvous",
    "RequestTimeout",
    "RoundRobin",
    "Router",
    "Runtime",
    "ServerError",
    "StageError",
    "StageOptions",
    "StageSpec",
    "StageStartError",
    "Stream",
    "current",
    "run",
    "run_async",
]


def test_all_is_pinned():
    assert alto.__all__ == EXPORTED
    for name in EXPORTED:
        assert getattr(alto, name) is not None


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module of ours that ``name`` imports, at module level or in a function
    (``from pkg import sub`` counts as importing ``pkg.sub`` when that is a module)."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            if t in MODULES and t != name:
                found.add(t)
    # TYPE_CHECKING imports are not executed: they cannot make a circle at run time,
    # but they are still edges of the design, so they stay in.
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_no_import_circle():
    """Tarjan's strongly connected components over the import graph: none larger than one.

    A package's ``__init__`` importing its own submodules is the package being assembled,
    not a circle; a submodule importing its own package's ``__init__`` (or an ancestor's)
    would be one, and is counted.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def edges(n: str) -> set[str]:
        return GRAPH[n]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_no_module_imports_its_own_package():
    """Inside a package, modules import their siblings, never the package's ``__init__``
    (which imports them: a circle that works only in one import order)."""
    bad = sorted((n, t) for n, ts in GRAPH.items() for t in ts if t in _parents(n) and t != "alto")
    assert not bad, bad


# Arrows point down only. Each package may import the packages listed for it (and the
# shared leaves: alto.errors, alto._jsonable); nothing else of ALTO's.
LAYERS = {
    "alto.dataflow": set(),
    "alto.routing": {"alto.dataflow"},
    "alto.engine": {"alto.dataflow", "alto.routing"},
    "alto.runtime": {"alto.dataflow", "alto.routing", "alto.engine"},
    "alto.llm": {"alto.engine", "alto.routing"},
    "alto.retrieval": set(),
    "alto.testing": {"alto.dataflow", "alto.engine", "alto.runtime", "alto"},
    "alto.serve": {"alto.dataflow", "alto.engine", "alto.runtime"},
    "alto.cli": {
        "alto",
        "alto.dataflow",
        "alto.engine",
        "alto.runtime",
        "alto.serve",
        "alto.testing",
        "alto.llm",
        "alto.retrieval",
    },
}
LEAVES = {"alto.errors", "alto._jsonable"}


def _package(module: str) -> str:
    for pkg in LAYERS:
        if module == pkg or module.startswith(pkg + "."):
            return pkg
    return module


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_arrows_point_down(package):
    allowed = LAYERS[package] | LEAVES | {package}
    wrong = sorted(
        (n, t)
        for n, ts in GRAPH.items()
        if _package(n) == package
        for t in ts
        if t.startswith("alto") and not t.startswith("alto_apps") and _package(t) not in allowed
    )
    assert not wrong, f"{package} imports what it must not: {wrong}"


def test_alto_imports_no_app_or_benchmark():
    wrong = sorted(
        (n, t)
        for n, ts in GRAPH.items()
        if n == "alto" or n.startswith("alto.")
        for t in ts
        if t.startswith(("alto_apps", "benchmarks"))
    )
    assert not wrong, wrong


def test_implementation_modules_are_private():
    """Every module under a subpackage is ``_private``, except the packages themselves
    and the public testing helpers (``alto.testing``, ``alto.serve.testing``)."""
    public_ok = {"alto.errors", "alto.serve.testing"}
    wrong = [
        n
        for n, path in MODULES.items()
        if n.startswith("alto.")
        and path.name != "__init__.py"
        and not n.split(".")[-1].startswith("_")
        and n not in public_ok
    ]
    assert not wrong, wrong


def test_import_alto_loads_no_app_benchmark_or_optional_dependency():
    code = (
        "import sys, alto, alto.engine, alto.routing, alto.dataflow, alto.runtime, alto.runtime.ray\n"
        "alto.RayRuntime\n"
        "heavy = ['ray', 'fastapi', 'httpx', 'llama_cpp', 'torch', 'sentence_transformers', 'openai',\n"
        "         'opentelemetry', 'prometheus_client', 'langgraph', 'alto_apps', 'benchmarks', 'bm25s', 'faiss']\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_py_typed_ships():
    assert (SRC / "alto" / "py.typed").exists()
    assert (SRC / "alto_apps" / "py.typed").exists()


def test_router_names_agree_between_description_and_registry():
    """dataflow checks ``router=`` by name without importing routing; the two tables agree."""
    from alto.dataflow._functions import ROUTER_POLICIES
    from alto.routing._registry import _BY_NAME

    assert {name: cls.keyed for name, cls in _BY_NAME.items()} == ROUTER_POLICIES


def test_each_stage_option_is_declared_once():
    """StageOptions (the typed keywords) and StageSpec's fields name the same options."""
    import dataclasses

    from alto.dataflow import StageOptions, StageSpec

    structure = {"name", "kind", "fn", "inputs", "depth", "levels"}
    spec_options = {f.name for f in dataclasses.fields(StageSpec)} - structure
    assert set(StageOptions.__annotations__) - {"name"} == spec_options


def test_a_client_does_not_load_the_server():
    code = "import sys, alto\nalto.Client, alto.AsyncClient\nprint('fastapi' in sys.modules, 'httpx' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["False", "True"], out.stdout + out.stderr
