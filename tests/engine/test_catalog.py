"""The catalog: snapshots, ordering, conflicts, subscriptions (contract 2 and 6)."""

from __future__ import annotations

import logging
import threading

from kzconsole.engine.catalog import Catalog, PluginSource
from kzconsole.plugin import TaskSpec, TriggerSpec, VerifierSpec, Where


def noinput(ctx, it):
    return None


def a_task(
    category: str,
    action: str,
    *,
    file: str = "/p/a.py",
    line: int = 1,
    description: str = "d",
    mandatory: tuple[str, ...] = (),
) -> TaskSpec:
    return TaskSpec(
        category=category,
        action=action,
        description=description,
        doc="",
        mandatory=mandatory,
        optional=(),
        expected_content="text/csv" if mandatory else None,
        output_header=None,
        finish=None,
        function=noinput,
        is_generator=False,
        where=Where(file, line),
    )


def a_verifier(category: str, field: str, fn=str.isdigit, *, file: str = "/p/a.py", line: int = 1):
    return VerifierSpec(category, field, fn, Where(file, line))


def a_trigger(name: str, fn, *, file: str = "/p/a.py", line: int = 1) -> TriggerSpec:
    return TriggerSpec(name, fn, Where(file, line))


def a_source(
    source: str, *, tasks=(), verifiers=(), triggers=(), loaded=True, error=None, kind: str = "file"
) -> PluginSource:
    return PluginSource(
        source=source,
        kind=kind,
        loaded=loaded,
        loaded_at=100.0 if loaded else None,
        tasks=tuple(tasks),
        verifiers=tuple(verifiers),
        triggers=tuple(triggers),
        error=error,
    )


def test_empty_catalog_answers_without_errors():
    catalog = Catalog()
    assert catalog.version == 0
    assert catalog.tasks() == []
    assert catalog.task("skel", "id2") is None
    assert catalog.verifiers("skel") == {}
    assert catalog.triggers("hourly") == []
    assert catalog.sources() == []
    assert catalog.source("/p/a.py") is None
    assert catalog.help() == {}
    assert catalog.help("skel") == {}
    assert catalog.help("skel", "id2") == {}
    assert not catalog.has_category("skel")


def test_tasks_are_sorted_and_help_is_narrowed():
    catalog = Catalog()
    catalog.install(a_source("/p/b.py", tasks=[a_task("zeta", "b"), a_task("alpha", "z")]))
    catalog.install(a_source("/p/a.py", tasks=[a_task("zeta", "a", mandatory=("col",))]))
    assert [t.name for t in catalog.tasks()] == ["alpha/z", "zeta/a", "zeta/b"]
    assert catalog.task("zeta", "a").mandatory == ("col",)
    assert catalog.has_category("zeta") and not catalog.has_category("zet")
    full = catalog.help()
    assert list(full) == ["alpha", "zeta"]
    assert list(full["zeta"]) == ["a", "b"]
    assert full["zeta"]["a"] == {
        "description": "d",
        "doc": "",
        "expected_content": "text/csv",
        "mandatory": ["col"],
        "optional": [],
    }
    assert catalog.help("zeta", "b") == {"zeta": {"b": full["zeta"]["b"]}}
    assert catalog.help("zeta", "nope") == {}
    assert catalog.help("nope") == {}


def test_verifiers_are_per_category_and_returned_as_a_copy():
    catalog = Catalog()
    catalog.install(
        a_source("/p/a.py", verifiers=[a_verifier("num", "e164", str.isdigit), a_verifier("acct", "id", str.isalpha)])
    )
    table = catalog.verifiers("num")
    assert table == {"e164": str.isdigit}
    table["other"] = str.isalpha
    assert catalog.verifiers("num") == {"e164": str.isdigit}
    assert catalog.verifiers("acct") == {"id": str.isalpha}


def test_install_replaces_in_place_and_counts_versions():
    def a1(): ...
    def b1(): ...
    def a2(): ...

    catalog = Catalog()
    catalog.install(a_source("/p/a.py", triggers=[a_trigger("hourly", a1)]))
    catalog.install(a_source("/p/b.py", triggers=[a_trigger("hourly", b1)]))
    assert catalog.version == 2
    assert [s.function for s in catalog.triggers("hourly")] == [a1, b1]
    # A reload of a.py keeps its position: its triggers still run first.
    catalog.install(a_source("/p/a.py", triggers=[a_trigger("hourly", a2)]))
    assert catalog.version == 3
    assert [s.source for s in catalog.sources()] == ["/p/a.py", "/p/b.py"]
    assert [s.function for s in catalog.triggers("hourly")] == [a2, b1]


def test_remove():
    catalog = Catalog()
    catalog.install(a_source("/p/a.py", tasks=[a_task("skel", "id2")]))
    assert catalog.remove("/p/a.py") is True
    assert catalog.task("skel", "id2") is None
    assert catalog.sources() == []
    assert catalog.version == 2
    assert catalog.remove("/p/a.py") is False
    assert catalog.version == 2


def test_a_source_that_is_not_loaded_declares_nothing_but_is_listed():
    catalog = Catalog()
    failed = a_source("/p/a.py", loaded=False, error="Traceback ...\nSyntaxError: boom")
    catalog.install(failed)
    assert catalog.sources() == [failed]
    assert catalog.tasks() == []
    assert failed.public() == {
        "source": "/p/a.py",
        "loaded": False,
        "loaded_at": None,
        "tasks": [],
        "verifiers": [],
        "triggers": [],
        "error": "Traceback ...\nSyntaxError: boom",
    }


def test_public_shape():
    def purge(): ...

    src = a_source(
        "/p/a.py",
        tasks=[a_task("skel", "id2")],
        verifiers=[a_verifier("skel", "col1")],
        triggers=[a_trigger("hourly", purge), a_trigger("account", purge)],
    )
    assert src.public() == {
        "source": "/p/a.py",
        "loaded": True,
        "loaded_at": 100.0,
        "tasks": ["skel/id2"],
        "verifiers": ["skel/col1"],
        "triggers": ["hourly:test_public_shape.<locals>.purge", "account:test_public_shape.<locals>.purge"],
        "error": None,
    }


def test_conflicts_name_both_places_and_ignore_the_same_source():
    catalog = Catalog()
    catalog.install(
        a_source("/p/a.py", tasks=[a_task("skel", "id2", line=3)], verifiers=[a_verifier("skel", "c", line=9)])
    )
    catalog.install(a_source("/p/dead.py", loaded=False, error="x"))
    candidate = a_source(
        "/p/b.py",
        tasks=[a_task("skel", "id2", file="/p/b.py", line=5), a_task("skel", "new", file="/p/b.py")],
        verifiers=[a_verifier("skel", "c", file="/p/b.py", line=7)],
    )
    messages = catalog.conflicts(candidate)
    assert len(messages) == 2
    assert "task skel/id2" in messages[0]
    assert "/p/b.py:5" in messages[0] and "/p/a.py:3" in messages[0]
    assert "verifier skel/c" in messages[1]
    assert "/p/b.py:7" in messages[1] and "/p/a.py:9" in messages[1]
    # A new version of a.py replaces a.py: no conflict with itself.
    assert catalog.conflicts(a_source("/p/a.py", tasks=[a_task("skel", "id2")])) == []
    # A source that failed to load declares nothing.
    assert catalog.conflicts(a_source("/p/dead.py", tasks=[a_task("skel", "other")])) == []


def test_when_installed_directly_the_first_source_keeps_a_clashing_task():
    catalog = Catalog()
    first = a_task("skel", "id2", description="first")
    catalog.install(a_source("/p/a.py", tasks=[first]))
    catalog.install(a_source("/p/b.py", tasks=[a_task("skel", "id2", description="second")]))
    assert catalog.task("skel", "id2") is first
    assert len(catalog.tasks()) == 1


def test_subscribers_are_called_after_each_change_and_their_errors_are_contained(caplog):
    catalog = Catalog()
    seen: list[int] = []

    def broken():
        raise RuntimeError("subscriber bug")

    catalog.subscribe(broken)
    unsubscribe = catalog.subscribe(lambda: seen.append(catalog.version))
    with caplog.at_level(logging.ERROR, logger="kzconsole.plugins"):
        catalog.install(a_source("/p/a.py"))
        catalog.remove("/p/a.py")
        catalog.remove("/p/a.py")  # not a change: nobody is told
    assert seen == [1, 2]  # the callback already sees the new state
    assert "subscriber bug" in caplog.text
    unsubscribe()
    unsubscribe()  # twice is harmless
    catalog.install(a_source("/p/a.py"))
    assert seen == [1, 2]


def test_a_subscriber_may_change_the_catalog():
    catalog = Catalog()

    def follow():
        if catalog.source("/p/follow.py") is None:
            catalog.install(a_source("/p/follow.py"))

    catalog.subscribe(follow)
    catalog.install(a_source("/p/a.py"))
    assert [s.source for s in catalog.sources()] == ["/p/a.py", "/p/follow.py"]


def test_readers_never_see_half_a_swap():
    catalog = Catalog()
    versions = [
        a_source("/p/a.py", tasks=[a_task("x", str(i), description=f"v{v}") for i in range(20)]) for v in range(2)
    ]
    catalog.install(versions[0])
    done = threading.Event()
    mixed: list[set[str]] = []

    def read():
        while not done.is_set():
            descriptions = {t.description for t in catalog.tasks()}
            if len(descriptions) != 1:
                mixed.append(descriptions)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(300):
            catalog.install(versions[n % 2])
    finally:
        done.set()
        reader.join()
    assert mixed == []
    assert catalog.version == 301
