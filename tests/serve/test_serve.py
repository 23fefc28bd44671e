"""``alto serve``: runs, streamed partial outputs, errors, limits, auth, the client.

Servers bind 127.0.0.1 on a free port and are stopped by the test that started them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

import alto
from alto.serve import AsyncClient, Client, ServerError, create_app
from alto.serve.testing import CHROMIUM_FLAGS, free_port, running


def words() -> alto.Pipeline:
    p = alto.Pipeline("words")
    lengths = p.input().expand(str.split, name="words").map(len, name="length")
    p.output(lengths)
    p.output(lengths.aggregate(lambda text, ls: sum(ls), name="total"))
    return p


def failing() -> alto.Pipeline:
    def check(word: str) -> str:
        if word == "boom":
            raise ValueError("no booms here")
        return word

    p = alto.Pipeline("failing")
    p.output(p.input().expand(str.split, name="words").map(check, name="check").aggregate(lambda t, ws: ws))
    return p


class Gate:
    """A slow stage that records which items started and which were cancelled, as files
    in ``folder`` (so a Ray replica in another process records them too)."""

    def __init__(self, delay: float, folder: pathlib.Path) -> None:
        self.delay = delay
        self.folder = str(folder)

    def _seen(self, what: str) -> list[str]:
        return sorted(p.name.split(".", 1)[1] for p in pathlib.Path(self.folder).glob(f"{what}.*"))

    @property
    def started(self) -> list[str]:
        return self._seen("started")

    @property
    def cancelled(self) -> list[str]:
        return self._seen("cancelled")

    def pipeline(self) -> alto.Pipeline:
        folder, delay = self.folder, self.delay  # (not self: the stage is pickled to Ray replicas)

        async def slow(word: str) -> str:
            open(os.path.join(folder, f"started.{word}"), "w").close()
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                open(os.path.join(folder, f"cancelled.{word}"), "w").close()
                raise
            return word

        p = alto.Pipeline("slow")
        parts = p.input().expand(str.split, name="words").map(slow, name="slow")
        p.output(parts)
        p.output(parts.aggregate(lambda t, ws: ws, name="all"))
        return p


def test_run_returns_the_output_and_stream_sends_partials_then_the_result(runtime):
    with TestClient(create_app(words(), runtime=runtime)) as http:
        r = http.post("/v1/runs", json={"input": "SMTP sends mail"})
        assert r.status_code == 200 and r.json()["output"] == 13 and r.json()["id"]
        with http.stream("POST", "/v1/runs", json={"input": "SMTP sends mail", "stream": True}) as s:
            assert s.headers["content-type"].startswith("text/event-stream")
            text = "".join(s.iter_text())
    events = [block for block in text.split("\n\n") if block]
    kinds = [b.split("\n")[0].removeprefix("event: ") for b in events]
    assert kinds == ["partial"] * 3 + ["result"]
    assert '"stage": "length"' in events[0] and '"output": 13' in events[-1]


def test_a_failing_stage_is_named_with_its_path_and_no_traceback(runtime):
    with TestClient(create_app(failing(), runtime=runtime)) as http:
        r = http.post("/v1/runs", json={"input": "it went boom"})
        assert r.status_code == 422
        err = r.json()["error"]
        assert err["stage"] == "check" and len(err["path"]) == 2 and err["request_id"]
        assert "no booms here" in err["message"] and "Traceback" not in r.text
        s = http.post("/v1/runs", json={"input": "boom", "stream": True})
        assert "event: error" in s.text and '"stage": "check"' in s.text
        assert 'alto_stage_errors_total{stage="check"} 2.0' in http.get("/metrics").text


def test_bad_bodies_get_422_and_413_with_messages_a_person_understands():
    with TestClient(create_app(words(), max_body=200)) as http:
        r = http.post("/v1/runs", json={"stream": True})
        assert r.status_code == 422 and "input" in r.json()["error"]["message"]
        r = http.post("/v1/runs", json={"input": "x", "extra": 1})
        assert r.status_code == 422 and "extra" in r.json()["error"]["message"]
        r = http.post("/v1/runs", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 422
        r = http.post("/v1/runs", json={"input": "x" * 500})
        assert r.status_code == 413 and "200 bytes" in r.json()["error"]["message"]


def test_token_is_required_everywhere_but_healthz(runtime):
    with TestClient(create_app(words(), token="s3cret", runtime=runtime)) as http:
        assert http.get("/healthz").status_code == 200
        for method, path in (("post", "/v1/runs"), ("get", "/v1/pipeline"), ("get", "/metrics"), ("get", "/readyz")):
            r = getattr(http, method)(path, **({"json": {"input": "a"}} if method == "post" else {}))
            assert r.status_code == 401, path
        r = http.post("/v1/runs", json={"input": "a b"}, headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200 and r.json()["output"] == 2
        assert http.get("/readyz", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_pipeline_readyz_and_metrics():
    with TestClient(create_app(words())) as http:
        assert http.get("/readyz").json() == {"ready": True}
        info = http.get("/v1/pipeline").json()
        names = [s["name"] for s in info["stages"]]
        assert {"words", "length", "total"} <= set(names) and "flowchart" in info["mermaid"]
        http.post("/v1/runs", json={"input": "one two three"})
        http.post("/v1/runs", json={"input": "a b", "stream": True})
        text = http.get("/metrics").text
    assert 'alto_requests_total{outcome="ok"} 2.0' in text
    assert "alto_request_seconds_count 2.0" in text and "alto_first_output_seconds_count 1.0" in text
    assert 'alto_stage_items_handled_total{replica="0",stage="length"} 5.0' in text
    assert "alto_requests_in_flight 0.0" in text


def test_over_the_inflight_limit_requests_get_429_with_retry_after(tmp_path):
    gate = Gate(delay=2.0, folder=tmp_path)
    with running(create_app(gate.pipeline(), max_inflight=1)) as url:

        async def main():
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                first = asyncio.create_task(http.post("/v1/runs", json={"input": "slow"}))
                while not gate.started:
                    await asyncio.sleep(0.01)
                second = await http.post("/v1/runs", json={"input": "fast"})
                return await first, second

        first, second = asyncio.run(main())
    assert first.status_code == 200 and first.json()["output"] == ["slow"]
    assert second.status_code == 429 and second.headers["retry-after"] == "1"


def test_a_run_past_the_timeout_gets_504_and_its_work_is_cancelled(runtime, tmp_path):
    gate = Gate(delay=30.0, folder=tmp_path)
    with TestClient(create_app(gate.pipeline(), timeout_s=2.0, runtime=runtime)) as http:
        r = http.post("/v1/runs", json={"input": "a b c"})
        assert r.status_code == 504 and "2 s" in r.json()["error"]["message"]
        deadline = time.monotonic() + 10
        while len(gate.cancelled) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gate.cancelled == ["a", "b", "c"]
        assert http.get("/readyz").status_code == 200  # the server goes on


def test_a_client_that_disconnects_cancels_its_work_in_every_stage(runtime, tmp_path):
    gate = Gate(delay=30.0, folder=tmp_path)
    with running(create_app(gate.pipeline(), runtime=runtime)) as url:
        with (
            httpx.Client(base_url=url, timeout=30) as http,
            http.stream("POST", "/v1/runs", json={"input": "x y z", "stream": True}) as r,
        ):
            assert r.status_code == 200
            deadline = time.monotonic() + 30
            while len(gate.started) < 3:
                assert time.monotonic() < deadline, gate.started
                time.sleep(0.01)
        # leaving the block closed the connection mid-stream
        deadline = time.monotonic() + 10
        while len(gate.cancelled) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert gate.cancelled == ["x", "y", "z"]


def test_clients_run_and_stream_like_a_runtime():
    assert alto.Client is Client and alto.AsyncClient is AsyncClient  # the contract's name: alto.Client
    with running(create_app(words(), token="t")) as url:
        with alto.Client(url, token="t") as c:
            assert c.run("SMTP sends mail") == 13
            events = list(c.stream("SMTP sends mail"))
        assert [e.final for e in events] == [False] * 3 + [True]
        assert events[0].stage == "length" and len(events[0].path) == 2 and events[-1].value == 13
        with Client(url) as c, pytest.raises(ServerError) as exc:
            c.run("x")
        assert exc.value.status == 401

        async def main():
            async with AsyncClient(url, token="t") as c:
                return await c.run("a bb"), [e async for e in c.stream("a bb")]

        out, aevents = asyncio.run(main())
    assert out == 3 and aevents[-1].value == 3 and aevents[-1].final


def test_web_view_is_served_from_the_package_and_uses_the_api():
    with TestClient(create_app(words(), token="t")) as http:
        page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'fetch("v1/runs"' in page.text and "stream: true" in page.text  # streams partial outputs
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN


SLOW_PIPELINE = """
import asyncio
import alto

async def slow(text):
    await asyncio.sleep(2.0)
    return text.upper()

pipeline = alto.Pipeline("slow")
pipeline.output(pipeline.input().map(slow))
"""


def test_sigterm_drains_requests_in_flight_then_exits_0(runtime, tmp_path, request):
    """On Ray too: ray.init installs a SIGTERM handler that exits at once, which must not
    replace the server's draining one (the server joins the suite's cluster)."""
    import os
    import signal
    import subprocess
    import sys

    (tmp_path / "slow.py").write_text(SLOW_PIPELINE)
    port = free_port()
    cmd = [sys.executable, "-m", "alto.cli", "serve", f"{tmp_path / 'slow.py'}:pipeline", "--port", str(port)]
    env = dict(os.environ)
    if runtime == "ray":
        cmd += ["--runtime", "ray"]
        env["RAY_ADDRESS"] = request.getfixturevalue("ray_cluster").address
    proc = subprocess.Popen(cmd + ["--drain", "30"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        result: dict = {}
        thread = threading.Thread(
            target=lambda: result.update(r=httpx.post(f"{url}/v1/runs", json={"input": "mail"}, timeout=60))
        )
        thread.start()
        while "alto_requests_in_flight 1.0" not in httpx.get(f"{url}/metrics", timeout=5).text:
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)  # the run in flight has ~2 s to go
        thread.join(60)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert result["r"].status_code == 200 and result["r"].json()["output"] == "MAIL"


def fuzz_operation(operation, url, statuses, mode, examples):
    import hypothesis

    @hypothesis.settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=list(hypothesis.HealthCheck)
    )
    @hypothesis.given(case=operation.as_strategy(mode))
    def fuzz(case):
        response = case.call(base_url=url, timeout=10)
        statuses.append(response.status_code)
        assert response.status_code < 500, (operation.label, case.body, response.text)

    fuzz()


def test_fuzzing_every_endpoint_finds_no_5xx_and_no_hang():
    """schemathesis generates requests from the OpenAPI schema (>= 1,000 in all): every
    response comes back within its budget and none is a server error."""
    import schemathesis

    statuses: list[int] = []
    with running(create_app(failing(), max_body=4096, timeout_s=5)) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()
            # valid and invalid bodies for the run endpoint; the GETs take no parameters
            if operation.method.upper() == "POST":
                fuzz_operation(operation, url, statuses, schemathesis.GenerationMode.POSITIVE, 600)
                fuzz_operation(operation, url, statuses, schemathesis.GenerationMode.NEGATIVE, 600)
            else:
                fuzz_operation(operation, url, statuses, schemathesis.GenerationMode.POSITIVE, 20)
    assert len(statuses) >= 1000, len(statuses)
    assert {200, 422} <= set(statuses)  # both accepted runs and rejected bodies were generated


def test_web_view_in_a_real_browser_shows_partial_outputs_before_the_result(tmp_path):
    """Headless Chromium (Debian's) submits an input on the web view: partial outputs
    appear, grouped by ancestry, while the run is still going; then the result."""
    import shutil

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (make test installs it as root: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    async def paced(word: str) -> str:  # partial outputs 0.3 s apart
        await asyncio.sleep(0.3 * len(word))
        return word.upper()

    p = alto.Pipeline("paced")
    parts = p.input().expand(str.split, name="words").map(paced, name="paced")
    p.output(parts)
    p.output(parts.aggregate(lambda text, ws: " ".join(ws), name="all"))
    with running(create_app(p)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 640})
            page.goto(url)
            page.wait_for_selector("#stages:has-text('paced')")
            page.fill("#input", "a bb ccc dddd")
            page.click("#run")
            page.wait_for_selector(".event", timeout=30_000)
            partial_before_result = page.locator(".result").count() == 0
            page.wait_for_selector(".result", timeout=30_000)
            events = page.locator(".event").count()
            groups = page.locator(".group").count()
            timings = page.inner_text("#timings")
            page.screenshot(path=str(tmp_path / "web_view.png"))
        finally:
            browser.close()
    assert partial_before_result
    assert events == 4 and groups == 4  # one partial output per word, each in its ancestry group
    assert "first partial output" in timings and "total" in timings
    assert (tmp_path / "web_view.png").stat().st_size > 10_000


def test_metrics_show_router_decisions_of_llm_stages(runtime):
    """On Ray the router lives in the sending replica's actor, and learns that items
    finished from acks and polls: its outstanding count reaches 0 within a few polls."""
    from alto.llm import Simulated, generate

    p = alto.Pipeline("llm")
    topics = p.input().expand(str.split, name="topics")
    describe = generate(Simulated(time_scale=0, seed=1), "Describe {input}", max_tokens=8)
    p.output(topics.map(describe, replicas=2, name="gen").aggregate(lambda t, ds: len(ds)))
    outstanding = 'alto_router_outstanding{sender="topics[0]",stage="gen"}'
    with TestClient(create_app(p, runtime=runtime)) as http:
        assert http.post("/v1/runs", json={"input": "smtp imap pop"}).json()["output"] == 3
        deadline = time.monotonic() + 30
        while f"{outstanding} 0.0" not in (text := http.get("/metrics").text):
            assert outstanding in text and time.monotonic() < deadline, text  # every item reported done
            time.sleep(0.05)
    assert 'alto_router_spilled_total{sender="topics[0]",stage="gen"}' in text


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page, keyed by (name, sorted labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_have_a_latency_histogram_items_out_and_failures_per_stage_replica(runtime):
    """Each replica's time per item lands in the right buckets; items out and failures
    are counted where they happen -- on Ray, read from the replica actors."""

    async def nap(word: str) -> str:
        await asyncio.sleep(0.05)
        if word == "boom":
            raise ValueError("no booms here")
        return word

    p = alto.Pipeline("timed")
    naps = p.input().expand(str.split, name="words").map(nap, replicas=2, name="nap", on_error="drop")
    p.output(naps.aggregate(lambda t, ws: len(ws), name="count"))
    with TestClient(create_app(p, runtime=runtime)) as http:
        assert http.post("/v1/runs", json={"input": "a b c d e f"}).json()["output"] == 6
        assert http.post("/v1/runs", json={"input": "g boom"}).json()["output"] == 1
        m = _samples(http.get("/metrics").text)

    def total(name: str, stage: str, **labels: str) -> float:
        return sum(
            v for (n, ls), v in m.items() if n == name and ("stage", stage) in ls and set(labels.items()) <= set(ls)
        )

    assert total("alto_stage_seconds_count", "nap") == 8  # 8 words over both replicas
    # (Ray's uvloop may end a 50 ms sleep a little early: its clock is read once per loop turn)
    assert 8 * 0.04 <= total("alto_stage_seconds_sum", "nap") < 8 * 2.0
    assert total("alto_stage_seconds_bucket", "nap", le="0.032768") == 0  # none took under 32 ms
    assert total("alto_stage_seconds_bucket", "nap", le="+Inf") == 8
    assert all(total("alto_stage_seconds_count", "nap", replica=r) > 0 for r in ("0", "1"))  # both replicas report
    assert total("alto_stage_failures_total", "nap") == 1 and total("alto_stage_items_out_total", "nap") == 7
    assert total("alto_stage_items_out_total", "words") == 8 and total("alto_stage_items_handled_total", "words") == 2


def test_tracing_gives_a_span_per_request_and_per_item_in_each_stage(runtime, tmp_path):
    """Stage spans are children of their request's span, on Ray too (there each replica
    configures OpenTelemetry in its own process, through trace_setup)."""
    import functools
    import json

    (tmp_path / "spans").mkdir()
    setup = functools.partial(_span_file_tracing, str(tmp_path / "spans"))
    setup()
    with TestClient(create_app(failing(), runtime=runtime, tracing=True, trace_setup=setup)) as http:
        assert http.post("/v1/runs", json={"input": "two words"}).json()["output"] == ["two", "words"]
        assert http.post("/v1/runs", json={"input": "a boom"}).status_code == 422
    from opentelemetry import trace

    trace.get_tracer_provider().force_flush()
    spans = [json.loads(line) for f in (tmp_path / "spans").iterdir() for line in f.read_text().splitlines()]
    requests = [s for s in spans if s["name"] == "alto.request failing"]
    assert len(requests) == 2
    assert {s["attributes"]["alto.pipeline"] for s in requests} == {"failing"}  # what dashboards query by
    ok, failed = sorted(requests, key=lambda s: s["status"]["status_code"] != "UNSET")
    assert failed["status"]["status_code"] == "ERROR"
    children = {
        r["context"]["span_id"]: [s for s in spans if s["parent_id"] == r["context"]["span_id"]] for r in requests
    }
    for request in (ok, failed):
        mine = children[request["context"]["span_id"]]
        assert {s["context"]["trace_id"] for s in mine} == {request["context"]["trace_id"]}
    ok_stages = [s["attributes"]["alto.stage"] for s in children[ok["context"]["span_id"]]]
    assert ok_stages.count("words") == 1 and ok_stages.count("check") == 2
    bad = [s for s in children[failed["context"]["span_id"]] if s["attributes"]["alto.stage"] == "check"]
    assert [s["status"]["status_code"] for s in bad if s["attributes"]["alto.path"][-1] == 1] == ["ERROR"]


def _span_file_tracing(folder: str) -> None:
    """OpenTelemetry writing every span as a JSON line to this process's file in ``folder``."""
    import os

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    out = open(os.path.join(folder, f"{os.getpid()}.jsonl"), "a")  # noqa: SIM115
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=out, formatter=_one_line)))


def _one_line(span) -> str:
    return span.to_json(indent=None) + "\n"


def test_a_stream_whose_client_left_before_its_body_started_gives_its_admission_slot_back():
    """An async generator that never started runs no ``finally``: the response itself
    must give the slot back, or each such client would leak one of --max-inflight."""
    from alto.serve._app import _ReleasingStream

    released: list[bool] = []

    async def body():
        yield "never sent"

    async def release() -> None:
        released.append(True)

    async def receive() -> dict:
        return {"type": "http.disconnect"}  # the client is already gone

    async def send(message: dict) -> None:
        await asyncio.sleep(5)  # the response start is still on its way when the disconnect is seen

    response = _ReleasingStream(body(), release, media_type="text/event-stream")
    asyncio.run(asyncio.wait_for(response({"type": "http", "asgi": {"spec_version": "2.3"}}, receive, send), 10))
    assert released == [True]


def test_a_ray_replica_that_does_not_answer_a_scrape_is_left_out_not_fatal():
    """Stage stats hold None for a replica that did not answer (being replaced, say):
    its samples are left out of that scrape and the other replicas' stay."""
    from prometheus_client import CollectorRegistry, generate_latest

    from alto.engine._observe import StageTimer, group_replicas
    from alto.serve._metrics import _Stages

    timer = StageTimer()
    timer.observe(0.01, failed=False)
    answered = {"handled": 3, "failures": 0, "inbox_peak": 1, "load": 0, "lanes": 1}
    answered |= {"timing": timer.snapshot(), "routers": []}
    collector = _Stages()
    collector.stats = {"a": group_replicas([answered, None]), "b": group_replicas([None])}
    registry = CollectorRegistry()
    registry.register(collector)
    m = _samples(generate_latest(registry).decode())
    handled = {ls: v for (n, ls), v in m.items() if n == "alto_stage_items_handled_total"}
    assert handled == {(("replica", "0"), ("stage", "a")): 3.0}
    assert m[("alto_stage_seconds_count", (("replica", "0"), ("stage", "a")))] == 1
