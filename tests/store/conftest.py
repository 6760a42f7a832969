"""Fixtures shared by every store backend's tests.

A backend's test module provides two fixtures and subclasses
:class:`tests.store.contract.StoreContract`:

- ``store``: a fresh, empty store (closed after the test);
- ``store_factory``: a picklable zero-argument callable that opens another handle on the *same*
  store, in this process or in a child process (how the contract tests play "another process").
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def mp() -> multiprocessing.context.SpawnContext:
    """The spawn context: a child starts clean (no forked SQLite handles or threads), as a
    separate command line or engine process would."""
    return multiprocessing.get_context("spawn")


@pytest.fixture
def start_process(
    mp: multiprocessing.context.SpawnContext,
) -> Iterator[Callable[..., multiprocessing.process.BaseProcess]]:
    """Start ``target(*args)`` in a child process; children still alive at teardown are killed,
    so a failing test never leaves a process holding the store."""
    started: list[multiprocessing.process.BaseProcess] = []

    def start(target: Callable[..., Any], *args: Any) -> multiprocessing.process.BaseProcess:
        process = mp.Process(target=target, args=args, daemon=True)
        process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)
