"""Pipeline and Stream: the dataflow description, its stage specs and validation.

A pipeline is a DAG of small frozen :class:`StageSpec` records built through
:class:`Stream` methods. It knows nothing of runtimes.

>>> import alto
>>> p = alto.Pipeline("words")
>>> q = p.input()
>>> words = q.expand(str.split)
>>> lengths = words.map(len)
>>> p.output(lengths.aggregate(lambda text, ns: sum(ns), name="total"))
Stream(stage='total', depth=0)
>>> alto.run(p, ["a bb ccc", ""])
[6, 0]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, Unpack

from alto.dataflow._functions import (
    ROUTER_POLICIES,
    default_concurrency,
    router_keyed,
)
from alto.errors import PipelineError

__all__ = ["ON_ERROR", "UNSET", "Pipeline", "StageKind", "StageOptions", "StageSpec", "Stream"]

StageKind = Literal["input", "map", "expand", "filter", "zip", "aggregate"]
OnError = Literal["fail", "drop"]
ON_ERROR: tuple[OnError, ...] = ("fail", "drop")


class _Unset:
    """The type of :data:`UNSET`: an option left at its default (``None`` means "off")."""

    def __repr__(self) -> str:
        return "UNSET"

    def __reduce__(self) -> str:
        return "UNSET"  # pickled and copied by name: one instance in every process


UNSET = _Unset()


class StageOptions(TypedDict, total=False):
    """The options every stage method takes (``Stream.map(fn, **options)``), typed.

    ``concurrency``: items in flight per replica; left unset it is 1 for a plain function
    and 64 for an ``async`` function or async generator; ``None`` is unbounded.
    """

    name: str
    replicas: int
    concurrency: int | None
    retries: int
    on_error: OnError
    router: Any
    resources: Mapping[str, float]
    stateful: bool


@dataclass(frozen=True, eq=False)
class StageSpec:
    """One stage of a pipeline: what it computes and how it is deployed.

    ``depth`` is the depth of the items the stage *emits*; ``levels`` names, for each
    open level, the expand stage that opened it (the stream's origin).
    """

    name: str
    kind: StageKind
    fn: Any
    inputs: tuple[str, ...]
    depth: int
    levels: tuple[str, ...]
    replicas: int = 1
    concurrency: int | _Unset | None = UNSET
    retries: int = 0
    on_error: OnError = "fail"
    router: Any = None
    resources: Mapping[str, float] = field(default_factory=dict)
    stateful: bool = False

    @property
    def max_in_flight(self) -> int | None:
        """Items in flight per replica: ``concurrency``, or its default for this function."""
        if isinstance(self.concurrency, _Unset):
            return default_concurrency(self.fn)
        return self.concurrency

    @property
    def input_depth(self) -> int:
        """Depth of the items the stage receives."""
        if self.kind == "aggregate":
            return self.depth + 1
        if self.kind == "expand":
            return self.depth - 1
        return self.depth

    @property
    def keyed(self) -> bool:
        """True if items must be routed by a hash of their group (aggregation-aware)."""
        return self.kind in ("aggregate", "zip") or self.stateful

    def route_key(self, path: tuple[int, ...]) -> tuple[int, ...]:
        """The part of ``path`` that decides the replica of a keyed stage.

        aggregate: the group (parent path); zip: the whole path (both sides meet);
        stateful: the parent, so all siblings of a group reach one replica.
        """
        if self.kind == "zip":
            return path
        return path[: max(self.input_depth, 1)]


def _derive_name(fn: Any, kind: str) -> str:
    raw = getattr(fn, "__name__", None) or type(fn).__name__ or kind
    name = re.sub(r"\W+", "_", raw).strip("_") or kind
    return "lambda" if raw == "<lambda>" else name


class Stream:
    """A stream of items at one depth, produced by one stage of a pipeline.

    Streams are immutable handles: every method adds a stage and returns a new stream.
    """

    __slots__ = ("depth", "levels", "pipeline", "stage")

    def __init__(self, pipeline: Pipeline, stage: str, depth: int, levels: tuple[str, ...]) -> None:
        self.pipeline = pipeline
        self.stage = stage
        self.depth = depth
        self.levels = levels

    def __repr__(self) -> str:
        return f"Stream(stage={self.stage!r}, depth={self.depth})"

    def map(self, fn: Callable[..., Any], **options: Unpack[StageOptions]) -> Stream:
        """One output per input: ``fn(value) -> value``. Depth unchanged.

        ``stateful=True`` routes all siblings of a group to one replica.
        """
        return self.pipeline._add("map", fn, (self,), self.depth, self.levels, options)

    def expand(self, fn: Callable[..., Any], **options: Unpack[StageOptions]) -> Stream:
        """Split each item: ``fn(value)`` returns an iterable, generator or async generator.

        Each yielded child goes downstream at once. Opens a new level (depth + 1).
        """
        stream = self.pipeline._add("expand", fn, (self,), self.depth + 1, None, options)
        return stream

    def filter(self, predicate: Callable[[Any], Any], **options: Unpack[StageOptions]) -> Stream:
        """Keep items for which ``predicate(value)`` is truthy; dropped ones still count."""
        return self.pipeline._add("filter", predicate, (self,), self.depth, self.levels, options)

    def zip(self, other: Stream, **options: Unpack[StageOptions]) -> Stream:
        """Pair items with the same ancestry path: emits ``(self_value, other_value)``.

        Both streams must have the same depth and origin (the same expand stages).
        """
        self.pipeline._check_stream(other, "zip")
        if other.depth != self.depth or other.levels != self.levels:
            raise PipelineError(
                f"zip of {self.stage!r} (depth {self.depth}, levels {list(self.levels)}) with "
                f"{other.stage!r} (depth {other.depth}, levels {list(other.levels)}): zip pairs "
                "items by ancestry path, so both streams must come from the same expand stages "
                "at the same depth. Aggregate the deeper stream first, or zip streams that "
                "share an origin."
            )
        return self.pipeline._add("zip", None, (self, other), self.depth, self.levels, options)

    def aggregate(self, fn: Any, **options: Unpack[StageOptions]) -> Stream:
        """Close the innermost level: ``fn(parent, children) -> value`` (depth - 1).

        ``children`` are the surviving items of one parent ordered by index. ``fn`` may
        also be a class with ``start(parent)``, ``add(index, child)``, ``finish()``:
        one instance per group, fed as children arrive.
        """
        if self.depth == 0:
            hint = options.get("name") or getattr(fn, "__name__", "aggregate")
            raise PipelineError(
                f"aggregate {hint!r} on stream {self.stage!r}: the stream is at depth 0, so "
                "there is no open level to close. Add an expand before it, or use map."
            )
        return self.pipeline._add("aggregate", fn, (self,), self.depth - 1, self.levels[:-1], options)


_STAGE_OPTIONS = set(StageOptions.__annotations__)  # StageSpec declares each one's default


class Pipeline:
    """A named dataflow of stages, built from its :meth:`input` stream.

    >>> p = Pipeline("demo")
    >>> out = p.input().map(str.upper)
    >>> _ = p.output(out)
    >>> [s.name for s in p.stages.values()]
    ['input', 'upper']
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise PipelineError("Pipeline(name): give the pipeline a non-empty string name")
        self.name = name
        self._stages: dict[str, StageSpec] = {}
        self._explicit: set[str] = set()
        self._outputs: list[str] = []
        self._input: Stream | None = None

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, stages={len(self._stages)}, outputs={self._outputs})"

    # -- building ---------------------------------------------------------------

    def input(self) -> Stream:
        """The stream of request inputs (depth 0). Calling it again returns the same stream."""
        if self._input is None:
            spec = StageSpec(name="input", kind="input", fn=None, inputs=(), depth=0, levels=())
            self._stages["input"] = spec
            self._explicit.add("input")
            self._input = Stream(self, "input", 0, ())
        return self._input

    def output(self, stream: Stream) -> Stream:
        """Declare ``stream`` an output of the pipeline (any depth; several allowed)."""
        self._check_stream(stream, "output")
        if stream.stage in self._outputs:
            raise PipelineError(f"output {stream.stage!r} is declared twice; declare each output once")
        self._outputs.append(stream.stage)
        return stream

    def _check_stream(self, stream: Any, what: str) -> None:
        if not isinstance(stream, Stream):
            raise PipelineError(f"{what}: expected an alto Stream, got {type(stream).__name__}")
        if stream.pipeline is not self:
            raise PipelineError(
                f"{what}: stream {stream.stage!r} belongs to pipeline {stream.pipeline.name!r}, "
                f"not {self.name!r}. Build every stage from this pipeline's input()."
            )

    def _add(
        self,
        kind: StageKind,
        fn: Any,
        sources: tuple[Stream, ...],
        depth: int,
        levels: tuple[str, ...] | None,
        options: Mapping[str, Any],
    ) -> Stream:
        for s in sources:
            self._check_stream(s, kind)
        unknown = set(options) - _STAGE_OPTIONS
        if unknown:
            raise PipelineError(
                f"{kind}: unknown option(s) {sorted(unknown)}; valid options are {sorted(_STAGE_OPTIONS)}"
            )
        if kind != "zip" and not callable(fn):
            raise PipelineError(f"{kind}: expected a function or class, got {fn!r}")
        explicit = options.get("name")
        if explicit is not None:
            if not isinstance(explicit, str) or not explicit:
                raise PipelineError(f"{kind}: name= must be a non-empty string, got {explicit!r}")
            if explicit in self._stages:
                raise PipelineError(
                    f"duplicate stage name {explicit!r} in pipeline {self.name!r}: every stage "
                    "needs a unique name; pass a different name="
                )
            name = explicit
        else:
            base = _derive_name(fn, kind) if fn is not None else kind
            name, n = base, 1
            while name in self._stages:
                n += 1
                name = f"{base}_{n}"
        if levels is None:  # expand opens a level named after itself
            levels = sources[0].levels + (name,)
        given = {k: v for k, v in options.items() if k != "name"}  # the rest: StageSpec's defaults
        if "resources" in given:
            given["resources"] = dict(given["resources"] or {})
        spec = StageSpec(
            name=name,
            kind=kind,
            fn=fn,
            inputs=tuple(s.stage for s in sources),
            depth=depth,
            levels=levels,
            **given,
        )
        check_options(spec)
        self._stages[name] = spec
        return Stream(self, name, depth, levels)

    # -- inspection ---------------------------------------------------------------

    @property
    def stages(self) -> dict[str, StageSpec]:
        """Stage specs by name, in the order they were added."""
        return dict(self._stages)

    @property
    def outputs(self) -> list[str]:
        """Names of the output stages, in declaration order."""
        return list(self._outputs)

    def downstream(self) -> dict[str, list[tuple[str, int]]]:
        """For each stage, the ``(stage, port)`` pairs that consume its items."""
        out: dict[str, list[tuple[str, int]]] = {name: [] for name in self._stages}
        for spec in self._stages.values():
            for port, src in enumerate(spec.inputs):
                if src in out:
                    out[src].append((spec.name, port))
        return out

    def final_outputs(self) -> list[str]:
        """The outputs at depth 0: one value per request."""
        return [o for o in self._outputs if self._stages[o].depth == 0]

    @classmethod
    def from_specs(cls, name: str, specs: Iterable[StageSpec], outputs: Iterable[str]) -> Pipeline:
        """Build a pipeline from stage specs (e.g. loaded from configuration).

        Nothing is checked here; :meth:`validate` (called by every runtime) checks the
        graph: unknown inputs, cycles, depths and levels.
        """
        p = cls(name)
        for spec in specs:
            if spec.name in p._stages:
                raise PipelineError(f"duplicate stage name {spec.name!r}; every stage needs a unique name")
            p._stages[spec.name] = spec
            if spec.kind == "input":
                p._input = Stream(p, spec.name, 0, ())
        p._outputs = list(outputs)
        return p

    # -- validation --------------------------------------------------------------

    def validate(self, *, require_final: bool = False) -> None:
        """Check the whole graph; raise :class:`PipelineError` naming the stage and the fix.

        ``require_final=True`` (used by :func:`alto.run`) also requires a depth-0 output.
        """
        if not self._outputs:
            raise PipelineError(
                f"pipeline {self.name!r} has no output: call p.output(stream) on the stream whose items are the results"
            )
        inputs = [s.name for s in self._stages.values() if s.kind == "input"]
        if len(inputs) != 1:
            raise PipelineError(f"pipeline {self.name!r} needs exactly one input stage, has {inputs}")
        for out in self._outputs:
            if out not in self._stages:
                raise PipelineError(f"output {out!r} is not a stage of pipeline {self.name!r}")
        for spec in self._stages.values():
            for src in spec.inputs:
                if src not in self._stages:
                    raise PipelineError(f"stage {spec.name!r} reads from unknown stage {src!r}")
        for spec in self._stages.values():
            if spec.kind != "input":
                check_options(spec)  # from_specs pipelines are checked here, not when built
        self._check_acyclic()
        self._check_depths()
        if require_final and not self.final_outputs():
            deep = ", ".join(f"{o!r} (depth {self._stages[o].depth})" for o in self._outputs)
            raise PipelineError(
                f"run() returns one result per input, but no output of pipeline {self.name!r} is "
                f"at depth 0: {deep}. Aggregate the output back to depth 0, or use "
                "LocalRuntime.stream() to receive deeper items as events."
            )

    def _check_acyclic(self) -> None:
        state: dict[str, int] = {}

        def visit(name: str, trail: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = trail[trail.index(name) :] + [name]
                raise PipelineError(
                    f"pipeline {self.name!r} has a cycle: {' -> '.join(cycle)}. A pipeline must be "
                    "a DAG; loop inside a stage function instead."
                )
            state[name] = 1
            for src in self._stages[name].inputs:
                visit(src, trail + [name])
            state[name] = 2

        for name in self._stages:
            visit(name, [])

    def _check_depths(self) -> None:
        for spec in self._stages.values():
            if spec.kind == "input":
                continue
            ups = [self._stages[s] for s in spec.inputs]
            if not ups:
                raise PipelineError(f"stage {spec.name!r} has no input stream")
            first = ups[0]
            expected_depth = {"expand": first.depth + 1, "aggregate": first.depth - 1}.get(spec.kind, first.depth)
            if spec.kind == "aggregate" and first.depth == 0:
                raise PipelineError(
                    f"aggregate {spec.name!r}: its input {first.name!r} is at depth 0, so there is "
                    "no open level to close. Add an expand before it, or use map."
                )
            if spec.depth != expected_depth:
                raise PipelineError(
                    f"stage {spec.name!r} ({spec.kind}) declares depth {spec.depth} but its input "
                    f"{first.name!r} is at depth {first.depth}; expected {expected_depth}"
                )
            if spec.kind == "zip":
                if len(ups) != 2 or ups[0].depth != ups[1].depth or ups[0].levels != ups[1].levels:
                    raise PipelineError(
                        f"zip {spec.name!r}: needs two streams with the same depth and origin, got "
                        + ", ".join(f"{u.name!r} (depth {u.depth}, levels {list(u.levels)})" for u in ups)
                    )
            elif len(ups) != 1:
                raise PipelineError(f"{spec.kind} {spec.name!r} takes one input stream, got {len(ups)}")


def check_options(spec: StageSpec) -> None:
    """The one place stage options are checked; messages name the stage and the fix."""
    where = f"{spec.kind} {spec.name!r}"

    def integer(value: Any, opt: str, minimum: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise PipelineError(f"{where}: {opt}= must be an integer >= {minimum}, got {value!r}")

    if spec.kind not in ("map", "expand", "filter", "zip", "aggregate"):
        raise PipelineError(
            f"stage {spec.name!r}: unknown kind {spec.kind!r}; use map, expand, filter, zip or aggregate"
        )
    if spec.kind != "zip" and not callable(spec.fn):
        raise PipelineError(f"{where}: expected a function or class, got {spec.fn!r}")
    integer(spec.replicas, "replicas", 1)
    if spec.concurrency is not UNSET and spec.concurrency is not None:
        integer(spec.concurrency, "concurrency", 1)
    integer(spec.retries, "retries", 0)
    if spec.on_error not in ON_ERROR:
        raise PipelineError(
            f"{where}: on_error= must be 'fail' (the request fails) or 'drop' (the item is dropped), "
            f"got {spec.on_error!r}"
        )
    if not isinstance(spec.stateful, bool):
        raise PipelineError(f"{where}: stateful= must be True or False, got {spec.stateful!r}")
    if not isinstance(spec.resources, Mapping):
        raise PipelineError(f"{where}: resources= must be a dict such as {{'num_cpus': 1}}, got {spec.resources!r}")
    for key, value in spec.resources.items():
        if not isinstance(key, str) or not isinstance(value, (int, float)) or value < 0:
            raise PipelineError(
                f"{where}: resources= maps resource names to non-negative numbers, "
                f"e.g. {{'num_cpus': 1}}; got {key!r}: {value!r}"
            )
    if spec.router is not None:
        keyed_router = router_keyed(spec.router)
        if keyed_router is None:
            raise PipelineError(
                f"{where}: router= must be one of {tuple(ROUTER_POLICIES)} or an alto.Router, got {spec.router!r}"
            )
        if spec.keyed and spec.replicas > 1 and not keyed_router:
            raise PipelineError(
                f"{where}: with replicas > 1 this stage keeps per-group state, so every item of a "
                "group must reach the same replica; use router='rendezvous' (the default) or a "
                "Router with keyed = True"
            )
    if spec.stateful and spec.kind not in ("map", "filter", "expand"):
        raise PipelineError(f"{where}: stateful= applies to map, filter and expand stages")
