"""Screenshot of the web view of `alto serve` for the README (docs/serving.png).

    python examples/web_view_screenshot.py            # needs Debian's chromium

Serves the paper's fact-check pipeline on SIMULATED engines (claims stream out of the
answer, each claim's verdict arrives while later claims are still being written),
submits a question in headless Chromium, and takes the screenshot mid-run and at the end.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from alto.serve import create_app
from alto.serve.testing import CHROMIUM_FLAGS, running

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's benchmarks package
from benchmarks.paper_model import Setting, build_pipeline, make_pools


def main() -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("needs Debian's chromium: apt-get install chromium")
    setting = Setting(sentences=4)
    app = create_app(build_pipeline(setting, make_pools(setting, "shared", time_scale=1.0)))
    out = Path(__file__).resolve().parents[1] / "docs"
    with running(app) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.goto(f"{url}/")
            page.wait_for_selector("#stages:has-text('verify')")
            page.fill("#input", "How does e-mail get from one computer to another?")
            page.click("#run")
            page.wait_for_selector(".group:nth-of-type(2)", timeout=30_000)
            page.screenshot(path=str(out / "serving_midrun.png"))
            page.wait_for_selector(".result", timeout=60_000)
            page.screenshot(path=str(out / "serving.png"), full_page=True)
        finally:
            browser.close()
    print(f"wrote {out / 'serving.png'} and {out / 'serving_midrun.png'}")


if __name__ == "__main__":
    main()
