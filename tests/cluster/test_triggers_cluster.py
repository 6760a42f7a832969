"""Triggers once per cluster (contract 9) on a real PostgreSQL store: three trigger engines, each
on its own store handle (as on three nodes), stepped together through several minutely
boundaries on an injected clock; and a firing whose engine died, recorded as such."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from kzconsole.engine.clock import FakeClock
from kzconsole.engine.models import EngineLease
from kzconsole.engine.store.postgres import PostgresStore
from kzconsole.engine.triggers import TriggerEngine
from tests.engine.test_triggers import T0, at, catalog_with


@pytest.fixture
def handles(pg_url: str) -> Iterator[list[PostgresStore]]:
    made = [PostgresStore(pg_url) for _ in range(3)]
    yield made
    for store in made:
        store.close()


def test_three_engines_fire_each_minutely_boundary_once(handles: list[PostgresStore]) -> None:
    calls: list[str] = []
    lock = threading.Lock()

    def count() -> None:
        with lock:
            calls.append(threading.current_thread().name)

    clock = FakeClock(T0)
    engines = [
        TriggerEngine(
            catalog=catalog_with(("minutely", count)),
            store=store,
            node=f"node-{n}",
            clock=clock,
            databases=list,
            browse_dbs_interval_s=3600,
        )
        for n, store in enumerate(handles)
    ]
    for te in engines:
        te.arm(clock.time())
    try:
        boundaries = [at(9, minute) for minute in range(1, 6)]
        for boundary in boundaries:
            clock.set(boundary)
            barrier = threading.Barrier(len(engines))

            def step(te: TriggerEngine, now: float = boundary, barrier: threading.Barrier = barrier) -> None:
                barrier.wait(10)
                te.step(now)

            workers = [threading.Thread(target=step, args=(te,)) for te in engines]
            for w in workers:
                w.start()
            for w in workers:
                w.join(30)
            assert all(te.wait_idle(10) for te in engines)
        assert len(calls) == len(boundaries)
        firings = handles[0].list_firings(trigger="minutely")
        assert len({f.key for f in firings}) == len(boundaries) == len(firings)
        assert {f.status for f in firings} == {"ok"}
        assert {f.node for f in firings} <= {"node-0", "node-1", "node-2"}
    finally:
        for te in engines:
            te.stop(timeout=5)


def test_a_firing_whose_engine_died_is_recorded_as_such(handles: list[PostgresStore]) -> None:
    survivor_store, ghost_store, _ = handles
    ghost = ghost_store.begin_firing("minutely", "minutely:old", "ghost-node", at(8, 0))
    assert ghost is not None
    now = survivor_store.now()
    ghost_store.heartbeat(EngineLease("ghost-node", "elsewhere", 1, now - 60, now - 30))  # expired
    calls: list[int] = []
    clock = FakeClock(T0)
    te = TriggerEngine(
        catalog=catalog_with(("minutely", lambda: calls.append(1))),
        store=survivor_store,
        node="node-0",
        clock=clock,
        databases=list,
        browse_dbs_interval_s=3600,
    )
    te.arm(clock.time())
    try:
        clock.set(at(9, 1))
        te.step(at(9, 1))
        assert te.wait_idle(10)
    finally:
        te.stop(timeout=5)
    assert calls == [1]
    closed = next(f for f in survivor_store.list_firings() if f.id == ghost.id)
    assert closed.status == "failed"
    assert "ghost-node" in closed.reason and "stopped before it ended" in closed.reason
