"""Triggers (contract 2.6, 7): alignment, serial execution, the skip rule, database passes,
once-per-firing across engines, history, the facade and the command line.

Time is a FakeClock driven through ``TriggerEngine.step(now)``; firings run in their threads and
the tests wait for them with ``wait_idle`` (never a sleep)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from kzconsole.engine.catalog import Catalog, PluginSource
from kzconsole.engine.clock import FakeClock
from kzconsole.engine.events import EventBus, TriggerFired
from kzconsole.engine.models import EngineLease
from kzconsole.engine.store.sqlite import SQLiteStore
from kzconsole.engine.triggers import TriggerEngine, boundary_at, next_boundary, seconds_until
from kzconsole.plugin import Database, TriggerSpec, Where
from tests.conftest import make_settings

UTC = dt.UTC
T0 = dt.datetime(2025, 11, 28, 9, 0, 30, tzinfo=UTC).timestamp()  # 09:00:30 UTC
SRC = "/plugins/test_plugin.py"


def at(h: int, m: int, s: float = 0, day: int = 28) -> float:
    whole = int(s)
    return dt.datetime(2025, 11, day, h, m, whole, tzinfo=UTC).timestamp() + (s - whole)


# --- alignment: the original's test vectors (kazoo-original.md 12.2) ----------------------------

MINUTE = [((1, 2, 0), 60), ((1, 2, 1), 59), ((1, 2, 30), 30), ((1, 2, 58), 2), ((1, 2, 59), 1), ((1, 2, 60), 0)]
HOUR = [
    ((1, 0, 0), 3600),
    ((1, 0, 1), 3599),
    ((1, 1, 0), 3540),
    ((1, 1, 1), 3539),
    ((1, 30, 0), 1800),
    ((1, 30, 30), 1770),
    ((1, 30, 59), 1741),
    ((1, 59, 0), 60),
    ((1, 59, 1), 59),
    ((1, 59, 59), 1),
]
DAY = [
    ((0, 0, 0), 86400),
    ((23, 58, 59), 61),
    ((23, 59, 0), 60),
    ((23, 59, 57), 3),
    ((23, 59, 58), 2),
    ((23, 59, 59), 1),
]


@pytest.mark.parametrize(
    "trigger,hms,expected",
    [("minutely", hms, e) for hms, e in MINUTE]
    + [("hourly", hms, e) for hms, e in HOUR]
    + [("daily", hms, e) for hms, e in DAY],
)
def test_original_vectors(trigger, hms, expected):
    assert seconds_until(trigger, hms) == expected
    if hms[2] < 60:  # a leap second has no Unix time, datetime or boundary of its own
        h, m, s = hms
        unix = at(h, m, s)
        assert seconds_until(trigger, unix) == expected
        assert seconds_until(trigger, dt.datetime(2025, 11, 28, h, m, s)) == expected  # naive = UTC
        assert seconds_until(trigger, dt.time(h, m, s)) == expected
        assert next_boundary(trigger, unix) - unix == expected


def test_subseconds_are_ignored_by_the_vector_but_not_by_the_boundary():
    assert seconds_until("minutely", at(1, 2, 58.9)) == 2
    assert next_boundary("minutely", at(1, 2, 58.9)) == at(1, 3)
    assert boundary_at("hourly", at(1, 59, 59.5)) == at(1, 0)
    assert next_boundary("daily", at(23, 59, 59.999)) == at(0, 0, day=29)
    with pytest.raises(ValueError):
        seconds_until("databases", 0)


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(str(tmp_path / "kz.db"))
    yield s
    s.close()


def catalog_with(*bindings: tuple[str, object], source: str = SRC) -> Catalog:
    catalog = Catalog()
    install(catalog, *bindings, source=source)
    return catalog


def install(catalog: Catalog, *bindings: tuple[str, object], source: str = SRC) -> None:
    specs = tuple(TriggerSpec(name, fn, Where(source, i + 1)) for i, (name, fn) in enumerate(bindings))
    catalog.install(PluginSource(source, "file", True, 1.0, (), (), specs))


class Engines:
    """TriggerEngines made by a test, stopped at its end."""

    def __init__(self, store) -> None:
        self.store = store
        self.made: list[TriggerEngine] = []

    def __call__(self, catalog, *, node="A", clock=None, dbs=(), interval=3600, **kw) -> TriggerEngine:
        clock = clock or FakeClock(T0)
        te = TriggerEngine(
            catalog=catalog,
            store=self.store,
            node=node,
            clock=clock,
            databases=(dbs if callable(dbs) else lambda: list(dbs)),
            browse_dbs_interval_s=interval,
            **kw,
        )
        te.arm(clock.time())
        self.made.append(te)
        return te


@pytest.fixture
def engines(store):
    e = Engines(store)
    yield e
    for te in e.made:
        te.stop(timeout=5)


def run_step(te: TriggerEngine, now: float) -> float:
    te.clock.set(now)
    delay = te.step(now)
    assert te.wait_idle(10)
    return delay


# --- cron ---------------------------------------------------------------------------------------


def test_cron_fires_at_second_zero_and_never_drifts(engines, store):
    calls = []
    catalog = catalog_with(
        ("minutely", lambda: calls.append("m")),
        ("hourly", lambda: calls.append("h")),
        ("daily", lambda: calls.append("d")),
    )
    te = engines(catalog)
    assert te.next_fire("minutely") == at(9, 1)
    assert te.next_fire("hourly") == at(10, 0)
    assert te.next_fire("daily") == at(0, 0, day=29)
    assert run_step(te, at(9, 0, 59.999)) == pytest.approx(0.001, abs=1e-6)
    assert calls == []
    run_step(te, at(9, 1))
    assert calls == ["m"]
    # A late wake-up fires for its boundary and the next one stays on second 0.
    run_step(te, at(9, 2, 0.7))
    assert te.next_fire("minutely") == at(9, 3)
    keys = [f.key for f in store.list_firings(trigger="minutely")]
    assert keys == [f"minutely:{int(at(9, 2))}", f"minutely:{int(at(9, 1))}"]
    run_step(te, at(10, 0))
    assert calls == ["m", "m", "m", "h"]
    run_step(te, at(0, 0, day=29))  # three firings, each in its own thread
    assert sorted(calls[4:]) == ["d", "h", "m"]
    assert te.next_fire("daily") == at(0, 0, day=30)


def test_missed_boundaries_fire_once_for_the_latest(engines, store):
    calls = []
    te = engines(catalog_with(("minutely", lambda: calls.append(1))))
    run_step(te, at(9, 17, 5))  # the machine slept 16 minutes
    assert calls == [1]
    assert [f.key for f in store.list_firings()] == [f"minutely:{int(at(9, 17))}"]
    assert te.next_fire("minutely") == at(9, 18)


def test_functions_run_serially_in_load_order_and_a_failure_does_not_stop_the_rest(engines, store):
    order = []
    threads = set()

    def first():
        order.append("first")
        threads.add(threading.get_ident())

    def boom():
        order.append("boom")
        threads.add(threading.get_ident())
        raise ValueError("no luck")

    def leave():
        order.append("exit")
        raise SystemExit(3)  # a plugin calling sys.exit() ends only its own call

    def last():
        order.append("last")
        threads.add(threading.get_ident())

    catalog = catalog_with(("hourly", first), ("hourly", boom), ("hourly", leave))
    install(catalog, ("hourly", last), source="/plugins/zz_later.py")
    bus = EventBus()
    fired = []
    bus.subscribe(lambda ev: fired.append(ev) if isinstance(ev, TriggerFired) else None)
    te = engines(catalog, events=bus)
    run_step(te, at(10, 0))
    assert order == ["first", "boom", "exit", "last"]
    assert len(threads) == 1 and threading.get_ident() not in threads
    [firing] = store.list_firings(trigger="hourly")
    assert firing.status == "failed"
    assert firing.reason == "2 of 4 function(s) raised"
    assert [(f["function"], f["ok"], f["error"]) for f in firing.functions] == [
        (
            f"{SRC}:test_functions_run_serially_in_load_order_and_a_failure_does_not_stop_the_rest.<locals>.first",
            True,
            None,
        ),
        (
            f"{SRC}:test_functions_run_serially_in_load_order_and_a_failure_does_not_stop_the_rest.<locals>.boom",
            False,
            "ValueError: no luck",
        ),
        (
            f"{SRC}:test_functions_run_serially_in_load_order_and_a_failure_does_not_stop_the_rest.<locals>.leave",
            False,
            "SystemExit: 3",
        ),
        (
            "/plugins/zz_later.py:test_functions_run_serially_in_load_order_and_a_failure_does_not_stop_the_rest.<locals>.last",
            True,
            None,
        ),
    ]
    assert all(f["seconds"] >= 0 for f in firing.functions)
    assert firing.public()["started"] == at(10, 0) and firing.ended is not None
    assert [ev.firing.status for ev in fired if ev.firing.trigger == "hourly"] == ["failed"]


def test_a_firing_that_finds_the_previous_one_running_is_skipped(engines, store):
    gate = threading.Event()
    entered = threading.Event()
    calls = []

    def slow():
        calls.append(1)
        entered.set()
        gate.wait(10)

    te = engines(catalog_with(("minutely", slow)))
    te.clock.set(at(9, 1))
    te.step(at(9, 1))
    assert entered.wait(5)
    run_step_no_wait(te, at(9, 2))
    skipped = store.list_firings(trigger="minutely", limit=1)[0]
    assert skipped.status == "skipped"
    assert skipped.reason.startswith("the previous minutely firing (started 2025-11-28 09:01:00 UTC on A)")
    assert skipped.functions == ()
    gate.set()
    assert te.wait_idle(10)
    run_step(te, at(9, 3))
    assert calls == [1, 1]
    assert [f.status for f in store.list_firings(trigger="minutely")] == ["ok", "skipped", "ok"]


def run_step_no_wait(te, now):
    te.clock.set(now)
    te.step(now)


def test_two_engines_on_one_store_run_each_firing_once(engines, store):
    calls = []
    lock = threading.Lock()

    def count():
        with lock:
            calls.append(threading.current_thread().name)

    clock = FakeClock(T0)
    a = engines(catalog_with(("minutely", count)), node="A", clock=clock)
    b = engines(catalog_with(("minutely", count)), node="B", clock=clock)
    clock.set(at(9, 1))
    barrier = threading.Barrier(2)

    def step(te):
        barrier.wait()
        te.step(at(9, 1))

    workers = [threading.Thread(target=step, args=(te,)) for te in (a, b)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert a.wait_idle(10) and b.wait_idle(10)
    assert len(calls) == 1
    [firing] = store.list_firings()
    assert firing.node in ("A", "B") and firing.status == "ok"


def test_the_skip_rule_spans_engines(engines, store):
    gate = threading.Event()
    entered = threading.Event()

    def slow():
        entered.set()
        gate.wait(10)

    clock = FakeClock(T0)
    a = engines(catalog_with(("minutely", slow)), node="A", clock=clock)
    b = engines(catalog_with(("minutely", slow)), node="B", clock=clock)
    clock.set(at(9, 1))
    a.step(at(9, 1))
    assert entered.wait(5)
    clock.set(at(9, 2))
    a.lease.renew(force=True)  # A is alive: its driver heartbeats every second
    b.step(at(9, 2))  # A's 09:01 firing still runs, in another engine
    assert b.wait_idle(5)
    latest = store.list_firings(trigger="minutely", limit=1)[0]
    assert (latest.node, latest.status) == ("B", "skipped")
    assert "on A) was still running" in latest.reason
    gate.set()
    assert a.wait_idle(10)


def test_a_firing_left_running_by_a_dead_engine_does_not_block(engines, store):
    calls = []
    te = engines(catalog_with(("minutely", lambda: calls.append(1))))
    ghost = store.begin_firing("minutely", "minutely:old", "ghost-node", at(8, 0))
    store.heartbeat(EngineLease("ghost-node", "elsewhere", 1, at(7, 0), at(8, 0, 10)))  # expired
    run_step(te, at(9, 1))
    assert calls == [1]
    closed = next(f for f in store.list_firings() if f.id == ghost.id)
    assert closed.status == "failed"
    assert "ghost-node" in closed.reason and "stopped before it ended" in closed.reason


def test_nothing_bound_records_nothing(engines, store):
    te = engines(Catalog())
    run_step(te, at(10, 0))
    assert store.list_firings() == []
    assert te.fire("minutely").status == "ok"  # by hand it is recorded
    assert len(store.list_firings()) == 1


def test_a_firing_keeps_the_functions_it_started_with(engines, store):
    """Hot reload during a firing: this firing finishes with the old code, the next uses the new."""
    gate = threading.Event()
    entered = threading.Event()
    ran = []

    def old_first():
        ran.append("old1")
        entered.set()
        gate.wait(10)

    catalog = catalog_with(("minutely", old_first), ("minutely", lambda: ran.append("old2")))
    te = engines(catalog)
    te.clock.set(at(9, 1))
    te.step(at(9, 1))
    assert entered.wait(5)
    install(catalog, ("minutely", lambda: ran.append("new")))  # the file was reloaded
    gate.set()
    assert te.wait_idle(10)
    assert ran == ["old1", "old2"]
    run_step(te, at(9, 2))
    assert ran == ["old1", "old2", "new"]


def test_prints_go_to_the_trigger_log(engines, store, caplog):
    def noisy():
        print("hello from a trigger")
        print("second line", file=sys.stderr)

    te = engines(catalog_with(("minutely", noisy)))
    with caplog.at_level(logging.INFO, logger="kzconsole.triggers"):
        te.fire("minutely")
    lines = [(r.name, r.getMessage()) for r in caplog.records]
    assert ("kzconsole.triggers.minutely", "hello from a trigger") in lines
    assert ("kzconsole.triggers.minutely", "second line") in lines


def test_history_is_pruned_after_history_days(engines, store):
    old = store.begin_firing("minutely", "minutely:1", "A", T0 - 3 * 86400)
    store.end_firing(dataclasses.replace(old, ended=T0 - 3 * 86400, status="ok"))
    recent = store.begin_firing("minutely", "minutely:2", "A", T0 - 86400)
    store.end_firing(dataclasses.replace(recent, ended=T0 - 86400, status="ok"))
    te = engines(Catalog(), history_days=2)
    run_step(te, T0)
    assert [f.key for f in store.list_firings()] == ["minutely:2"]


# --- database passes ----------------------------------------------------------------------------

DBS = [
    Database("system_config", "system"),
    Database("account/ab/cd/0123456789abcdef0123456789ab", "account"),
    Database("account/ab/cd/0123456789abcdef0123456789ab-202611", "account_mod"),
    Database("numbers%2F%2B1555", "other"),
    Database("account/00/00/0000000000000000000000000000", "account"),
]
SORTED = sorted(DBS, key=lambda d: d.name)


def test_pass_interval_counts_from_the_end_of_the_previous_pass(engines, store):
    seen = []
    listing = [lambda: SORTED]  # what the database source does, changed as the test goes
    te = engines(catalog_with(("account", lambda db: seen.append(db.name))), dbs=lambda: listing[0](), interval=600)
    clock = te.clock
    run_step(te, T0 + 599)
    assert seen == []
    assert te.next_fire("databases") == T0 + 600
    te.clock.set(T0 + 600)

    # The pass takes 100 s of (fake) time: the next one is 600 s after it ENDED.
    def slow_listing():
        clock.advance(100)
        return SORTED

    listing[0] = slow_listing
    te.step(T0 + 600)
    assert te.wait_idle(10)
    assert seen == ["account/00/00/0000000000000000000000000000", "account/ab/cd/0123456789abcdef0123456789ab"]
    [first] = store.list_firings(trigger="databases")
    assert first.key == f"databases:{int(T0 + 600)}"
    assert first.ended == T0 + 700
    assert te.next_fire("databases") == T0 + 1300
    run_step(te, T0 + 1299)
    assert len(store.list_firings(trigger="databases")) == 1
    listing[0] = lambda: SORTED
    run_step(te, T0 + 1300)
    assert len(store.list_firings(trigger="databases")) == 2


def test_pass_visits_databases_in_name_order_by_kind_and_survives_failures(engines, store):
    visits = []

    def per_account(db):
        visits.append(("account", db.name))
        if db.name.startswith("account/00"):
            raise RuntimeError("disk on fire")

    def everything(db):
        visits.append(("all", db.name, db.kind, str(db)))

    catalog = catalog_with(("account", per_account))
    for kind in ("account", "account_mod", "system", "other"):  # @trigger("all_dbs")
        install(catalog, (kind, everything), source=f"/plugins/all_{kind}.py")
    te = engines(catalog, dbs=SORTED)  # the source (list_databases) answers in name order
    firing = te.fire("databases")
    names = [v[1] for v in visits]
    assert names == [
        "account/00/00/0000000000000000000000000000",
        "account/00/00/0000000000000000000000000000",
        "account/ab/cd/0123456789abcdef0123456789ab",
        "account/ab/cd/0123456789abcdef0123456789ab",
        "account/ab/cd/0123456789abcdef0123456789ab-202611",
        "numbers%2F%2B1555",
        "system_config",
    ]
    assert ("all", "system_config", "system", "system_config") in visits
    assert firing.trigger == "databases" and firing.status == "failed"
    assert firing.reason == "1 of 5 database(s) had a function raise"
    assert firing.databases == tuple(
        {"name": d.name, "kind": d.kind, "ok": not d.name.startswith("account/00")} for d in SORTED
    )
    per = {f["function"].split(":")[0]: f for f in firing.functions}
    assert per[SRC]["ok"] is False
    assert per[SRC]["error"] == "account/00/00/0000000000000000000000000000: RuntimeError: disk on fire"
    assert per["/plugins/all_account.py"]["ok"] is True


def test_only_kinds_with_functions_are_visited(engines, store):
    te = engines(catalog_with(("system", lambda db: None)), dbs=SORTED)
    firing = te.fire("databases")
    assert firing.status == "ok"
    assert [d["name"] for d in firing.databases] == ["system_config"]


def test_a_source_that_fails_fails_the_pass_with_the_reason(engines, store):
    def broken():
        raise PermissionError("databases folder unreadable")

    te = engines(catalog_with(("system", lambda db: None)), dbs=broken)
    firing = te.fire("databases")
    assert firing.status == "failed"
    assert firing.reason == "cannot list the databases: PermissionError: databases folder unreadable"


def test_a_pass_by_hand_rearms_the_timer_from_its_end(engines, store):
    te = engines(catalog_with(("system", lambda db: None)), dbs=SORTED, interval=600)
    te.clock.set(T0 + 300)
    te.fire("databases")
    assert te.next_fire("databases") == T0 + 900
    run_step(te, T0 + 600)
    assert len(store.list_firings(trigger="databases")) == 1


def test_two_engines_run_a_pass_once(engines, store):
    calls = []
    clock = FakeClock(T0)
    catalog = catalog_with(("system", lambda db: calls.append(db.name)))
    a = engines(catalog, node="A", clock=clock, dbs=SORTED, interval=600)
    clock.advance(30)
    b = engines(catalog, node="B", clock=clock, dbs=SORTED, interval=600)
    # A is due at T0+600, B at T0+630; once A's pass ended, B's timer counts from that end.
    run_step(a, T0 + 600)
    b.lease.renew(force=True)
    run_step(b, T0 + 630)
    assert calls == ["system_config"]
    assert b.next_fire("databases") == a.next_fire("databases") == T0 + 1200
    # Both due at the same moment from the same last pass: the same key, so one pass.
    run_step(a, T0 + 1200)
    run_step(b, T0 + 1200)
    assert calls == ["system_config"] * 2
    assert [f.node for f in store.list_firings(trigger="databases")] == ["A", "A"]


def test_stopping_the_engine_ends_a_pass_between_databases(engines, store):
    gate = threading.Event()
    entered = threading.Event()

    def first(db):
        entered.set()
        gate.wait(10)

    te = engines(catalog_with(("account", first)), dbs=SORTED)
    done = []
    worker = threading.Thread(target=lambda: done.append(te.fire("databases")))
    worker.start()
    assert entered.wait(5)
    te.stop(timeout=0)  # asked while the first database's function runs (it is not waited for)
    gate.set()
    worker.join(10)
    [firing] = done
    assert firing.status == "failed"
    assert firing.reason == "stopped after 1 database(s): the engine is shutting down"


# --- facade and command line ------------------------------------------------------------------

PLUGIN = """
from kzconsole.plugin import trigger

CALLS = []

@trigger("minutely")
def tick():
    print("tick printed")
    CALLS.append("tick")

@trigger("minutely")
def broken():
    raise KeyError("missing")

@trigger("all_dbs")
def visit(db):
    CALLS.append(db.name)
"""


def _engine(tmp_path, plugin_dir, **triggers):
    from kzconsole.engine import Engine

    plugin_dir.write("ticks.py", PLUGIN)
    settings = make_settings(tmp_path, plugin_dir.path)
    if triggers:
        settings = settings.with_overrides(triggers=triggers)
    return Engine(settings, clock=FakeClock(T0))


def test_facade_fire_and_schedule(tmp_path, plugin_dir):
    engine = _engine(tmp_path, plugin_dir, browse_dbs_interval_s=600)
    try:
        path = str(plugin_dir.path.resolve() / "ticks.py")
        mine = lambda labels: [x for x in labels if x.startswith(path)]  # noqa: E731 - built-ins aside
        firing = engine.fire_trigger("minutely")
        assert firing.status == "failed"
        functions = [f for f in firing.functions if f["function"].startswith(path)]
        assert [f["function"] for f in functions] == [f"{path}:tick", f"{path}:broken"]
        assert functions[1]["error"] == "KeyError: 'missing'"
        assert firing.reason == f"1 of {len(firing.functions)} function(s) raised"
        entries = {e["name"]: e for e in engine.trigger_schedule()}
        assert list(entries) == [
            "minutely",
            "hourly",
            "daily",
            "databases",
            "account",
            "account_mod",
            "system",
            "other",
        ]
        assert mine(entries["minutely"]["functions"]) == [f"{path}:tick", f"{path}:broken"]
        assert entries["minutely"]["next_fire"] == at(9, 1)
        assert entries["minutely"]["last"] == firing.public()
        assert mine(entries["hourly"]["functions"]) == []
        assert (entries["hourly"]["next_fire"], entries["hourly"]["last"]) == (at(10, 0), None)
        assert mine(entries["account"]["functions"]) == [f"{path}:visit"]
        assert mine(entries["databases"]["functions"]) == [f"{path}:visit"]
        assert engine.firings()[0].id == firing.id
        with pytest.raises(Exception, match="unknown trigger 'weekly'"):
            engine.fire_trigger("weekly")
    finally:
        engine.close()


def test_engine_start_runs_the_trigger_engine(tmp_path, plugin_dir):
    engine = _engine(tmp_path, plugin_dir)
    try:
        engine.start(run_jobs=False, watch=False)
        from kzconsole.engine.triggers import TriggerEngine

        [te] = [s for s in engine.services if isinstance(s, TriggerEngine)]
        assert te.running and te.own_lease
        assert [lease.node for lease in engine.store.engines()] == [engine.node]
        firing = engine.fire_trigger("minutely")  # through the running trigger engine
        assert firing.node == engine.node
        assert engine.fire_trigger("databases", wait=False) is None
        assert te.wait_idle(10)
    finally:
        engine.close()
    assert not te.running
    assert engine.store is not None  # reopened lazily; the lease was released
    assert engine.store.engines() == []
    engine.close()


def _kzconsole(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HOME=str(cwd), XDG_CONFIG_HOME=str(cwd / ".config"))
    env.pop("KZCONSOLE_CONFIG", None)
    env.pop("KZCONSOLE_DATA_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "kzconsole", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60
    )


def test_command_line(tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "ticks.py").write_text(textwrap.dedent(PLUGIN))
    data = tmp_path / "data"
    db = data / "databases" / "account" / "ab" / "cd" / "0123456789abcdef0123456789ab-202611.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"")
    (data / "databases" / "tasks.db").write_bytes(b"")
    base = ["--data-dir", str(data), "--plugins", str(plugins), "triggers"]

    run = _kzconsole(*base, "run", "minutely", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    firing = json.loads(run.stdout)  # only the record on stdout: prints went to the log (stderr)
    assert set(firing) == {"trigger", "started", "ended", "status", "reason", "functions", "databases"}
    assert firing["trigger"] == "minutely" and firing["status"] == "failed"
    mine = [f for f in firing["functions"] if "ticks.py:" in f["function"]]
    assert [(f["function"].rsplit(":", 1)[1], f["ok"]) for f in mine] == [("tick", True), ("broken", False)]
    assert set(firing["functions"][0]) == {"function", "ok", "error", "seconds"}
    assert "tick printed" in run.stderr

    passed = _kzconsole(*base, "run", "databases", "--json", cwd=tmp_path)
    assert passed.returncode == 0, passed.stderr
    record = json.loads(passed.stdout)
    assert [(d["name"], d["kind"]) for d in record["databases"]] == [
        ("account/ab/cd/0123456789abcdef0123456789ab-202611", "account_mod"),
        ("tasks", "system"),
    ]
    visit = [f for f in record["functions"] if f["function"].endswith("ticks.py:visit")]
    assert [f["ok"] for f in visit] == [True]

    listing = _kzconsole(*base, "--json", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    doc = json.loads(listing.stdout)
    assert [t["name"] for t in doc["triggers"]][:4] == ["minutely", "hourly", "daily", "databases"]
    assert set(doc["triggers"][0]) == {"name", "functions", "next_fire", "last"}
    assert [h["trigger"] for h in doc["history"]] == ["databases", "minutely"]

    table = _kzconsole(*base, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "minutely" in table.stdout and "History (newest first):" in table.stdout

    bad = _kzconsole(*base, "run", "weekly", cwd=tmp_path)
    assert bad.returncode == 2
