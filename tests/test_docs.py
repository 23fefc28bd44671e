"""Every ```python block in the docs and README runs (blocks of one file share a namespace)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text())


@pytest.mark.parametrize("path", [p for p in DOCS if p.exists() and blocks(p)], ids=lambda p: p.name)
def test_doc_examples_run(path, request):
    if path.name == "ray.md":
        request.getfixturevalue("ray_cluster")  # join the suite's Ray session, not a new one
    namespace: dict = {"__name__": f"doc_{path.stem}"}
    for i, code in enumerate(blocks(path)):
        try:
            exec(compile(code, f"{path.name}[block {i}]", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{path.name} block {i} failed: {exc!r}\n{code}") from exc


def test_docs_have_examples():
    assert blocks(ROOT / "docs" / "concepts.md"), "concepts.md lost its examples"


def test_example_script_streams(monkeypatch, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("streaming_demo", ROOT / "examples" / "streaming_demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    monkeypatch.setattr(demo, "WORD_DELAY_S", 0.003)
    monkeypatch.setattr(demo, "CHECK_DELAY_S", 0.03)
    demo.main()
    out = capsys.readouterr().out
    assert "== streaming ==" in out and "baseline" in out
    assert out.count("checked (") == 8  # four sentences, in both modes
