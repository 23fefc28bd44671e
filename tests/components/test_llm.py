"""LLM backends: the simulated engine, LLM stages, and the real embedded llama.cpp model."""

from __future__ import annotations

import asyncio
import time

import pytest

import alto
from alto.llm import LlamaCpp, LLMUnavailable, Simulated, generate, generate_split
from alto.llm._llamacpp import thread_budget


def collect(agen_fn, *args):
    async def main():
        return [x async for x in agen_fn(*args)]

    return asyncio.run(main())


# -- simulated engine ------------------------------------------------------------------


def test_simulated_is_deterministic_per_seed_and_prompt():
    a, b, c = Simulated(time_scale=0, seed=1), Simulated(time_scale=0, seed=1), Simulated(time_scale=0, seed=2)
    prompt = "Explain how mail servers talk to each other."
    ta, tb = asyncio.run(a.complete(prompt)), asyncio.run(b.complete(prompt))
    assert ta == tb and ta
    assert asyncio.run(c.complete(prompt)) != ta
    assert asyncio.run(a.complete("List three claims", max_tokens=500)).startswith("1. ")


def test_simulated_output_length_depends_on_prompt_kind():
    llm = Simulated(time_scale=0, seed=0)
    lengths = {
        kind: sum(len(llm.script(f"{prompt} {i}", 10_000)) for i in range(40)) / 40
        for kind, prompt in [("answer", "Tell me about"), ("list", "List the claims in"), ("short", "Verdict on")]
    }
    assert lengths["short"] < lengths["list"] < lengths["answer"]


def test_continuous_batching_raises_throughput_and_respects_max_batch():
    async def run(n: int, max_batch: int) -> tuple[float, int]:
        llm = Simulated(step_s=0.002, step_s_per_seq=0.0001, prefill_s_per_token=0, max_batch=max_batch, seed=0)
        t0 = time.perf_counter()
        await asyncio.gather(*(llm.complete(f"Tell me about topic {i}", max_tokens=20) for i in range(n)))
        return time.perf_counter() - t0, llm.max_batch_seen

    one, _ = asyncio.run(run(1, 8))
    eight, seen = asyncio.run(run(8, 8))
    sixteen, seen16 = asyncio.run(run(16, 8))
    assert seen == 8 and seen16 == 8
    assert eight < 3 * one  # 8 sequences share the steps of one batch
    assert sixteen > 1.5 * eight  # beyond max_batch, sequences wait for a slot


# -- LLM stages ------------------------------------------------------------------------


def test_generate_split_emits_parts_before_generation_ends():
    llm = Simulated(step_s=0.003, prefill_s_per_token=0, seed=4)
    times = []

    async def main():
        t0 = time.perf_counter()
        split = generate_split(llm, "List the claims about {input}", "list", max_tokens=200)
        async for part in split("mail"):
            times.append((time.perf_counter() - t0, part))
        return time.perf_counter() - t0

    total = asyncio.run(main())
    assert len(times) >= 2
    assert times[0][0] < total / 2  # the first item left long before the last token


def test_generate_split_dedupes_and_stops_early():
    class Repeater(alto.llm.LLM):
        """Repeats one line forever: what a small model does without repeat_penalty."""

        def __init__(self):
            super().__init__()
            self.tokens_sent = 0

        async def _stream(self, messages, **kw):
            for i in range(kw["max_tokens"]):
                self.tokens_sent += 1
                yield "- same line\n" if i % 2 else f"- line {i}\n"
                await asyncio.sleep(0)

    llm = Repeater()
    parts = collect(generate_split(llm, "{input}", "list", max_tokens=1000, max_parts=3), "x")
    assert parts == ["line 0", "same line", "line 2"]
    assert llm.tokens_sent < 10  # leaving the generator stopped the generation


def test_generate_in_a_pipeline_with_templates():
    llm = Simulated(time_scale=0, seed=5)
    p = alto.Pipeline("gen")
    p.output(p.input().map(generate(llm, "Tell me about {topic} in {words} words", parse=lambda t, item: len(t) > 0)))
    assert alto.run(p, [{"topic": "mail", "words": 5}]) == [True]


# -- the real embedded model -------------------------------------------------------------------


def test_llamacpp_streams_tokens(llama):
    async def main():
        chunks = [c async for c in llama.stream("Name one network protocol.", max_tokens=12)]
        return chunks

    chunks = asyncio.run(main())
    assert 1 <= len(chunks) <= 12
    assert all(isinstance(c, str) for c in chunks)
    assert "".join(chunks).strip()


def test_llamacpp_stop_sequence_and_early_exit(llama):
    async def main():
        text = await llama.complete("Count: 1, 2, 3, 4, 5, 6, 7, 8", max_tokens=40, stop=["\n"])
        n = 0
        t0 = time.perf_counter()
        async for _ in llama.stream("Write a very long story about computers.", max_tokens=400):
            n += 1
            if n == 3:
                break
        # the engine is free again quickly: the abandoned generation stopped
        quick = await llama.complete("Say hi.", max_tokens=3)
        return text, time.perf_counter() - t0, quick

    text, elapsed, quick = asyncio.run(main())
    assert "\n" not in text
    assert quick.strip()
    assert elapsed < 4.0, "the abandoned 400-token generation kept the engine busy"


def test_llamacpp_thread_budget(llama):
    used, cores = thread_budget()
    assert used >= 1
    with pytest.raises(LLMUnavailable, match=r"llama\.cpp threads would make \d+ on \d+ cores"):
        LlamaCpp(engines=cores, n_threads=1)


def test_llamacpp_priority_serves_urgent_jobs_first(llama):
    order = []

    async def job(name, prio, tokens):
        await llama.complete(f"Say {name}.", max_tokens=tokens, priority=prio)
        order.append(name)

    async def main():
        busy = asyncio.ensure_future(job("busy", 5, 40))
        await asyncio.sleep(0.2)  # the single engine is now generating "busy"
        await asyncio.gather(job("low", 9, 2), job("high", 0, 2), job("mid", 3, 2))
        await busy

    asyncio.run(main())
    assert order == ["busy", "high", "mid", "low"]


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(LLMUnavailable, match="model file not found"):
        LlamaCpp(model_path=tmp_path / "nope.gguf")


def test_two_engines_loading_at_once_leave_stdout_working():
    """Regression: llama-cpp-python redirects fds 1/2 to /dev/null while loading; two
    engines loading in two threads used to leave them there (print() showed nothing)."""
    import subprocess
    import sys

    code = (
        "import asyncio\n"
        "from alto.llm import LlamaCpp\n"
        "llm = LlamaCpp(engines=2)\n"
        "async def main():\n"
        "    await asyncio.gather(llm.complete('Say hi.', max_tokens=2), llm.complete('Say yo.', max_tokens=2))\n"
        "asyncio.run(main())\n"
        "print('STDOUT-ALIVE', flush=True)\n"
        "import sys; print('STDERR-ALIVE', file=sys.stderr, flush=True)\n"
        "llm.close()\n"
    )
    for _ in range(3):  # the race lost 4 of 4 runs before the fix
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "STDOUT-ALIVE" in done.stdout
        assert "STDERR-ALIVE" in done.stderr
