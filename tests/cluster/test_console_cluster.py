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
        assert "6 Nodes" in str(app.screen.query_one("ViewBar").render())
        await pilot.press("down")
        details = app.screen.query_one("#nodes-detail-text")
        await wait_for(pilot, lambda: "resumed by node-b at row 18" in str(details.render()),
                       what="the takeover in the details")
