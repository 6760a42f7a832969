"""The console on a cluster store (contract 9), headless (Pilot): the Nodes view (key 6) lists the
engines of every node, alive and dead, with what was resumed elsewhere."""

from __future__ import annotations

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
        dead = EngineLease("node-a:41:aa", "host-a", 41, now - 100, now - 50, name="node-a",
                           version="0.1.0", slots=4, running=2, tasks=("skel/id2",))
        store.heartbeat(dead)
        store.record_takeover(Takeover("f" * 32, "node-a:41:aa", app.engine.node, "node-b", now - 40, 17,
                                       "resumed"))
        await pilot.press("6")
        screen = await shown(pilot, app, NodesScreen)
        await wait_for(pilot, lambda: len(screen.nodes) == 2, what="both engines")
        assert [(n.name, n.alive) for n in screen.nodes] == [("node-b", True), ("node-a", False)]
        # The bar names the Nodes view on a cluster store.
        assert "6 Nodes" in app.screen.query_one("ViewBar").content_for(120).plain
        await pilot.press("down")
        details = app.screen.query_one("#nodes-detail-text")
        await wait_for(pilot, lambda: "resumed by node-b at row 18" in str(details.render()),
                       what="the takeover in the details")


@pytest.mark.anyio
async def test_a_console_on_node_b_shows_and_stops_a_job_running_on_node_a(tmp_path: Path, pg_url: str) -> None:
    """The console of node B (embedded engine, own data dir) and an engine process on node A:
    B sees A's job progress live, reads its log and output (the facade the console's views use),
    and stops it."""
    from kzconsole.engine import JobStatus
    from kzconsole.widgets.job_list import JobList
    from tests.cluster.conftest import Cluster
    from tests.ui.conftest import screen_text

    cluster = Cluster(tmp_path / "cluster", pg_url)
    try:
        a = cluster.node("node-a").start(KZ_ROW_S="0.02")
        job_id = cluster.node("cli").add_fast("cl", "plain", 2000)
        # Node B has none of A's plugins: it must not run the job itself.
        settings = ui_settings(tmp_path / "b").with_overrides(store={"url": pg_url}, engine={"node": "node-b"})
        async with running_console(settings, start_engine=True, size=(120, 30)) as (app, pilot):
            engine = app.engine
            await wait_for(pilot, lambda: (engine.get_job(job_id) or None) and engine.get_job(job_id).success_count > 10,
                           what="node-a to run the job")
            await wait_for(pilot, lambda: job_id[:8] in screen_text(app) and "executing" in screen_text(app),
                           what="the job in node B's list")
            jobs = app.screen.query_one(JobList)
            first = engine.get_job(job_id).success_count
            # Live: the progress node B shows moves on without a key press.
            await wait_for(pilot, lambda: engine.get_job(job_id).success_count > first + 20, what="progress")
            assert jobs.highlighted is not None and jobs.highlighted.id == job_id
            log, _ = engine.read_log(engine.get_job(job_id))
            assert b"started by node-a:" in log  # the job's log, stored on the cluster
            with engine.open_output(engine.get_job(job_id)) as out:  # type: ignore[union-attr]
                assert out.read().startswith(b"n,error\n1,\n")
            await pilot.press("x")
            stopped = await wait_for(pilot, lambda: engine.get_job(job_id).status is JobStatus.STOPPED
                                     and engine.get_job(job_id), what="the job stopped", timeout=30)
            assert stopped.node == "node-a" and 0 < stopped.success_count < 2000
            await wait_for(pilot, lambda: "stopped" in screen_text(app), what="stopped shown")
        assert a.proc is not None and a.proc.poll() is None  # node A carries on
    finally:
        cluster.close()
