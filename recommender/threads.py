"""Loops whose steps are independent and spend their time in numpy or scipy code that releases
the GIL (sorting, arithmetic, sparse products), shared by threads: one process, no copies."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def available_cpus() -> int:
    """The CPUs this process may run on (all of them where the OS cannot say)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def thread_map(function: Callable[..., Result], *items: Iterable, threads: int | None = None
               ) -> list[Result]:
    """[function(*args) for args in zip(*items)], on up to `threads` threads (None: one per
    available CPU), results in order."""
    work = list(zip(*items, strict=True))
    threads = min(threads or available_cpus(), len(work))
    if threads <= 1:
        return [function(*args) for args in work]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda args: function(*args), work))
