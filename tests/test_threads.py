"""The thread policy: heavy calls use the cores other processes leave free, unless the user chose."""
import subprocess
import sys
import time

import pytest
import torch

from igpt_lite import threads
from igpt_lite.threads import LoadMeter, cpu_threads, free_threads


@pytest.fixture(autouse=True)
def no_user_setting(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(threads.ENV, raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_free_threads_leave_out_cores_that_others_keep_busy(monkeypatch):
    monkeypatch.setattr(threads, "cpu_count", lambda: 4)
    assert free_threads(0.0) == 4
    assert free_threads(0.3) == 4  # background noise is not a busy core
    assert free_threads(1.0) == 3
    assert free_threads(2.6) == 1
    assert free_threads(9.0) == 1  # never below one thread
    assert free_threads(None) == 4  # load unknown (no /proc/stat): torch's default


def test_environment_override_sets_the_threads_inside_and_restores_them_after(monkeypatch):
    torch.set_num_threads(threads.cpu_count())
    monkeypatch.setenv(threads.ENV, "1")
    with cpu_threads() as policy:
        assert policy.threads == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == threads.cpu_count()


@pytest.mark.parametrize("value, message", [("two", "IGPT_LITE_THREADS must be a whole number of threads, got 'two'"),
                                            ("0", "IGPT_LITE_THREADS must be at least 1, got 0")])
def test_a_bad_environment_override_is_refused_with_what_to_do(monkeypatch, value, message):
    monkeypatch.setenv(threads.ENV, value)
    with pytest.raises(ValueError, match=message):
        with cpu_threads():
            pass


@pytest.mark.skipif(threads.cpu_count() < 2, reason="needs 2 cores to tell the user's count from the default")
def test_a_count_the_user_set_with_torch_is_left_alone():
    torch.set_num_threads(threads.cpu_count() + 3)  # nothing this module would choose
    with cpu_threads() as policy:
        assert policy.hands_off and torch.get_num_threads() == threads.cpu_count() + 3


def test_omp_num_threads_is_left_to_torch(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with cpu_threads() as policy:
        assert policy.hands_off


def test_nested_heavy_calls_share_the_outer_decision(monkeypatch):
    monkeypatch.setenv(threads.ENV, "1")
    with cpu_threads() as outer:
        with cpu_threads() as inner:
            assert inner is outer


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")
def test_the_meter_sees_a_busy_neighbour():
    spin = subprocess.Popen([sys.executable, "-c", "while True:\n    pass"])
    try:
        time.sleep(0.5)
        meter = LoadMeter()
        time.sleep(1.0)
        seen = meter.others()
    finally:
        spin.kill()
        spin.wait()
    assert seen >= 0.5
