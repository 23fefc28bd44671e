"""The HTTP service of one pipeline: runs, streamed partial outputs, health, metrics.

One runtime per server, started with the app and closed after the last request
drains. Every endpoint but ``/healthz`` needs the bearer token when one is set.

>>> import alto
>>> from fastapi.testclient import TestClient
>>> p = alto.Pipeline("words")
>>> _ = p.output(p.input().expand(str.split).map(len).aggregate(lambda s, ls: sum(ls)))
>>> with TestClient(create_app(p)) as http:
...     http.post("/v1/runs", json={"input": "SMTP sends mail"}).json()["output"]
13
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from alto._jsonable import to_jsonable
from alto.dataflow import Pipeline, to_mermaid
from alto.errors import StageError
from alto.runtime import LocalRuntime
from alto.serve._metrics import Metrics

__all__ = ["RunRequest", "create_app"]

log = logging.getLogger("alto.serve")


class RunRequest(BaseModel):
    """``POST /v1/runs``: the pipeline's input, and whether to stream partial outputs."""

    model_config = ConfigDict(extra="forbid")

    input: Any = Field(..., description="the pipeline's input: any JSON value")
    stream: bool = Field(False, description="true: Server-Sent Events, one per partial output, then the result")


class _Error(Exception):
    """An error response: status, a message a person understands, optional headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        self.status, self.message, self.headers, self.extra = status, message, headers or {}, extra


def create_app(
    pipeline: Pipeline,
    *,
    runtime: str = "local",
    token: str | None = None,
    max_inflight: int = 64,
    timeout_s: float = 60.0,
    max_body: int = 1 << 20,
    drain_s: float = 30.0,
    tracing: bool = False,
    trace_setup: Callable[[], None] | None = None,
) -> FastAPI:
    """A FastAPI app serving ``pipeline`` (see ``docs/serving.md``).

    ``max_inflight`` requests run at once (more get 429 with ``Retry-After``);
    ``timeout_s`` bounds each (504, its work cancelled in every stage); bodies over
    ``max_body`` bytes get 413; on shutdown new runs get 503 while the ones in flight
    finish, for at most ``drain_s``. Stages are timed for ``/metrics``; ``tracing``
    makes an OpenTelemetry span per request and per item in each stage (configure an
    SDK first; on Ray, ``trace_setup`` does it in each replica).
    """
    pipeline.validate(require_final=True)
    state: dict[str, Any] = {"rt": None, "inflight": 0, "draining": False, "idle": asyncio.Event()}
    metrics = Metrics(pipeline, lambda: state["rt"], lambda: state["inflight"])
    options: Any = {"max_requests": max_inflight, "timeout_s": timeout_s, "stage_metrics": True, "tracing": tracing}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime == "ray":
            from alto.runtime.ray._runtime import RayRuntime

            rt: Any = RayRuntime(pipeline, **options, trace_setup=trace_setup)
        else:
            rt = LocalRuntime(pipeline, **options)
        await rt.start()
        state["rt"] = rt
        state["idle"].set()
        try:
            yield
        finally:
            state["draining"] = True  # readyz fails, new runs get 503
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state["idle"].wait(), drain_s)
            await rt.aclose()

    app = FastAPI(
        title=f"ALTO: {pipeline.name}",
        description="Runs of one ALTO pipeline, with its partial outputs streamed as Server-Sent Events.",
        lifespan=lifespan,
    )

    def check_token(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise _Error(401, "missing or wrong bearer token: send 'Authorization: Bearer <token>'")

    auth = [Depends(check_token)]

    @app.exception_handler(_Error)
    async def on_error(request: Request, exc: _Error) -> JSONResponse:
        rid = getattr(request.state, "rid", None) or uuid.uuid4().hex[:12]
        body = {"error": {"message": exc.message, "request_id": rid, **exc.extra}}
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors())
        message = f'the body must be JSON like {{"input": ..., "stream": false}} ({problems})'
        return JSONResponse({"error": {"message": message, "request_id": uuid.uuid4().hex[:12]}}, status_code=422)

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        rid = uuid.uuid4().hex[:12]
        log.exception("request %s failed", rid)  # the traceback stays in the server's log
        return JSONResponse({"error": {"message": "internal error", "request_id": rid}}, status_code=500)

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body:
            return JSONResponse(
                {"error": {"message": f"body over {max_body} bytes", "request_id": uuid.uuid4().hex[:12]}},
                status_code=413,
            )
        return await call_next(request)

    @contextlib.asynccontextmanager
    async def admitted(request: Request) -> AsyncIterator[Any]:
        if state["draining"] or state["rt"] is None:
            raise _Error(503, "the server is shutting down", {"Retry-After": "5"})
        if state["inflight"] >= max_inflight:
            metrics.rejected.inc()
            raise _Error(429, f"{max_inflight} requests are in flight; retry later", {"Retry-After": "1"})
        state["inflight"] += 1
        state["idle"].clear()
        try:
            yield state["rt"]
        finally:
            state["inflight"] -= 1
            if state["inflight"] == 0:
                state["idle"].set()

    @app.post("/v1/runs", dependencies=auth, summary="Run the pipeline on one input")
    async def run(body: RunRequest, request: Request) -> Any:
        rid = uuid.uuid4().hex[:12]
        request.state.rid = rid
        if body.stream:
            return await _stream(body.input, rid, request)
        async with admitted(request) as rt:
            t0 = time.perf_counter()
            try:
                output = await asyncio.wait_for(rt.submit(body.input), timeout_s)
            except TimeoutError:
                metrics.done("timeout", t0)
                raise _Error(504, f"the run took longer than {timeout_s:g} s; its work was cancelled") from None
            except StageError as exc:
                metrics.done("stage_error", t0)
                metrics.stage_errors.labels(exc.stage).inc()
                raise _Error(422, str(exc), stage=exc.stage, path=list(exc.path)) from None
            metrics.done("ok", t0)
            return {"id": rid, "output": to_jsonable(output)}

    async def _stream(value: Any, rid: str, request: Request) -> StreamingResponse:
        ctx = admitted(request)
        rt = await ctx.__aenter__()  # before the response starts: 429/503 are still possible
        released = False

        async def release() -> None:
            # Once, by whichever ends first: the body (it ran) or the response (a client
            # that left before the body started: an unstarted generator runs no finally).
            nonlocal released
            if not released:
                released = True
                await ctx.__aexit__(None, None, None)

        async def events() -> AsyncIterator[str]:
            t0 = time.perf_counter()
            outcome = "cancelled"  # unless we get to the end: the client went away
            first = True
            try:
                async with asyncio.timeout(timeout_s):
                    async for ev in rt.stream(value):
                        if ev.final:
                            yield _sse("result", {"id": rid, "output": to_jsonable(ev.value)})
                        else:
                            if first:
                                first = False
                                metrics.first_output(t0)
                            yield _sse(
                                "partial", {"stage": ev.stage, "path": list(ev.path), "value": to_jsonable(ev.value)}
                            )
                outcome = "ok"
            except TimeoutError:
                outcome = "timeout"
                yield _sse("error", {"id": rid, "message": f"the run took longer than {timeout_s:g} s"})
            except StageError as exc:
                outcome = "stage_error"
                metrics.stage_errors.labels(exc.stage).inc()
                yield _sse("error", {"id": rid, "message": str(exc), "stage": exc.stage, "path": list(exc.path)})
            finally:
                metrics.done(outcome, t0)
                await release()

        return _ReleasingStream(
            events(), release, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @app.get("/v1/pipeline", dependencies=auth, summary="The pipeline's stages, replicas and graph")
    async def describe() -> dict[str, Any]:
        stages = [
            {"name": s.name, "kind": s.kind, "replicas": s.replicas, "depth": s.depth, "inputs": list(s.inputs)}
            for s in pipeline.stages.values()
        ]
        return {
            "name": pipeline.name,
            "stages": stages,
            "outputs": list(pipeline.outputs),
            "mermaid": to_mermaid(pipeline),
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def web_view() -> HTMLResponse:
        # static: it holds no data; the page asks for the token and sends it on API calls
        page = resources.files("alto.serve").joinpath("static/index.html").read_text(encoding="utf-8")
        return HTMLResponse(page)

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/readyz", dependencies=auth, summary="Every replica has started and the server admits runs")
    async def readyz() -> JSONResponse:
        ready = state["rt"] is not None and not state["draining"]
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.get("/metrics", dependencies=auth, summary="Prometheus metrics", response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(await metrics.render(), media_type="text/plain; version=0.0.4")

    return app


class _ReleasingStream(StreamingResponse):
    """A streaming response that calls ``release()`` when it is over, however it ended."""

    def __init__(self, content: Any, release: Callable[[], Any], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._release()


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"
