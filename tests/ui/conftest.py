"""Fixtures for the console's tests: settings on a private data dir, fixed jobs, a running console.

Time is UTC for every UI test (snapshots print times); the anyio plugin runs async tests on asyncio.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_settings

os.environ["TZ"] = "UTC"
time.tzset()

T0 = 1_764_320_400.0  # 2025-11-28 09:00:00 UTC, FakeClock's default start
ACCOUNT = "0123456789abcdef0123456789abcdef"
OTHER_ACCOUNT = "fedcba9876543210fedcba9876543210"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _colour(monkeypatch):
    # NO_COLOR changes every snapshot; a test machine may set it.
    monkeypatch.delenv("NO_COLOR", raising=False)


def ui_settings(tmp_path: Path, plugin_dir: Path | None = None, **tasks: Any):
    settings = make_settings(tmp_path, plugin_dir, **tasks)
    return settings.with_overrides(triggers={"enabled": False}, plugins={"reload": False})


def job_id(n: int) -> str:
    """A fixed, readable job id: 000...0n with a letter prefix per hundred."""
    return f"{n:08x}" + "c0ffee00" * 3


def make_job(n: int, **fields: Any):
    from kzconsole.engine import JobRecord, JobStatus

    values: dict[str, Any] = {
        "id": job_id(n),
        "account_id": ACCOUNT,
        "auth_account_id": ACCOUNT,
        "category": "skel",
        "action": "id2",
        "file_name": "in.csv",
        "status": JobStatus.PENDING,
        "created": T0 - 3600 + n * 60,
        "total_count": 100,
        "wait_after_row_ms": 0,
        "input_path": None,
    }
    values.update(fields)
    if isinstance(values["status"], str):
        values["status"] = JobStatus(values["status"])
    return JobRecord(**values)


def seed_jobs(engine) -> list[Any]:
    """A fixed set of jobs in every status, with files for the first two (the job view), stored
    through the store's interface as an engine would."""
    from kzconsole.engine import JobStatus

    jobs = [
        make_job(
            1,
            status=JobStatus.SUCCESS,
            start_timestamp=T0 - 3000,
            end_timestamp=T0 - 2990,
            success_count=100,
            output_rows=100,
            node="node-a",
            input_path=f"jobs/{job_id(1)}/in.csv",
        ),
        make_job(
            2,
            status=JobStatus.PARTIAL,
            start_timestamp=T0 - 2900,
            end_timestamp=T0 - 2800,
            success_count=90,
            failure_count=10,
            output_rows=100,
            node="node-a",
        ),
        make_job(
            3,
            status=JobStatus.FAILURE,
            start_timestamp=T0 - 2700,
            end_timestamp=T0 - 2650,
            failure_count=100,
            output_rows=100,
            node="node-a",
            category="numbers",
            action="e164",
        ),
        make_job(
            4,
            status=JobStatus.STOPPED,
            start_timestamp=T0 - 2500,
            end_timestamp=T0 - 2400,
            success_count=40,
            output_rows=40,
            error="stopped by operator",
            node="node-a",
        ),
        make_job(
            5,
            status=JobStatus.INTERNAL_ERROR,
            start_timestamp=T0 - 2300,
            end_timestamp=T0 - 2300,
            error="task skel/gone is not in the catalog",
            action="gone",
            node="node-a",
        ),
        make_job(
            6,
            status=JobStatus.EXECUTING,
            start_timestamp=T0 - 120,
            success_count=55,
            failure_count=5,
            output_rows=60,
            node="node-b",
            owner="node-b",
            account_id=OTHER_ACCOUNT,
            total_count=200,
        ),
        make_job(7, status=JobStatus.PENDING, queued_at=T0 - 30),
        make_job(8, status=JobStatus.PENDING, total_count=None, file_name=None, category="skel", action="count"),
    ]
    first_input = "col1,col2\n" + "".join(f"a{i},b{i}\n" for i in range(100))
    for job in jobs:
        engine.store.create_job(job, input=io.BytesIO(first_input.encode()) if job.id == job_id(1) else None)
    store = engine.store
    store.append_file(
        job_id(1), "output", ("Col1,Col2,error\n" + "".join(f"a{i},b{i},\n" for i in range(100))).encode()
    )
    store.append_file(
        job_id(1),
        "log",
        (
            b"2025-11-28 08:10:00 INFO    job started: skel/id2, 100 rows\n"
            b"2025-11-28 08:10:05 WARNING row 7 looked odd\n"
            b"2025-11-28 08:10:10 INFO    job finished: success\n"
        ),
    )
    store.append_file(
        job_id(2),
        "output",
        (
            "Col1,Col2,error\n"
            + "".join(f"a{i},b{i},{'bad field(s): col2' if i % 10 == 3 else ''}\n" for i in range(100))
        ).encode(),
    )
    return jobs


async def wait_for(pilot, condition: Callable[[], Any], *, timeout: float = 15.0, what: str = "") -> Any:
    """Let the app run until ``condition()`` is truthy (engine threads work meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await pilot.pause(0.05)


@asynccontextmanager
async def running_console(
    settings, *, start_engine: bool = True, size=(100, 30), clock=None, engine=None
) -> AsyncIterator[tuple[Any, Any]]:
    from kzconsole.app import KzConsoleApp

    app = KzConsoleApp(settings, start_engine=start_engine, clock=clock, engine=engine)
    try:
        async with app.run_test(size=size) as pilot:
            if start_engine:
                await wait_for(
                    pilot,
                    lambda: app.engine_state != "starting" and app.engine_state != "off",
                    what="the engine to start",
                )
                assert app.engine_running, app.engine_error
            await pilot.pause()
            yield app, pilot
    finally:
        # As run_console does: the engine stops after the app, off the event loop.
        app.engine.stop(timeout=5)
        app.engine.close()


def screen_text(app) -> str:
    """What the terminal shows, as plain text (one line per row)."""
    # Textual has no public way to read the screen as text (export_screenshot draws the same
    # compositor's strips as SVG): the compositor is the one place they can be read from.
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip).rstrip() for strip in strips)


async def shown(pilot, app, screen_type: type) -> Any:
    """Wait until a screen of this type is the visible one, mounted, and return it."""
    return await wait_for(
        pilot,
        lambda: isinstance(app.screen, screen_type) and app.screen.is_mounted and app.screen,
        what=f"{screen_type.__name__} to show",
    )


def messages(app) -> list[str]:
    """The message line's messages so far, oldest first, as the line shows them."""
    return [message.line() for message in app.message_log]


def said(app, *words: str) -> bool:
    """Whether a message so far holds every one of ``words``."""
    return any(all(word in line for word in words) for line in messages(app))
