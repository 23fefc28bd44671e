"""Screenshot of the web view of `alto serve` for the README (docs/serving.png).

    python examples/web_view_screenshot.py            # needs Debian's chromium

Serves the paper's fact-check pipeline on SIMULATED engines (claims stream out of the
answer, each claim's verdict arrives while later claims are still being written),
submits a question in headless Chromium, and takes the screenshot mid-run and at the end.
"""

from __future__ import annotations

import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

from alto.bench.paper_model import Setting, build_pipeline
from alto.serve import create_app

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def main() -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("needs Debian's chromium: apt-get install chromium")
    app = create_app(build_pipeline(Setting(claims=5, llm_replicas=2, search_replicas=2), time_scale=1.0))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    out = Path(__file__).resolve().parents[1] / "docs"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=FLAGS)
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#stages:has-text('verdicts')")
            page.fill("#input", "How does e-mail get from one computer to another?")
            page.click("#run")
            page.wait_for_selector(".group:nth-of-type(2)", timeout=30_000)
            page.screenshot(path=str(out / "serving_midrun.png"))
            page.wait_for_selector(".result", timeout=60_000)
            page.screenshot(path=str(out / "serving.png"), full_page=True)
            browser.close()
    finally:
        server.should_exit = True
    print(f"wrote {out / 'serving.png'} and {out / 'serving_midrun.png'}")


if __name__ == "__main__":
    main()
