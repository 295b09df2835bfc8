"""The notebooks as a student uses them: JupyterLab started from this environment, each notebook (a
working copy, never the tracked file) opened in Debian's headless Chromium (Playwright), Run All in
quick mode (IGPT_FAST=1), then: no error output, the live loss chart of 02 redrawn in the page with
every evaluation while the training cell runs (JupyterLab's plotly renderer used to keep the first,
empty frame until the file was reopened), the answers still closed after Run All and after a save,
and each widget, moved once, changes its figure. Screenshots go to tmp_path (or $IGPT_SCREENSHOTS;
docs/notebooks/ holds the ones shown in the docs)."""
import contextlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]



def lab_missing() -> str | None:
    """Why JupyterLab cannot be driven here (the reason this module skips), or None when it can."""
    if not CHROMIUM.exists():
        return "needs Debian's chromium (make test installs it)"
    if shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) is None:
        return "needs JupyterLab in this environment (the notebooks extra)"
    if importlib.util.find_spec("playwright") is None:
        return "needs Playwright (the dev extra)"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(lab_missing() is not None, reason=lab_missing() or "")]

# the cell whose output is the figure to look at, found by a piece of its source, for the screenshot
SHOT_AT = {"01_palette": "palette_sweep_chart(", "02_pretraining": "figures.LiveFigure(",
           "03_probes": "widgets.interact(", "04_attention": "display(widgets.HBox", "05_bias": "bias_per_layer_chart("}

CELLS_JS = """() => window.jupyterapp.shell.currentWidget.content.widgets.map(c => ({
    type: c.model.type, source: c.model.sharedModel.getSource(),
    prompt: c.model.type === 'code' ? c.promptNode.textContent : '',
    kernel: window.jupyterapp.shell.currentWidget.sessionContext.kernelDisplayStatus}))"""
# the code cells with an error in their output: the start of their source and that output's text (the traceback)
ERRORS_JS = """() => window.jupyterapp.shell.currentWidget.content.widgets.filter(c => c.model.type === 'code')
    .flatMap(c => [...c.outputArea.node.querySelectorAll('.jp-OutputArea-output')].map(o => o.innerText)
        .filter(t => /Traceback|Error:/.test(t))
        .map(t => ({source: c.model.sharedModel.getSource().slice(0, 120), output: t})))"""
# the plotly figure in the output of the first cell whose source holds `piece`: its points per trace and a signature
FIGURE_JS = """(piece) => {
    const cell = window.jupyterapp.shell.currentWidget.content.widgets.find(
        c => c.model.type === 'code' && c.model.sharedModel.getSource().includes(piece));
    const plots = cell.outputArea.node.querySelectorAll('.js-plotly-plot');
    const gd = plots[plots.length - 1];
    if (!gd || !gd.data) return null;
    const text = JSON.stringify(gd.data.map(t => t.z || t.y || t.source || []));
    let hash = 0;
    for (let i = 0; i < text.length; i++) hash = (hash * 31 + text.charCodeAt(i)) | 0;
    return {points: gd.data.map(t => (t.x || []).length), title: (gd.layout.title || {}).text || '', signature: hash};
}"""
# 02's chart and, read in the same instant, whether the training cell is still running
TRAINING_JS = f"""() => ({{figure: ({FIGURE_JS})('figures.LiveFigure('),
    running: window.jupyterapp.shell.currentWidget.content.widgets.find(c => c.model.type === 'code'
        && c.model.sharedModel.getSource().includes('pretrain(')).promptNode.textContent.includes('*')}})"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def lab_server(work: Path, settings: Path):
    """JupyterLab on a free port with a token, serving `work`, with its settings in `settings`;
    yields (url, token)."""
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))  # every cell in the page, on screen or not
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text(json.dumps({"fetchNews": "false"}))  # no "Jupyter news?" toast over the screenshots
    token, port = secrets.token_hex(16), _free_port()
    env = {**os.environ, "IGPT_FAST": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(settings / "workspaces"),
           "JUPYTER_RUNTIME_DIR": str(settings / "runtime")}
    log_path = settings / "lab.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                                   f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
                                   f"--ServerApp.root_dir={work}", "--LabApp.expose_app_in_browser=True",
                                   *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
                                  cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            end = time.time() + 120
            while True:
                try:
                    urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                    break
                except OSError:
                    if time.time() > end or server.poll() is not None:
                        raise RuntimeError(f"JupyterLab did not start: {log_path.read_text()[-3000:]}")
                    time.sleep(0.3)
            yield url, token
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving working copies of the notebooks: (url, token, their folder)."""
    work = tmp_path_factory.mktemp("lab")
    for nb in NOTEBOOKS:
        shutil.copy(nb, work / nb.name)
    with lab_server(work, tmp_path_factory.mktemp("lab-settings")) as (url, token):
        yield url, token, work


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _shut_down_kernels(url, token):
    for k in json.load(urllib.request.urlopen(f"{url}/api/kernels?token={token}")):
        req = urllib.request.Request(f"{url}/api/kernels/{k['id']}?token={token}", method="DELETE")
        urllib.request.urlopen(req)


def _run_all(page, watch=None, timeout=400):
    """Run > Run All Cells, then wait until every code cell has run (or one failed) and the kernel
    is idle; watch(cells) is called every poll while it runs."""
    # not awaited: the command's promise settles only when every cell has run, so watch would see only the end
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    end, idle_since = time.time() + timeout, None
    while time.time() < end:
        cells = page.evaluate(CELLS_JS)
        if watch:
            watch(cells)
        busy = any("*" in c["prompt"] for c in cells) or cells[0]["kernel"] != "idle"
        ran = all(re.match(r"\[\d+\]", c["prompt"].strip()) for c in cells if c["type"] == "code")
        if busy:
            idle_since = None
        elif idle_since is None:
            idle_since = time.time()
        elif ran or time.time() - idle_since > 10:  # all done, or stopped at an error
            return cells
        page.wait_for_timeout(250)
    raise TimeoutError("Run All did not finish")


def _answers_closed(page) -> list[bool]:
    return page.evaluate("() => [...window.jupyterapp.shell.currentWidget.node"
                         ".querySelectorAll('.jp-MarkdownCell details')].map(d => !d.open)")


def _move_and_wait(page, piece, move, before, timeout=60):
    """Do `move` on a widget and wait until the figure in the output of the cell holding `piece` changes."""
    move()
    end = time.time() + timeout
    while time.time() < end:
        after = page.evaluate(FIGURE_JS, piece)
        if after and after != before:
            return after
        page.wait_for_timeout(250)
    raise AssertionError(f"the figure under the widget of {piece!r} did not change")


def _check_widgets(page, name):
    if name == "03_probes":  # the layer slider
        piece = "widgets.interact("
        before = page.evaluate(FIGURE_JS, piece)
        assert before, "the slider should show a figure after Run All"
        handle = page.locator(".jp-OutputArea .widget-slider .noUi-handle").first
        after = _move_and_wait(page, piece, lambda: (handle.focus(), handle.press("ArrowLeft")), before)  # from the best layer
        assert after["title"].split(":")[0] != before["title"].split(":")[0], (before["title"], after["title"])
    if name == "04_attention":  # image, row and column sliders, the layer dropdown
        piece = "display(widgets.HBox"
        before = page.evaluate(FIGURE_JS, piece)  # nothing until a widget moves
        handles = page.locator(".jp-OutputArea .widget-slider .noUi-handle")
        assert handles.count() == 3, handles.count()
        for i in range(3):
            before = _move_and_wait(page, piece, lambda: (handles.nth(i).focus(), handles.nth(i).press("ArrowRight")),
                                    before)
        _move_and_wait(page, piece, lambda: page.locator(".jp-OutputArea .widget-dropdown select").first
                       .select_option("1"), before)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_run_all_in_jupyterlab(lab, browser, path, tmp_path):
    url, token, work = lab
    shots = Path(os.environ.get("IGPT_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    tracked = path.read_bytes()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        # ?reset: a fresh workspace, not the last notebook's tabs
        page.goto(f"{url}/lab/tree/{path.name}?token={token}&reset", timeout=120_000)
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                               " && window.jupyterapp.shell.currentWidget.sessionContext"
                               " && window.jupyterapp.shell.currentWidget.sessionContext.kernelDisplayStatus === 'idle'",
                               timeout=120_000)
        during = []  # 02's chart as the page shows it while the training cell runs

        def watch(cells):
            if path.stem == "02_pretraining":
                seen = page.evaluate(TRAINING_JS)
                if seen["running"] and seen["figure"]:
                    during.append(seen["figure"])

        cells = _run_all(page, watch=watch)
        errors = page.evaluate(ERRORS_JS)
        assert not errors, f"{path.name}, the cell starting {errors[0]['source']!r}:\n{errors[0]['output'][-3000:]}"
        prompts = [c["prompt"].strip() for c in cells if c["type"] == "code"]
        assert all(re.match(r"\[\d+\]", p) for p in prompts), f"every code cell should have run: {prompts}"
        if path.stem == "02_pretraining":  # the chart on the page, redrawn in place (not reopened from the file)
            grown = max((min(f["points"]) for f in during), default=0)
            assert grown >= 2, f"while training ran the chart showed at most {grown} points a trace: {during[-3:]}"
            live = page.evaluate(FIGURE_JS, "figures.LiveFigure(")
            assert live and min(live["points"]) >= 2 and "last validation" in live["title"], live
        assert _answers_closed(page) == [True], "the answers should stay closed after Run All"
        _check_widgets(page, path.stem)
        page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        page.wait_for_timeout(1500)
        assert _answers_closed(page) == [True], "the answers should stay closed after a save"
        saved = json.loads((work / path.name).read_text())
        answers = [c for c in saved["cells"] if "answers" in c["metadata"].get("tags", [])]
        assert "".join(answers[0]["source"]).startswith("<details><summary>"), "the saved answers should be closed"
        assert not [o for c in saved["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
        assert any(c.get("outputs") for c in saved["cells"]), "the working copy should hold the outputs"
        assert path.read_bytes() == tracked, "the tracked notebook should be untouched"
        page.evaluate("(piece) => window.jupyterapp.shell.currentWidget.content.widgets.find("
                      "c => c.model.sharedModel.getSource().includes(piece)).node.scrollIntoView()", SHOT_AT[path.stem])
        page.wait_for_timeout(500)
        page.screenshot(path=str(shots / f"{path.stem}.png"))
    finally:
        page.close()
        _shut_down_kernels(url, token)
