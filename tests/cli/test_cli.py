"""The alto command: run (JSON lines in and out) and graph (Mermaid / DOT)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from alto.cli import app

ROOT = Path(__file__).resolve().parents[2]  # the repository root (this file is tests/cli/)
runner = CliRunner(env={"COLUMNS": "300", "NO_COLOR": "1"})


def test_run_jsonl(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('"SMTP moves mail. IMAP reads it."\n\n"One."\n')
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["run", f"{ROOT}/examples/pipelines.py:nested", "-i", str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == [
        {"input": "SMTP moves mail. IMAP reads it.", "result": [14, 12]},
        {"input": "One.", "result": [4]},
    ]


def test_run_reports_failures_and_bad_input(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('"ok"\n42\n')
    result = runner.invoke(app, ["run", f"{ROOT}/examples/pipelines.py:words", "-i", str(src)])
    assert result.exit_code == 1
    lines = [json.loads(x) for x in result.stdout.strip().splitlines()]
    assert lines[0]["result"] == 1
    assert lines[1]["stage"] == "split" and "TypeError" in lines[1]["error"]
    src.write_text("not json\n")
    bad = runner.invoke(app, ["run", f"{ROOT}/examples/pipelines.py:words", "-i", str(src)])
    assert bad.exit_code != 0 and "not JSON" in bad.output


def test_run_bad_target():
    result = runner.invoke(app, ["run", "no_such_module_xyz:p", "-i", "-"], input="")
    assert result.exit_code != 0 and "cannot import" in result.output


def test_graph_mermaid_and_dot():
    m = runner.invoke(app, ["graph", f"{ROOT}/examples/pipelines.py:nested"])
    assert m.exit_code == 0
    assert m.stdout.startswith("flowchart LR")
    assert "opens level 'words'" in m.stdout and "closes level 'words'" in m.stdout
    assert "×2 replicas" in m.stdout
    d = runner.invoke(app, ["graph", f"{ROOT}/examples/pipelines.py:nested", "--format", "dot"])
    assert d.exit_code == 0 and d.stdout.startswith('digraph "nested"') and '"sentences" -> "words"' in d.stdout
