"""Draw a pipeline: Mermaid or Graphviz DOT, with stages, replicas and ancestry levels.

>>> import alto
>>> p = alto.Pipeline("g")
>>> _ = p.output(p.input().expand(str.split, name="words").aggregate(lambda t, ws: ws, name="back"))
>>> print(to_mermaid(p))  # doctest: +NORMALIZE_WHITESPACE
flowchart LR
  input["input<br/>input · depth 0"]
  words["words<br/>expand · depth 1 · opens level 'words'"]
  back(["back<br/>aggregate · depth 0 · closes level 'words'"])
  input --> words
  words --> back
  back --> out_back[/"output back"/]
"""

from __future__ import annotations

from alto.dataflow._pipeline import Pipeline, StageSpec

__all__ = ["describe", "to_dot", "to_mermaid"]


def describe(spec: StageSpec) -> str:
    """One line: kind, replicas, concurrency, depth and the level it opens or closes."""
    bits: list[str] = [spec.kind]
    if spec.replicas > 1:
        bits.append(f"×{spec.replicas} replicas")
    limit = spec.max_in_flight
    if limit is None or limit > 1:
        bits.append(f"concurrency {limit if limit is not None else 'unbounded'}")
    bits.append(f"depth {spec.depth}")
    if spec.kind == "expand":
        bits.append(f"opens level '{spec.levels[-1]}'")
    return " · ".join(bits)


def _closes(p: Pipeline, spec: StageSpec) -> str:
    src = p.stages[spec.inputs[0]]
    return src.levels[-1] if src.levels else "?"


def _label(p: Pipeline, spec: StageSpec) -> str:
    text = describe(spec)
    if spec.kind == "aggregate":
        text += f" · closes level '{_closes(p, spec)}'"
    return f"{spec.name}<br/>{text}"


def to_mermaid(p: Pipeline) -> str:
    """Mermaid flowchart source (paste into any Markdown viewer that renders Mermaid)."""
    lines = ["flowchart LR"]
    for spec in p.stages.values():
        label = _label(p, spec).replace('"', "'")
        shape = ('(["', '"])') if spec.kind == "aggregate" else ('["', '"]')
        lines.append(f"  {spec.name}{shape[0]}{label}{shape[1]}")
    for spec in p.stages.values():
        for port, src in enumerate(spec.inputs):
            arrow = f"-->|{'left' if port == 0 else 'right'}|" if spec.kind == "zip" else "-->"
            lines.append(f"  {src} {arrow} {spec.name}")
    for out in p.outputs:
        lines.append(f'  {out} --> out_{out}[/"output {out}"/]')
    return "\n".join(lines)


def to_dot(p: Pipeline) -> str:
    """Graphviz DOT source (``alto graph ... --format dot | dot -Tpng > g.png``)."""
    lines = [f'digraph "{p.name}" {{', "  rankdir=LR;", "  node [shape=box, fontname=Helvetica];"]
    for spec in p.stages.values():
        label = _label(p, spec).replace("<br/>", "\\n").replace('"', "'")
        shape = ", shape=ellipse" if spec.kind == "aggregate" else ""
        lines.append(f'  "{spec.name}" [label="{label}"{shape}];')
    for spec in p.stages.values():
        for src in spec.inputs:
            lines.append(f'  "{src}" -> "{spec.name}";')
    for out in p.outputs:
        lines.append(f'  "out_{out}" [label="output {out}", shape=note];')
        lines.append(f'  "{out}" -> "out_{out}";')
    lines.append("}")
    return "\n".join(lines)
