"""Drive the app in a real browser: Debian's headless Chromium (/usr/bin/chromium, `apt-get install
chromium`; never `playwright install`) through Playwright, against `streamlit run app/main.py` on a
free port. The browser test (tests/test_app_browser.py) and the app benchmark (benchmarks/app.py)
use the helpers here; run as a script, it screenshots every page.

    python scripts/screenshot_app.py --out docs/app
"""
from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
# url path of each page (st.navigation names them after their files), and the file stem for screenshots
PAGES = {"complete": "", "attention": "attention", "depth": "depth", "bias": "bias", "palette": "palette"}
TITLES = {"complete": "Complete an image", "attention": "Attention", "depth": "Feature quality versus depth",
          "bias": "Bias probes", "palette": "Palette"}
# what the screenshots press first, so that each shows a result: (page, sidebar model or None, buttons)
SHOTS = {"complete": (None, ["Complete (same seed)"]), "attention": (None, []), "depth": (None, []),
         "bias": ("figures-p90", ["Run the tests"]), "palette": ("figures-p90", ["Fit palettes"])}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout} s")


@contextlib.contextmanager
def app_server(env: dict | None = None, log=None):
    """`streamlit run app/main.py` on a free port; yields (url, seconds until /_stcore/health answered)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless=true",
                               f"--server.port={port}", "--browser.gatherUsageStats=false"],
                              cwd=ROOT, env={**os.environ, **(env or {})},
                              stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT if log else subprocess.DEVNULL)
    try:
        wait_healthy(url)
        yield url, time.perf_counter() - t0
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


@contextlib.contextmanager
def chromium(n_pages: int = 1, width: int = 1400, height: int = 1000):
    """Headless Chromium: one page, or a list of `n_pages` pages each in its own browser context
    (separate cookies and storage: separate app sessions)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            pages = [browser.new_page(viewport={"width": width, "height": height}) for _ in range(n_pages)]
            yield pages[0] if n_pages == 1 else pages
        finally:
            browser.close()


def settle(page, timeout_ms: int = 120_000) -> None:
    """Wait until the app is connected and no script run is in progress."""
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=timeout_ms)
    # a rerun may start a moment after the click that caused it: give it that moment
    page.wait_for_timeout(150)
    page.wait_for_selector("[data-test-script-state='notRunning']", timeout=timeout_ms)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs/app")
    p.add_argument("--pages", nargs="*", default=list(PAGES), choices=list(PAGES))
    p.add_argument("--height", type=int, default=2600, help="window height in pixels")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # a tall window: Streamlit scrolls inside the page, so a full-page shot is only as tall as the window
    with app_server() as (url, _), chromium(height=args.height) as page:
        for name in args.pages:
            model, buttons = SHOTS[name]
            page.goto(url)  # through main.py, as a person opens the app
            settle(page)
            if model:
                page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first.click()
                page.get_by_role("option", name=f"{model} (bundled)").click()
                settle(page)
            if PAGES[name]:
                page.get_by_role("link", name=TITLES[name]).click()
                settle(page)
            for label in buttons:
                page.get_by_role("button", name=label).click()
                settle(page, timeout_ms=600_000)
            page.wait_for_timeout(1500)  # let charts finish drawing
            page.screenshot(path=str(out / f"{name}.png"), full_page=True)
            print(out / f"{name}.png")


if __name__ == "__main__":
    main()
