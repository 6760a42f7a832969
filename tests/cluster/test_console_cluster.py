"""The console on a cluster store (contract 9), headless (Pilot): the Nodes view (key 6) lists the
engines of every node, alive and dead, with what was resumed elsewhere; the console of one node
follows, tails, saves and stops a job another node runs, through its own screens and keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kzconsole.engine.models import EngineLease, Takeover
from tests.ui.conftest import running_console, shown, ui_settings, wait_for


@pytest.mark.anyio
async def test_the_nodes_view_lists_every_engine_alive_or_dead(tmp_path: Path, pg_url: str) -> None:
    from kzconsole.screens.nodes import NodesScreen

    settings = ui_settings(tmp_path).with_overrides(store={"url": pg_url}, engine={"node": "node-b"})
    async with running_console(settings, start_engine=True, size=(110, 30)) as (app, pilot):
        store = app.engine.store
        now = store.now()
        dead = EngineLease(
            "node-a:41:aa",
            "host-a",
            41,
            now - 100,
            now - 50,
            name="node-a",
            version="0.1.0",
            slots=4,
            running=2,
            tasks=("skel/id2",),
        )
        store.heartbeat(dead)
        store.record_takeover(Takeover("f" * 32, "node-a:41:aa", app.engine.node, "node-b", now - 40, 17, "resumed"))
        await pilot.press("6")
        screen = await shown(pilot, app, NodesScreen)
        await wait_for(pilot, lambda: len(screen.nodes) == 2, what="both engines")
        assert [(n.name, n.alive) for n in screen.nodes] == [("node-b", True), ("node-a", False)]
        # The bar names the Nodes view on a cluster store.
        assert "6 Nodes" in app.screen.query_one("ViewBar").content_for(120).plain
        await pilot.press("down")
        details = app.screen.query_one("#nodes-detail-text")
        await wait_for(
            pilot, lambda: "resumed by node-b at row 18" in str(details.render()), what="the takeover in the details"
        )


def _shown_done(app: object) -> int | None:
    """The rows done that the job view's progress line shows ("1,234 of 2,000 rows")."""
    from tests.ui.conftest import screen_text

    found = re.search(r"([\d,]+) of 2,000 rows", screen_text(app))
    return int(found.group(1).replace(",", "")) if found else None


def _logged_rows(log: object, pid: int) -> list[int]:
    """The row numbers of the "row N on pid P" lines the log tab shows, written by ``pid``."""
    rows = []
    for line in log.lines:  # type: ignore[attr-defined]
        found = re.search(r"row (\d+) on pid (\d+)", line)
        if found:
            assert int(found.group(2)) == pid, line  # only node A runs the job
            rows.append(int(found.group(1)))
    return rows


@pytest.mark.anyio
async def test_a_console_on_node_b_shows_tails_saves_and_stops_a_job_running_on_node_a(
    tmp_path: Path, pg_url: str
) -> None:
    """The console of node B (embedded engine, own data dir, none of A's plugins) and an engine
    process on node A, all through the console's screens and keys: the jobs list shows A's job
    executing; enter opens its view, whose progress moves on by itself; the log tab (l) shows
    the lines A's process writes as it writes them; the save key (w) saves the output so far to a
    file; the stop key (x) stops it on node A, and the view shows it stopped."""
    from kzconsole.engine import JobStatus
    from kzconsole.screens.job_detail import JobDetailScreen
    from kzconsole.widgets.job_list import JobList
    from kzconsole.widgets.log_tail import LogTail
    from tests.cluster.conftest import Cluster
    from tests.ui.conftest import screen_text

    cluster = Cluster(tmp_path / "cluster", pg_url)
    try:
        a = cluster.node("node-a").start(KZ_ROW_S="0.02")
        job_id = cluster.node("cli").add_fast("cl", "chatty", 2000)
        settings = ui_settings(tmp_path / "b").with_overrides(store={"url": pg_url}, engine={"node": "node-b"})
        async with running_console(settings, start_engine=True, size=(120, 30)) as (app, pilot):
            await wait_for(
                pilot,
                lambda: job_id[:8] in screen_text(app) and "executing" in screen_text(app),
                what="the job executing in node B's list",
                timeout=30,
            )
            assert app.screen.query_one(JobList).highlighted.id == job_id
            await pilot.press("enter")
            screen = await shown(pilot, app, JobDetailScreen)
            assert screen.job.id == job_id and screen.job.node == "node-a"
            # Live: the rows done that the view shows move on without a key press.
            first = await wait_for(pilot, lambda: _shown_done(app), what="the progress line")
            await wait_for(pilot, lambda: (_shown_done(app) or 0) > first + 20, what="progress shown moving on")

            # The log tab tails the lines node A's process writes while the view is open.
            await pilot.press("l")
            log = screen.query_one(LogTail)
            await wait_for(pilot, lambda: _logged_rows(log, a.pid), what="node A's log lines")
            seen = max(_logged_rows(log, a.pid))
            await wait_for(pilot, lambda: max(_logged_rows(log, a.pid)) > seen + 20, what="new log lines")
            rows = _logged_rows(log, a.pid)
            assert rows == list(range(rows[0], rows[0] + len(rows)))  # each line once, in order
            assert any("started by node-a:" in line for line in log.lines)

            # The save key: the output so far, copied to a file through the save dialog.
            await pilot.press("w")
            await wait_for(pilot, lambda: "Save a copy" in screen_text(app), what="the save dialog")
            dest = tmp_path / "saved.csv"
            app.screen.query_one("#dest").value = str(dest)
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen is screen and dest.exists(), what="the output saved")
            saved = dest.read_text().splitlines()
            assert saved[0] == "n,error" and len(saved) > 1
            assert saved[1:] == [f"{n}," for n in range(1, len(saved))]  # the rows so far, in order

            # The stop key, in the job view: node A stops the job before its next row.
            await pilot.press("x")
            await wait_for(pilot, lambda: screen.job.status is JobStatus.STOPPED, what="the job stopped", timeout=30)
            await wait_for(pilot, lambda: "stopped" in screen_text(app), what="stopped shown")
        stopped = cluster.store.get_job(job_id)
        assert stopped is not None and stopped.node == "node-a" and len(saved) - 1 <= stopped.success_count < 2000
        # Every row A ran has exactly one output row, and what was saved is the start of them.
        out = cluster.output_rows(job_id)
        assert out == [[str(n), ""] for n in range(1, stopped.success_count + 1)]
        ran = sorted(row for job, row, _, _ in cluster.calls_by_pid()[a.pid] if job == job_id)
        assert ran == list(range(1, stopped.success_count + 1))
        assert a.proc is not None and a.proc.poll() is None  # node A carries on
    finally:
        cluster.close()
