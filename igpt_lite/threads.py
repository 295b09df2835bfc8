"""How many CPU threads torch uses for a heavy call: the cores other work leaves free.

torch starts one OpenMP thread per core and splits every operation evenly between them. When
another program keeps a core busy, the thread that shares it falls behind and the others wait for
it at the end of every operation: on 2 cores with one busy neighbour, a small model's completion
ran 13x slower with torch's 2 threads than with 1 (docs/performance.md). So before a heavy call
(and every few seconds during a long one) we count the cores that other processes keep busy and
use the rest.

Who decides, first match wins:
  IGPT_LITE_THREADS=N   always N threads;
  OMP_NUM_THREADS=N     torch's own setting, left alone;
  torch.set_num_threads(N) called by you before the call, left alone;
  otherwise             the free cores (at least 1), measured from /proc/stat (Linux); elsewhere
                        torch's default.

Example::

    with cpu_threads():          # what the CLI and the app do around each heavy call
        done = complete_images(ck.model, ck.palette, images, keep_rows=14)
"""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

import torch

ENV = "IGPT_LITE_THREADS"
SAMPLE_S = 0.1  # the first look at the machine: long enough for a few clock ticks per core
RECHECK_S = 2.0  # then at most this often during a long call
BUSY = 0.5  # a core counts as taken when others use at least this much of it

_lock = threading.Lock()
_in_use: dict[int, int] = {}  # our own heavy calls in this process (an app's sessions): thread id -> threads
_set_by_us: set[int] = set()  # thread counts this module has set: any other count was the user's


def cpu_count() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _busy_and_own() -> tuple[float, float] | None:
    """(seconds all cores spent busy, seconds this process ran) so far, or None without /proc/stat.
    Niced and idle-class work counts as busy too: measured here, a background training in the idle
    scheduling class (`chrt --idle`) slowed 2-thread sampling 13x, as much as a normal neighbour."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields] + [0] * 8  # user nice system idle iowait irq softirq steal
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]
    t = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), t.user + t.system


class LoadMeter:
    """Cores kept busy by other processes since the last reading (this process's own work left out)."""

    def __init__(self):
        self._last = _busy_and_own()
        self._at = time.monotonic()

    def others(self) -> float | None:
        now, at = _busy_and_own(), time.monotonic()
        if now is None or self._last is None or at - self._at < 0.02:
            return None
        load = ((now[0] - self._last[0]) - (now[1] - self._last[1])) / (at - self._at)
        self._last, self._at = now, at
        return max(0.0, load)


def _fixed() -> int | None:
    """The count the user chose (IGPT_LITE_THREADS), or None to decide from the load."""
    value = os.environ.get(ENV)
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{ENV} must be a whole number of threads, got {value!r}") from None
    if n < 1:
        raise ValueError(f"{ENV} must be at least 1, got {n}")
    return n


def _user_chose() -> bool:
    """OMP_NUM_THREADS set, or torch.set_num_threads called with a count we did not set."""
    if os.environ.get("OMP_NUM_THREADS"):
        return True
    n = torch.get_num_threads()
    return n != cpu_count() and n not in _set_by_us


def free_threads(others: float | None) -> int:
    """Threads for a call, given the cores other processes keep busy (None: unknown)."""
    n = cpu_count()
    with _lock:
        mine = sum(v for k, v in _in_use.items() if k != threading.get_ident())
    taken = int(others + 1 - BUSY) if others is not None else 0
    return max(1, n - taken - mine)


class Policy:
    """The thread count of one heavy call: decided at the start, revised by `check()` during it."""

    def __init__(self):
        self.fixed = _fixed()
        self.hands_off = self.fixed is None and _user_chose()
        self.meter = LoadMeter()
        self._checked = time.monotonic()
        if self.fixed is None and not self.hands_off:
            time.sleep(SAMPLE_S)  # a first look at the machine while we are idle
        self.threads = self._decide()

    def _decide(self) -> int:
        if self.hands_off:
            return torch.get_num_threads()
        n = self.fixed if self.fixed is not None else free_threads(self.meter.others())
        if n != torch.get_num_threads():
            _set_by_us.add(n)
            torch.set_num_threads(n)
        with _lock:
            _in_use[threading.get_ident()] = n
        return n

    def check(self) -> int:
        """Revise the count when RECHECK_S has passed (cheap: call it every step of a loop)."""
        if self.fixed is None and not self.hands_off and time.monotonic() - self._checked >= RECHECK_S:
            self._checked = time.monotonic()
            self.threads = self._decide()
        return self.threads


_current = threading.local()


@contextmanager
def cpu_threads():
    """Run the enclosed heavy call with the threads the machine has free (see the module's notes);
    long loops inside call `check_threads()`. Nested uses share the outer decision."""
    if getattr(_current, "policy", None) is not None:
        yield _current.policy
        return
    before = torch.get_num_threads()
    policy = Policy()
    _current.policy = policy
    try:
        yield policy
    finally:
        _current.policy = None
        with _lock:
            _in_use.pop(threading.get_ident(), None)
        if not policy.hands_off and torch.get_num_threads() != before:
            torch.set_num_threads(before)


def check_threads() -> None:
    """Inside `cpu_threads()`: revise the thread count every few seconds. Elsewhere: nothing."""
    policy = getattr(_current, "policy", None)
    if policy is not None:
        policy.check()
