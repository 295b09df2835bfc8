"""Screenshot every page of the app in headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright; `apt-get install chromium` first). Starts `streamlit run app/main.py` on a free port.

    python scripts/screenshot_app.py --out docs/
"""
import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float = 90) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout} s")


def settle(page, timeout_ms: int = 120_000) -> None:
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=timeout_ms)
    page.wait_for_selector("[data-test-script-state='notRunning']", timeout=timeout_ms)
    page.wait_for_timeout(1000)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="docs")
    p.add_argument("--pages", nargs="*", default=[""], help="url paths of the pages ('' = the default page)")
    args = p.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless=true",
                               f"--server.port={port}", "--browser.gatherUsageStats=false"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(url)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for path in args.pages:
                page.goto(f"{url}/{path}")
                settle(page)
                out = Path(args.out) / f"app_{path or 'complete'}.png"
                page.screenshot(path=str(out), full_page=True)
                print(out)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
