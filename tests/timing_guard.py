"""A hang guard for code that must stay linear: its CPU time against a linear pass over the same input.

The guarded bugs (regexes that backtracked over every split of a run of spaces, loops that
compared every atom with every other) took seconds to minutes on the tests' inputs, where the
linear code takes milliseconds. Wall-clock limits told the two apart on an idle machine only:
with 2 cores and a load of 5 to 12, a 0.05 s parse took 0.3 s and failed a 0.2 s limit. So:

- time is this process's CPU time (`time.process_time`): waiting for a core does not count;
- the budget is FACTOR times a reference pass over the same input, timed just before, so a
  slower machine gets a larger budget (and at least FLOOR_S, for first calls that compile
  patterns or import modules);
- the work is stopped once it has spent its budget (SIGPROF, which also counts CPU time), so a
  regression fails in seconds instead of running for minutes;
- one try over budget may still be noise (another process thrashing the caches): two are not.

Measured on the guarded inputs (CPU time, a busy 2-core machine): the linear code takes at most
~0.1 s where the budget is FLOOR_S, and at most ~120 reference passes (1.1 s of a 9 s budget)
elsewhere; the old code took 8 s to minutes, 6 to over 70 times its budget. Budgets are CPU
seconds, so they hold whatever else the machine runs; a slower machine scales both sides.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from typing import Callable, TypeVar

import pytest

FACTOR = 1000
FLOOR_S = 1.0  # CPU seconds
TRIES = 2

_TOKENS = re.compile(r"\w+|\s+|[^\w\s]+")  # visits every character once

Result = TypeVar("Result")


class _OverBudget(BaseException):
    """Stops the work. Not an Exception: the code under test must not take it for one of its own errors."""


def _raise_over_budget(signum, frame):
    raise _OverBudget


def text_pass(text: str) -> Callable[[], object]:
    """The reference for text: one regex pass over every character of it."""
    return lambda: _TOKENS.findall(text)


def _cpu_seconds(function: Callable[[], object]) -> float:
    start = time.process_time()
    function()
    return time.process_time() - start


def budget_for(reference: Callable[[], object]) -> float:
    """FACTOR times the reference's best of three (its first run may still warm caches up)."""
    return max(FLOOR_S, FACTOR * min(_cpu_seconds(reference) for _ in range(3)))


def _stopped_after(seconds: float, work: Callable[[], Result]) -> tuple[bool, Result | None]:
    """(True, result) when `work` finished within `seconds` of CPU time, else (False, None)."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        start = time.process_time()
        result = work()
        return time.process_time() - start <= seconds, result
    previous = signal.signal(signal.SIGPROF, _raise_over_budget)
    try:
        signal.setitimer(signal.ITIMER_PROF, seconds)
        try:
            return True, work()
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)  # the timer fires once: after this line it cannot
    except _OverBudget:
        return False, None
    finally:
        signal.signal(signal.SIGPROF, previous)


def within_cpu_seconds(seconds: float, work: Callable[[], Result], what: str) -> Result:
    """`work()`'s result; fails the test when it spends over `seconds` of CPU time TRIES times."""
    for _ in range(TRIES):
        finished, result = _stopped_after(seconds, work)
        if finished:
            return result
    pytest.fail(f"{what}: {TRIES} tries each spent over {seconds:.2f} s of CPU time and were stopped there",
                pytrace=False)


def within_linear_time(work: Callable[[], Result], reference: str | Callable[[], object], what: str = "") -> Result:
    """`work()`'s result; fails the test when it spends more than its budget of CPU time TRIES times.

    `reference` is the input text (timed as one regex pass over it) or a function doing a
    linear pass over the input (reading a file, sorting coordinates); `what` names the input.
    """
    if isinstance(reference, str):
        what = what or f"{reference[:12]!r}... ({len(reference)} characters)"
        reference = text_pass(reference)
    budget = budget_for(reference)
    return within_cpu_seconds(budget, work, f"{what}, a super-linear regression (budget: at least {FLOOR_S} s, "
                                            f"else {FACTOR} times a linear pass over the same input)")
