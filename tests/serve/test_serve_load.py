"""``alto serve`` under load, as a separate process on loopback: 200 concurrent clients
for 30 s (every accepted run answered correctly, the rest refused with 429, memory
bounded), and a client that stops reading a stream (the server does not buffer it
without bound). Figures are printed (``pytest -s``), not asserted as speeds."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from alto.serve.testing import free_port

PIPELINES = """
import asyncio
import alto

async def think(word):
    await asyncio.sleep(0.005)           # a SIMULATED stage: 5 ms of waiting per word
    return len(word)

words = alto.Pipeline("words")
words.output(words.input().expand(str.split).map(think, replicas=2).aggregate(lambda text, ls: sum(ls)))

def flood_items(n):
    for i in range(n):
        yield f"{i:08d}" + "x" * 1000    # ~1 KB per partial output

flood = alto.Pipeline("flood")
items = flood.input().expand(flood_items, name="items")
flood.output(items)
flood.output(items.aggregate(lambda n, xs: len(xs), name="count"))
"""


def _peak_rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


@contextlib.contextmanager
def server(tmp_path: Path, target: str, *args: str):
    (tmp_path / "load_pipelines.py").write_text(PIPELINES)
    port = free_port()
    cmd = [sys.executable, "-m", "alto.cli", "serve", f"{tmp_path / 'load_pipelines.py'}:{target}", "--port", str(port)]
    log = tmp_path / "server.log"  # kept: a failure below shows what the server said
    proc = subprocess.Popen([*cmd, *args], stdout=subprocess.DEVNULL, stderr=log.open("w"))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "the server exited"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        try:
            yield url, proc.pid
        except BaseException as exc:
            alive = "running" if proc.poll() is None else f"exited with {proc.returncode}"
            lines = [ln for ln in log.read_text(errors="replace").splitlines() if not ln.endswith(("200 OK", "429"))]
            raise AssertionError(f"{exc!r}; the server is {alive}; its log ends:\n" + "\n".join(lines[-40:])) from exc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_200_concurrent_clients_for_30_s_all_answered_or_refused(tmp_path):
    clients, duration = 200, 30.0
    texts = ["SMTP sends mail", "IMAP reads it on the server", "POP downloads it", "a b c d e f"]
    with server(tmp_path, "words", "--max-inflight", "64") as (url, pid):

        async def client(i: int, http: httpx.AsyncClient, stop: float, out: dict) -> None:
            k = i
            while time.monotonic() < stop:
                text = texts[k % len(texts)]
                k += 1
                t0 = time.monotonic()
                r = await http.post("/v1/runs", json={"input": text})
                if r.status_code == 200:
                    out["ok"].append(time.monotonic() - t0)
                    if r.json()["output"] != sum(len(w) for w in text.split()):
                        out["wrong"] += 1
                elif r.status_code == 429:
                    out["rejected"] += 1
                    await asyncio.sleep(float(r.headers.get("retry-after", "1")) / 10)
                else:
                    out["other"].append(r.status_code)

        async def main() -> dict:
            out: dict = {"ok": [], "rejected": 0, "wrong": 0, "other": []}
            limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
            async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
                stop = time.monotonic() + duration
                await asyncio.gather(*(client(i, http, stop, out) for i in range(clients)))
            return out

        out = asyncio.run(main())
        _, peak = _peak_rss_mb(pid)
    lat = sorted(out["ok"])
    p99 = lat[int(0.99 * (len(lat) - 1))] if lat else float("nan")
    print(
        f"\nload: {clients} clients x {duration:g} s: {len(lat) / duration:.0f} runs/s answered, "
        f"P99 {p99 * 1000:.0f} ms, {out['rejected']} refused (429), peak server RSS {peak:.0f} MiB"
    )
    assert out["wrong"] == 0 and out["other"] == []  # every accepted run answered correctly
    assert len(lat) > 100
    assert peak < 1024, f"server peak RSS {peak:.0f} MiB"


def test_a_client_that_stops_reading_does_not_grow_server_memory(tmp_path):
    """200,000 partial outputs of ~1 KB (~200 MB if buffered) to a client that reads one
    event and then nothing: backpressure holds the pipeline, the server stays small."""
    with server(tmp_path, "flood") as (url, pid):
        before, _ = _peak_rss_mb(pid)
        with (
            httpx.Client(base_url=url, timeout=60) as http,
            http.stream("POST", "/v1/runs", json={"input": 200_000, "stream": True}) as r,
        ):
            lines = r.iter_lines()
            assert next(lines).startswith("event: partial")
            time.sleep(5)  # not reading
            during, _ = _peak_rss_mb(pid)
        # the connection closed: the run's work is cancelled
    growth = during - before
    print(f"\nslow reader: server RSS {before:.0f} -> {during:.0f} MiB while 200,000 x 1 KB partial outputs waited")
    assert growth < 100, f"server grew {growth:.0f} MiB"
