"""LLM stages: "map by generating" and "expand by generating and splitting".

``generate(llm, template)`` makes a map function: one prompt in, the whole text out.
``generate_split(llm, template, splitter)`` makes an expand function that yields each
part (line, list item, sentence, JSON item) *while the model is still generating*, so
the next stage starts on the first part long before the last one exists.

>>> import alto
>>> from alto.llm import Simulated, generate_split
>>> llm = Simulated(time_scale=0, seed=3)
>>> p = alto.Pipeline("claims")
>>> claims = p.input().expand(generate_split(llm, "List claims about {input}", "list", max_tokens=40))
>>> _ = p.output(claims.aggregate(lambda topic, cs: len(cs) > 0))
>>> alto.run(p, ["mail"])
[True]

Any async token iterator works too, e.g. your own client's streaming call:

>>> async def my_client(prompt):
...     for chunk in ["1. SMTP sends", " mail\\n2. IMAP", " reads it\\n"]:
...         yield chunk
>>> q = alto.Pipeline("own")
>>> parts = q.input().expand(generate_split(my_client, "{input}", "list"))
>>> _ = q.output(parts.aggregate(lambda topic, cs: cs))
>>> alto.run(q, ["mail"])
[['SMTP sends mail', 'IMAP reads it']]

Templates are ``str.format`` strings: ``{input}`` is the item; a dict item's keys are
available by name. A template may also be a function ``item -> prompt`` returning a
string or a list of chat messages (for few-shot prompts).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from typing import Any

from alto.llm._base import LLM, Prompt
from alto.llm._split import SPLITTERS, Splitter, split_stream
from alto.routing._cost import LLMCall

__all__ = ["generate", "generate_split", "render", "split_parts"]

Template = str | Callable[[Any], Prompt]


def render(template: Template, value: Any) -> Prompt:
    """The prompt for one item."""
    if callable(template):
        return template(value)
    if isinstance(value, dict):
        return template.format(input=value, **value)
    return template.format(input=value)


def _normal(text: str) -> str:
    return re.sub(r"\W+", " ", str(text).lower()).strip()


def generate(
    llm: LLM,
    template: Template,
    *,
    system: str | None = None,
    max_tokens: int = 256,
    stop: Sequence[str] | None = None,
    temperature: float = 0.0,
    parse: Callable[[str, Any], Any] | None = None,
    priority: int = 0,
    name: str = "generate",
    kind: Callable[[Any], str] | None = None,
    output_hint: float | None = None,
) -> Callable[[Any], Any]:
    """A map stage function: ``item -> parse(text, item)`` (default: the stripped text)."""

    async def generate_stage(value: Any) -> Any:
        text = await llm.complete(
            render(template, value),
            system=system,
            max_tokens=max_tokens,
            stop=stop,
            temperature=temperature,
            priority=priority,
        )
        return parse(text, value) if parse else text.strip()

    generate_stage.__name__ = generate_stage.__qualname__ = name
    generate_stage.__alto_llm__ = _llm_call(template, system, kind, output_hint, max_tokens)  # type: ignore[attr-defined]
    return generate_stage


def generate_split(
    llm: LLM | Callable[[Prompt], AsyncIterator[str]],
    template: Template,
    splitter: str | type[Splitter] = "lines",
    *,
    system: str | None = None,
    max_tokens: int = 256,
    stop: Sequence[str] | None = None,
    temperature: float = 0.0,
    dedupe: bool = True,
    max_parts: int | None = None,
    keep: Callable[[Any], bool] | None = None,
    transform: Callable[[Any, Any], Any] | None = None,
    priority: int = 0,
    name: str = "generate_split",
    kind: Callable[[Any], str] | None = None,
    output_hint: float | None = None,
) -> Callable[[Any], AsyncIterator[Any]]:
    """An expand stage function: yields each part of the generation as soon as it is complete.

    Args:
        llm: an :class:`~alto.llm.LLM`, or any function ``prompt -> async iterator of
            text chunks`` (your own client's streaming call); the generation options
            below then go to the LLM only, so bind them into your function yourself.
        splitter: ``"lines"``, ``"list"``, ``"sentences"``, ``"json"`` or a Splitter class.
        dedupe: drop parts that repeat an earlier one (on by default: small models
            repeat lines; pass ``dedupe=False`` to keep every part).
        max_parts: stop generating after this many parts.
        keep: a predicate on each part (e.g. drop fragments that are too short).
        transform: ``transform(part, item)`` builds the value sent downstream.
        priority: passed to the backend's queue (lower is served first).
        kind: ``item -> str``, a finer prompt kind for prompt-aware routing (output
            lengths are predicted per stage and kind); ``output_hint``: expected
            output tokens before any are observed. LLM stages route with
            ``router="prompt_aware"`` by default (see ``docs/scheduling.md``).
    """
    make = SPLITTERS[splitter] if isinstance(splitter, str) else splitter

    async def split_stage(value: Any) -> AsyncIterator[Any]:
        accept = _part_filter(dedupe, keep)
        n = 0
        prompt = render(template, value)
        if isinstance(llm, LLM):
            tokens = llm.stream(
                prompt, system=system, max_tokens=max_tokens, stop=stop, temperature=temperature, priority=priority
            )
        else:
            tokens = llm(prompt)
        async with aclosing(split_stream(tokens, make())) as parts:
            async for part in parts:
                if not accept(part):
                    continue
                yield transform(part, value) if transform else part
                n += 1
                if max_parts is not None and n >= max_parts:
                    return  # leaving closes the token stream: generation stops now

    split_stage.__name__ = split_stage.__qualname__ = name
    split_stage.__alto_llm__ = _llm_call(template, system, kind, output_hint, max_tokens)  # type: ignore[attr-defined]
    return split_stage


def _part_filter(dedupe: bool, keep: Callable[[Any], bool] | None) -> Callable[[Any], bool]:
    """Which parts ``generate_split`` passes on: not a repeat (``dedupe``), and ``keep``."""
    seen: set[str] = set()

    def accept(part: Any) -> bool:
        key = _normal(part)
        if dedupe and (key in seen or not key):
            return False
        if keep is not None and not keep(part):
            return False
        seen.add(key)
        return True

    return accept


def split_parts(
    text: str,
    splitter: str | type[Splitter] = "lines",
    *,
    dedupe: bool = True,
    max_parts: int | None = None,
    keep: Callable[[Any], bool] | None = None,
) -> list[Any]:
    """The parts ``generate_split`` yields, from a whole generation at once (for code that
    gets the full text, e.g. a baseline that does not stream).

    >>> split_parts("1. SMTP\\n2. IMAP\\n3. SMTP\\n4. POP\\n", "list", max_parts=2)
    ['SMTP', 'IMAP']
    """
    make = SPLITTERS[splitter] if isinstance(splitter, str) else splitter
    accept = _part_filter(dedupe, keep)
    out = [part for part in make().split(text) if accept(part)]
    return out if max_parts is None else out[:max_parts]


def _llm_call(
    template: Template, system: str | None, kind: Callable[[Any], str] | None, hint: float | None, max_tokens: int
) -> LLMCall:
    """How prompt-aware routing reads this stage's items: the rendered prompt's text."""

    def prompt(value: Any) -> str:
        rendered = render(template, value)
        if not isinstance(rendered, str):
            rendered = "\n".join(str(m.get("content", "")) for m in rendered)
        return f"{system}\n{rendered}" if system else rendered

    return LLMCall(prompt, kind, hint if hint is not None else max_tokens / 2, max_tokens)
