"""igpt-lite as a user installs it: a wheel built from this checkout, installed with its extras in a
fresh virtual environment, used from a folder that is not the repository."""
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def other_address() -> str | None:
    """An address of this machine that is not loopback (the app must not answer there)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin folder, a working folder outside the checkout) with igpt-lite[app,hub] installed from a wheel."""
    base = tmp_path_factory.mktemp("user")
    # nothing of this checkout may leak in (a PYTHONPATH pointing here makes pip think it is installed);
    # Python keeps the bytecode of what it imports, as by default (pip compiles nothing, below)
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")}
    wheels = base / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, ROOT], check=True,
                   cwd=base, env=clean)
    wheel = next(wheels.glob("igpt_lite-*.whl"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, env=clean)
    # the torch CI tests, from this machine's disk, within the wheel's own range (torch>=2.4); one resolve
    # for both, and no byte-compiling of every installed file: only what the tests import gets compiled
    subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-compile", "torch==2.13.0",
                    f"{wheel}[app,hub]"], check=True, env=clean, cwd=base)
    work = base / "elsewhere"
    work.mkdir()
    env = {**clean, "HOME": str(base / "home"), "PATH": f"{venv / 'bin'}:{clean['PATH']}"}
    return venv / "bin", work, env


def run(installed, *args, timeout=300):
    bin_dir, work, env = installed
    return subprocess.run([*args], cwd=work, env=env, capture_output=True, text=True, timeout=timeout)


def test_version_and_the_bundled_models_come_from_the_installed_package(installed):
    bin_dir = installed[0]
    out = run(installed, bin_dir / "igpt-lite", "--version")
    assert out.returncode == 0, out.stderr
    version = re.search(r'__version__ = "([^"]+)"', (ROOT / "igpt_lite" / "__init__.py").read_text()).group(1)
    assert out.stdout.strip() == f"igpt-lite {version}"
    info = run(installed, bin_dir / "igpt-lite", "info", "--json")
    assert info.returncode == 0, info.stderr
    models = json.loads(info.stdout)["models"]
    assert {"mnist", "mnist-small", "shapes", "figures-p50", "figures-p90", "mnist-canvas"} <= set(models)
    assert all("site-packages/igpt_lite/models" in path for path in models.values())


def test_complete_writes_its_png_in_the_users_folder(installed):
    bin_dir, work, _ = installed
    out = run(installed, bin_dir / "igpt-lite", "complete", "--model", "mnist", "--index", "0", "1",
              "--samples", "2", "--out", "completions.png", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["png"] == "completions.png" and (work / "completions.png").stat().st_size > 0


def test_readmes_python_snippet_runs(installed):
    snippet = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    out = run(installed, installed[0] / "python", "-c", snippet)
    assert out.returncode == 0, out.stderr


def test_the_app_answers_on_loopback_only(installed):
    bin_dir, work, env = installed
    port = free_port()
    app = subprocess.Popen([bin_dir / "igpt-lite", "app", "--port", str(port)], cwd=work, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, health = time.time() + 90, None
        while time.time() < deadline and health is None:
            try:
                health = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read()
            except OSError:
                time.sleep(0.5)
        assert health == b"ok", "the app did not answer on 127.0.0.1"
        address = other_address()
        if address:
            with pytest.raises(OSError):
                urllib.request.urlopen(f"http://{address}:{port}/_stcore/health", timeout=2)
    finally:
        app.terminate()
        app.wait(timeout=20)
