"""The OpenAI-compatible path, against llama-cpp-python's own server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import alto
from alto.llm import LLMError, LLMUnavailable, OpenAICompatible, default_model_path, generate_split


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server():
    """llama_cpp.server with the embedded model, one thread, stopped after the module."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(default_model_path()), "--model_alias", "smollm2",
            "--host", "127.0.0.1", "--port", str(port),
            "--n_threads", "1", "--n_threads_batch", "1", "--n_ctx", "1024", "--verbose", "False",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                urllib.request.urlopen(f"{url}/models", timeout=1).read()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_streams_from_the_real_server(llama_server):
    llm = OpenAICompatible(base_url=llama_server, model="smollm2", timeout=30)

    async def main():
        return [c async for c in llm.stream("Name one network protocol.", max_tokens=12)]

    chunks = asyncio.run(main())
    assert 1 <= len(chunks) <= 12 and "".join(chunks).strip()
    assert llm.usage.tokens == len(chunks)


def test_expand_by_generating_through_the_server(llama_server):
    llm = OpenAICompatible(base_url=llama_server, model="smollm2", timeout=30)
    p = alto.Pipeline("remote")
    lines = p.input().expand(generate_split(llm, "List three network protocols, one per line.", "lines", max_tokens=40))
    p.output(lines.aggregate(lambda q, xs: xs))
    [parts] = alto.run(p, ["go"])
    assert isinstance(parts, list) and all(isinstance(x, str) and x for x in parts)


def test_unreachable_server_is_a_clear_error():
    llm = OpenAICompatible(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m", max_retries=0, timeout=2)
    with pytest.raises(LLMUnavailable, match=r"cannot reach the OpenAI-compatible server at http://127\.0\.0\.1"):
        asyncio.run(llm.complete("hi"))


def test_missing_base_url_says_how_to_set_it(monkeypatch):
    monkeypatch.delenv("ALTO_OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(LLMUnavailable, match="ALTO_OPENAI_BASE_URL"):
        OpenAICompatible()


class Flaky(BaseHTTPRequestHandler):
    """Answers 429 (then 503) before streaming a valid chat completion."""

    calls: list[int] = []

    def log_message(self, *args):  # keep test output clean
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        n = len(self.calls)
        self.calls.append(n)
        if n < 2:
            self.send_response(429 if n == 0 else 503)
            self.send_header("content-type", "application/json")
            self.send_header("retry-after-ms", "10")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "busy"}}')
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        for word in ["SMTP ", "moves ", "mail."]:
            chunk = {
                "id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
            }  # fmt: skip
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture
def flaky_server():
    Flaky.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


def test_retries_429_and_5xx_with_backoff(flaky_server):
    llm = OpenAICompatible(base_url=flaky_server, model="m", max_retries=3, timeout=5)
    assert asyncio.run(llm.complete("hi")) == "SMTP moves mail."
    assert len(Flaky.calls) == 3


def test_gives_up_after_max_retries(flaky_server):
    llm = OpenAICompatible(base_url=flaky_server, model="m", max_retries=1, timeout=5)
    with pytest.raises(LLMError, match="HTTP 503"):
        asyncio.run(llm.complete("hi"))
    assert len(Flaky.calls) == 2
