"""Map-reduce summarisation: the LLM streams an outline, each section is summarised as
it appears, then the section summaries are combined.

    document -> outline (LLM, a list, split as it is generated)
             -> per section: summary (LLM, given the document and the section title)
             -> sections gathered in outline order -> final summary (LLM)

Section summaries are partial outputs: a reader sees the first one while the outline is
still being written.

>>> import alto
>>> from alto.llm import Simulated
>>> p = build_pipeline(Simulated(time_scale=0, seed=2), max_sections=3)
>>> [out] = alto.run(p, ["SMTP sends mail. IMAP reads it. POP downloads it."])
>>> 1 <= len(out["sections"]) <= 3 and bool(out["summary"])
True
"""

from __future__ import annotations

from typing import Any

import alto
from alto.llm import LLM, generate, generate_split

__all__ = ["build_pipeline"]

OUTLINE_PROMPT = "List the {n} main topics of this document, one per line.\n\n{doc}"
SECTION_PROMPT = "Summarise what this document says about '{title}' in two sentences.\n\n{doc}"
COMBINE_PROMPT = "Combine these section summaries into one paragraph.\n\n{sections}"


def outline_prompt(doc: str, n: int) -> str:
    return OUTLINE_PROMPT.format(n=n, doc=doc)


def section_prompt(item: dict[str, str]) -> str:
    return SECTION_PROMPT.format(**item)


def combine_prompt(gathered: dict[str, Any]) -> str:
    return COMBINE_PROMPT.format(sections="\n".join(f"- {s['title']}: {s['summary']}" for s in gathered["sections"]))


def build_pipeline(
    llm: LLM, *, max_sections: int = 5, section_tokens: int = 80, summary_tokens: int = 160, replicas: int = 1
) -> alto.Pipeline:
    """The map-reduce summariser; outputs each section summary and the final summary."""
    outline = generate_split(
        llm,
        lambda doc: outline_prompt(doc, max_sections),
        "list",
        max_tokens=16 * max_sections,
        max_parts=max_sections,
        transform=lambda title, doc: {"doc": doc, "title": title},
        name="outline",
    )
    section = generate(
        llm,
        section_prompt,
        max_tokens=section_tokens,
        parse=lambda text, item: {"title": item["title"], "summary": text.strip()},
        name="section",
    )

    def gather(doc: str, sections: list[dict[str, str]]) -> dict[str, Any]:
        return {"doc": doc, "sections": sections}

    combine = generate(
        llm,
        combine_prompt,
        max_tokens=summary_tokens,
        parse=lambda text, g: {"sections": g["sections"], "summary": text.strip()},
        name="combine",
    )

    p = alto.Pipeline("summarize")
    summaries = p.input().expand(outline, name="outline").map(section, replicas=replicas, name="sections")
    p.output(summaries)  # partial outputs: each section summary as it is ready
    p.output(summaries.aggregate(gather, name="gather").map(combine, name="summary"))
    return p
