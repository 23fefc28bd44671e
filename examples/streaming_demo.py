"""Partial outputs streaming between stages, with no model and no server.

A *simulated* writer (a stand-in for an LLM, labelled as such) produces an answer one
word at a time; sentence splitting as ``alto.llm.Sentences`` does it turns the stream into sentences, and each
sentence is "checked" (a slow stage) while the writer is still writing. The same
pipeline then runs with ``streaming=False`` (each stage waits for the whole output
before the next starts) so you can compare.

    python examples/streaming_demo.py
"""

from __future__ import annotations

import asyncio
import time

import alto

ANSWER = (
    "SMTP moves mail between servers. IMAP lets a client read mail kept on a server. "
    "POP3 downloads mail and usually deletes it from the server. DNS MX records say "
    "which host accepts mail for a domain."
)
WORD_DELAY_S = 0.03  # simulated generation speed: ~33 words per second
CHECK_DELAY_S = 0.25  # simulated verification time per sentence


async def simulated_writer(question: str):
    """SIMULATED generator: yields the answer word by word, with a fixed delay."""
    for word in ANSWER.split():
        await asyncio.sleep(WORD_DELAY_S)
        yield word + " "


async def sentences(question: str):
    """Expand: emit each sentence the moment its last word has been generated."""
    buf = ""
    async for token in simulated_writer(question):
        buf += token
        if buf.rstrip().endswith("."):
            yield buf.strip()
            buf = ""
    if buf.strip():
        yield buf.strip()


async def check(sentence: str) -> str:
    """A slow per-sentence stage (simulated): runs while later sentences are written."""
    await asyncio.sleep(CHECK_DELAY_S)
    return f"checked ({len(sentence.split())} words)"


def build() -> alto.Pipeline:
    p = alto.Pipeline("streaming-demo")
    claims = p.input().expand(sentences, name="sentence")
    checked = claims.map(check)  # one verifier, one sentence at a time (like one GPU)
    p.output(claims)
    p.output(checked)
    p.output(checked.aggregate(lambda q, verdicts: f"{len(verdicts)} sentences checked", name="report"))
    return p


async def show(streaming: bool) -> tuple[float, float]:
    p = build()
    label = "streaming" if streaming else "baseline (streaming=False)"
    print(f"\n== {label} ==")
    t0 = time.perf_counter()
    first = None
    async with alto.LocalRuntime(p, streaming=streaming) as rt:
        async for ev in rt.stream("How does e-mail travel?"):
            now = time.perf_counter() - t0
            if not ev.final and first is None:
                first = now
            print(f"  {now:5.2f}s  {ev.stage:<8} {ev.path!s:<8} {ev.value}")
    total = time.perf_counter() - t0
    return first or total, total


def main() -> None:
    s_first, s_total = asyncio.run(show(True))
    b_first, b_total = asyncio.run(show(False))
    print("\n                 first result   total")
    print(f"  streaming      {s_first:8.2f}s   {s_total:6.2f}s")
    print(f"  baseline       {b_first:8.2f}s   {b_total:6.2f}s")
    print(f"  streaming is {b_total / s_total:.1f}x faster end to end (simulated writer)")


if __name__ == "__main__":
    main()
