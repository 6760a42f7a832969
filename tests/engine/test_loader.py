"""The loader: files, built-ins, entry points; load errors; hot reload (contract 2 and 6)."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import sys
import textwrap
import traceback
import uuid
from pathlib import Path

import pytest

from kzconsole.engine.catalog import Catalog
from kzconsole.engine.loader import Loader, file_module_name

GOOD = """\
from __future__ import annotations  # dataclasses then look the module up in sys.modules
from dataclasses import dataclass
from kzconsole.plugin import task, verifier, trigger, Next

@dataclass
class Row:
    a: str

@task("skel", "id2", description="The identity task", mandatory=["col1", "col2"])
def id2(ctx, it, row):
    return [row["col1"], row["col2"]]

@task("skel", "ping", description="A noinput task")
def ping(ctx, it):
    return "pong"

@verifier("skel", "col1")
def col1(value):
    return value.isdigit()

@trigger("hourly")
def purge():
    return Row("purged")
"""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


@pytest.fixture(autouse=True)
def forget_test_modules():
    """Plugin modules stay in sys.modules after a load (by design); drop this test's ones."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith(("kzconsole_plugins_", "kzc_test_")):
            del sys.modules[name]


@pytest.fixture
def catalog() -> Catalog:
    return Catalog()


@pytest.fixture
def loader(catalog: Catalog) -> Loader:
    return Loader(catalog, clock=FakeClock())


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def call(catalog: Catalog, category: str, action: str, *args):
    spec = catalog.task(category, action)
    assert spec is not None, f"{category}/{action} is not in the catalog"
    return spec.function(*args)


# --- loading a file -----------------------------------------------------------------------------


def test_a_good_file_is_loaded(tmp_path, catalog, loader):
    path = write(tmp_path / "skel.py", GOOD)
    record = loader.load_file(path)
    assert record.loaded and record.error is None
    assert record.kind == "file"
    assert record.source == str(path.resolve())
    assert record.loaded_at == 1001.0
    assert record.public()["tasks"] == ["skel/id2", "skel/ping"]
    assert record.public()["verifiers"] == ["skel/col1"]
    assert record.public()["triggers"] == ["hourly:purge"]
    assert catalog.sources() == [record]
    assert call(catalog, "skel", "id2", None, None, {"col1": "1", "col2": "2"}) == ["1", "2"]
    assert catalog.verifiers("skel")["col1"]("12")
    # The module is registered under its stable name, so a dataclass defined in it works.
    [binding] = catalog.triggers("hourly")
    assert binding.function().a == "purged"
    module = sys.modules[file_module_name(record.source)]
    assert module.__file__ == record.source
    assert module.__name__.startswith("kzconsole_plugins_skel_")
    assert catalog.task("skel", "id2").where.filename == record.source


def test_plugin_does_not_inherit_the_loaders_future_flags(tmp_path, catalog, loader):
    # loader.py uses `from __future__ import annotations`; a plugin must get real annotations.
    write(
        tmp_path / "ann.py",
        """\
        from kzconsole.plugin import task
        ANNOTATION = None
        @task("ann", "go", description="d")
        def go(ctx, it) -> int:
            return 1
        ANNOTATION = go.__annotations__["return"]
    """,
    )
    record = loader.load_file(tmp_path / "ann.py")
    assert record.loaded, record.error
    assert sys.modules[file_module_name(record.source)].ANNOTATION is int


def test_same_file_name_in_two_directories_are_two_modules(tmp_path, catalog, loader):
    one = write(
        (tmp_path / "one").mkdir() or tmp_path / "one" / "plug.py",
        """\
        from kzconsole.plugin import task
        @task("one", "a", description="d")
        def a(ctx, it): return "one"
    """,
    )
    two = write(
        (tmp_path / "two").mkdir() or tmp_path / "two" / "plug.py",
        """\
        from kzconsole.plugin import task
        @task("two", "a", description="d")
        def a(ctx, it): return "two"
    """,
    )
    assert loader.load_file(one).loaded and loader.load_file(two).loaded
    assert file_module_name(str(one)) != file_module_name(str(two))
    assert call(catalog, "one", "a", None, None) == "one"
    assert call(catalog, "two", "a", None, None) == "two"


def test_load_directory_takes_public_py_files_in_name_order(tmp_path, catalog, loader, caplog):
    for name in ["b.py", "a.py", "_helper.py", ".hidden.py", "notes.txt"]:
        write(
            tmp_path / name,
            f"""\
            from kzconsole.plugin import trigger
            @trigger("daily")
            def f(): return {name!r}
        """,
        )
    (tmp_path / "pkg.py").mkdir()  # a directory named like a plugin is not one
    loader.load_directory(tmp_path)
    assert [Path(s.source).name for s in catalog.sources()] == ["a.py", "b.py"]
    assert [t.function() for t in catalog.triggers("daily")] == ["a.py", "b.py"]
    with caplog.at_level(logging.WARNING, logger="kzconsole.plugins"):
        loader.load_directory(tmp_path / "missing")
    assert "missing" in caplog.text
    assert len(catalog.sources()) == 2


# --- load errors ----------------------------------------------------------------------------------


def test_syntax_error_is_a_load_error(tmp_path, catalog, loader, caplog):
    path = write(
        tmp_path / "broken.py",
        """\
        from kzconsole.plugin import task

        def f(:
            pass
    """,
    )
    with caplog.at_level(logging.ERROR, logger="kzconsole.plugins"):
        record = loader.load_file(path)
    assert not record.loaded and record.loaded_at is None
    assert record.tasks == () and catalog.tasks() == []
    assert str(path) in record.error and "line 3" in record.error
    assert "SyntaxError" in record.error
    assert catalog.sources() == [record]
    assert str(path) in caplog.text and "SyntaxError" in caplog.text
    assert file_module_name(record.source) not in sys.modules


def test_exception_at_import_is_a_load_error_with_a_trimmed_traceback(tmp_path, catalog, loader):
    path = write(
        tmp_path / "raises.py",
        """\
        from kzconsole.plugin import task

        @task("skel", "early", description="declared before the failure")
        def early(ctx, it): return None

        def helper():
            raise RuntimeError("boom at import")

        helper()
    """,
    )
    record = loader.load_file(path)
    assert not record.loaded
    assert catalog.task("skel", "early") is None  # all or nothing
    assert record.error.startswith("Traceback (most recent call last):")
    assert f'File "{path}", line 9, in <module>' in record.error
    assert f'File "{path}", line 7, in helper' in record.error
    assert record.error.endswith("RuntimeError: boom at import")
    assert "loader.py" not in record.error and "importlib" not in record.error


def test_import_error_is_a_load_error(tmp_path, loader):
    record = loader.load_file(write(tmp_path / "imp.py", "import kzc_no_such_module_here\n"))
    assert not record.loaded
    assert "ModuleNotFoundError" in record.error and "kzc_no_such_module_here" in record.error
    assert f'"{tmp_path / "imp.py"}", line 1' in record.error


@pytest.mark.parametrize("statement", ["raise SystemExit(3)", "import sys; sys.exit('bye')", "raise KeyboardInterrupt"])
def test_exit_and_interrupt_at_import_are_only_load_errors(tmp_path, loader, statement):
    record = loader.load_file(write(tmp_path / "quits.py", statement + "\n"))
    assert not record.loaded
    assert ("SystemExit" in record.error) or ("KeyboardInterrupt" in record.error)


def test_a_missing_file_is_a_load_error(tmp_path, loader):
    record = loader.load_file(tmp_path / "gone.py")
    assert not record.loaded and "FileNotFoundError" in record.error


# Each snippet marks the line the error must name with `# <-`.
DECLARATION_MISTAKES = {
    "category with a space": """\
        @task("sk el", "a", description="d")  # <-
        def f(ctx, it): pass
    """,
    "category with a dot": """\
        @task("sk.el", "a", description="d")  # <-
        def f(ctx, it): pass
    """,
    "action with a slash": """\
        @task("skel", "a/b", description="d")  # <-
        def f(ctx, it): pass
    """,
    "empty action": """\
        @task("skel", "", description="d")  # <-
        def f(ctx, it): pass
    """,
    "no description": """\
        @task("skel", "a", description="  ")  # <-
        def f(ctx, it): pass
    """,
    "fields on a noinput task": """\
        @task("skel", "a", description="d", expected_content=None, mandatory=["x"])  # <-
        def f(ctx, it): pass
    """,
    "field declared twice": """\
        @task("skel", "a", description="d", mandatory=["x"], optional=["x"])  # <-
        def f(ctx, it, row): pass
    """,
    "CSV task taking two arguments": """\
        @task("skel", "a", description="d", mandatory=["x"])  # <-
        def f(ctx, it): pass
    """,
    "noinput task taking one argument": """\
        @task("skel", "a", description="d")  # <-
        def f(ctx): pass
    """,
    "generator noinput task taking none": """\
        @task("skel", "a", description="d")  # <-
        def f():
            yield 1
    """,
    "generator CSV task": """\
        @task("skel", "a", description="d", mandatory=["x"])  # <-
        def f(ctx, it, row):
            yield 1
    """,
    "finish with the wrong arity": """\
        def fin(ctx): pass
        @task("skel", "a", description="d", finish=fin)  # <-
        def f(ctx, it): pass
    """,
    "verifier taking two arguments": """\
        @verifier("skel", "x")  # <-
        def v(a, b): return True
    """,
    "cron trigger taking an argument": """\
        @trigger("hourly")  # <-
        def t(db): pass
    """,
    "database trigger taking none": """\
        @trigger("account")  # <-
        def t(): pass
    """,
    "unknown trigger": """\
        @trigger("weekly")  # <-
        def t(): pass
    """,
    "task declared twice in one file": """\
        @task("skel", "a", description="d")  # <-
        def f(ctx, it): pass

        @task("skel", "a", description="again")  # <-
        def g(ctx, it): pass
    """,
    "verifier declared twice in one file": """\
        @verifier("skel", "x")  # <-
        def v(value): return True
        @verifier("skel", "x")  # <-
        def w(value): return True
    """,
}


@pytest.mark.parametrize("mistake", list(DECLARATION_MISTAKES))
def test_declaration_mistakes_are_load_errors_naming_file_and_line(tmp_path, catalog, loader, mistake):
    prefix = """\
        from kzconsole.plugin import task, verifier, trigger

        @task("good", "one", description="a fine task declared first")
        def good(ctx, it): pass

    """
    text = textwrap.dedent(prefix) + textwrap.dedent(DECLARATION_MISTAKES[mistake])
    path = tmp_path / "mistake.py"
    path.write_text(text, encoding="utf-8")
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if line.endswith("# <-")]
    record = loader.load_file(path)
    assert not record.loaded
    for line in lines:
        assert f"{path}:{line}" in record.error, record.error
    assert catalog.task("good", "one") is None  # nothing of a broken file is loaded
    assert "plugin.py" not in record.error  # the decorators' insides are not shown


# --- two files ----------------------------------------------------------------------------------

TASK_FILE = """\
from pathlib import Path
from kzconsole.plugin import task, verifier
Path({log!r}).open("a").write({name!r} + "\\n")

@task("skel", "id2", description="d")
def id2(ctx, it):
    return {name!r}

@verifier("skel", "col1")
def col1(value):
    return True
"""


def test_a_task_declared_by_two_files_stays_with_the_first(tmp_path, catalog, loader):
    runs = tmp_path / "runs.log"
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    a = write(plugins / "a.py", TASK_FILE.format(log=str(runs), name="a"))
    b = write(plugins / "b.py", TASK_FILE.format(log=str(runs), name="b"))
    loader.load_directory(plugins)
    first, second = catalog.sources()
    assert first.loaded and not second.loaded
    assert call(catalog, "skel", "id2", None, None) == "a"
    assert "task skel/id2" in second.error and "verifier skel/col1" in second.error
    assert f"{b}:5" in second.error and f"{a}:5" in second.error
    assert f"{b}:9" in second.error and f"{a}:9" in second.error
    # Another change does not re-run b.py while it still conflicts...
    write(plugins / "c.py", "X = 1\n")
    loader.load_file(plugins / "c.py")
    assert runs.read_text().split() == ["a", "b"]
    # ...but once a.py is gone, b.py takes over.
    assert loader.unload_file(a)
    assert call(catalog, "skel", "id2", None, None) == "b"
    assert catalog.source(str(b)).loaded and catalog.source(str(b)).error is None
    assert runs.read_text().split() == ["a", "b", "b"]


def test_a_conflicting_file_loads_once_the_first_drops_the_task(tmp_path, catalog, loader):
    runs = tmp_path / "runs.log"
    a = write(tmp_path / "a.py", TASK_FILE.format(log=str(runs), name="a"))
    b = write(tmp_path / "b.py", TASK_FILE.format(log=str(runs), name="b"))
    loader.load_file(a)
    assert not loader.load_file(b).loaded
    write(a, "from kzconsole.plugin import task\n")
    assert loader.load_file(a).loaded
    assert call(catalog, "skel", "id2", None, None) == "b"
    assert [Path(s.source).name for s in catalog.sources()] == ["a.py", "b.py"]


def test_triggers_run_in_load_order_across_files(tmp_path, catalog, loader):
    write(
        tmp_path / "a.py",
        """\
        from kzconsole.plugin import trigger
        @trigger("hourly")
        def a1(): return "a1"
        @trigger("hourly")
        def a2(): return "a2"
        @trigger("account")
        @trigger("all_dbs")
        def per_db(db): return "a-db"
    """,
    )
    write(
        tmp_path / "b.py",
        """\
        from kzconsole.plugin import trigger
        @trigger("hourly")
        def b1(): return "b1"
        @trigger("account")
        def b_db(db): return "b-db"
    """,
    )
    loader.load_directory(tmp_path)
    assert [t.function() for t in catalog.triggers("hourly")] == ["a1", "a2", "b1"]
    # all_dbs binds the four database triggers; bound twice to `account`, it still runs once.
    assert [t.function(None) for t in catalog.triggers("account")] == ["a-db", "b-db"]
    for name in ("account_mod", "system", "other"):
        assert [t.function(None) for t in catalog.triggers(name)] == ["a-db"]
    # A reloaded file keeps its place.
    write(
        tmp_path / "a.py",
        """\
        from kzconsole.plugin import trigger
        @trigger("hourly")
        def a3(): return "a3"
    """,
    )
    loader.load_file(tmp_path / "a.py")
    assert [t.function() for t in catalog.triggers("hourly")] == ["a3", "b1"]


# --- reload ---------------------------------------------------------------------------------------


def test_reload_replaces_tasks_and_triggers_at_once(tmp_path, catalog, loader):
    path = write(
        tmp_path / "p.py",
        """\
        from kzconsole.plugin import task, trigger
        @task("p", "old", description="d")
        def old(ctx, it): return "old"
        @trigger("hourly")
        def old_hourly(): return "old"
    """,
    )
    loader.load_file(path)
    changes: list[tuple[int, list[str], list[str]]] = []
    catalog.subscribe(
        lambda: changes.append(
            (catalog.version, [t.name for t in catalog.tasks()], [t.function() for t in catalog.triggers("hourly")])
        )
    )
    version = catalog.version
    write(
        path,
        """\
        from kzconsole.plugin import task, trigger
        @task("p", "new", description="d")
        def new(ctx, it): return "new"
        @trigger("hourly")
        def new_hourly(): return "new"
    """,
    )
    record = loader.load_file(path)
    assert record.loaded and record.loaded_at == 1002.0
    # One change, and it already holds the whole new version.
    assert changes == [(version + 1, ["p/new"], ["new"])]
    assert catalog.task("p", "old") is None


def test_failed_reload_keeps_the_old_version_and_records_the_error(tmp_path, catalog, loader, caplog):
    path = write(
        tmp_path / "p.py",
        """\
        from kzconsole.plugin import task
        @task("p", "go", description="d")
        def go(ctx, it): return "v1"
    """,
    )
    first = loader.load_file(path)
    old_module = sys.modules[file_module_name(first.source)]
    for broken in [
        "def (:\n",
        "raise ValueError('v2 is broken')\n",
        "from kzconsole.plugin import task\n@task('p', 'go', description='')\ndef go(ctx, it): pass\n",
    ]:
        write(path, broken)
        with caplog.at_level(logging.ERROR, logger="kzconsole.plugins"):
            record = loader.load_file(path)
        assert record.loaded and record.error
        assert record.loaded_at == first.loaded_at and record.tasks == first.tasks
        assert call(catalog, "p", "go", None, None) == "v1"
        assert sys.modules[file_module_name(first.source)] is old_module
        assert catalog.sources() == [record]
        assert record.public()["error"] == record.error
    assert "previous one keeps serving" in caplog.text
    write(
        path,
        """\
        from kzconsole.plugin import task
        @task("p", "go", description="d")
        def go(ctx, it): return "v3"
    """,
    )
    record = loader.load_file(path)
    assert record.loaded and record.error is None
    assert call(catalog, "p", "go", None, None) == "v3"


def test_a_file_rewritten_within_a_second_with_the_same_size_loads_the_new_code(tmp_path, catalog, loader, monkeypatch):
    # With bytecode writing on, an import-system load would cache (mtime, size) and then reuse
    # the stale bytecode for the rewritten file.
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    path = tmp_path / "same.py"
    template = 'from kzconsole.plugin import task\n@task("s", "v", description="d")\ndef v(ctx, it): return "{}"\n'
    write(path, template.format("A"))
    stat = path.stat()
    loader.load_file(path)
    assert call(catalog, "s", "v", None, None) == "A"
    for version in ("B", "C"):
        write(path, template.format(version))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert path.stat().st_size == stat.st_size
        assert path.stat().st_mtime_ns == stat.st_mtime_ns
        assert loader.load_file(path).loaded
        assert call(catalog, "s", "v", None, None) == version
    assert not (tmp_path / "__pycache__").exists()


def test_tracebacks_show_the_code_that_runs(tmp_path, catalog, loader):
    path = write(
        tmp_path / "tb.py",
        """\
        from kzconsole.plugin import task
        @task("tb", "go", description="d")
        def go(ctx, it):
            raise ValueError("first version")
    """,
    )
    loader.load_file(path)
    write(path, "x = 1\n\n\n# the file on disk changed but was not reloaded\n")
    with pytest.raises(ValueError) as info:
        call(catalog, "tb", "go", None, None)
    text = "".join(traceback.format_exception(info.value))
    assert 'raise ValueError("first version")' in text


def test_unload(tmp_path, catalog, loader):
    path = write(tmp_path / "skel.py", GOOD)
    record = loader.load_file(path)
    running = catalog.task("skel", "ping").function
    assert loader.unload_file(path) is True
    assert catalog.sources() == [] and catalog.tasks() == [] and catalog.triggers("hourly") == []
    assert catalog.verifiers("skel") == {}
    assert file_module_name(record.source) not in sys.modules
    assert running(None, None) == "pong"  # a job that holds the function finishes with it
    assert loader.unload_file(path) is False


def test_unload_of_a_file_that_failed(tmp_path, catalog, loader):
    path = write(tmp_path / "bad.py", "def (:\n")
    loader.load_file(path)
    assert loader.unload_file(path) is True
    assert catalog.sources() == []


def test_loader_changes_reach_subscribers(tmp_path, catalog, loader):
    calls: list[int] = []
    catalog.subscribe(lambda: calls.append(catalog.version))
    path = write(tmp_path / "skel.py", GOOD)
    loader.load_file(path)
    write(path, "def (:\n")
    loader.load_file(path)
    loader.unload_file(path)
    assert calls == [1, 2, 3]


# --- built-ins and entry points -------------------------------------------------------------------


def make_package(root: Path, modules: dict[str, str]) -> str:
    name = f"kzc_test_pkg_{uuid.uuid4().hex[:8]}"
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("")
    for module, text in modules.items():
        write(root / name / f"{module}.py", text)
    return name


def plugin_module_text(category: str, action: str, result: str) -> str:
    return f"""\
        from kzconsole.plugin import task, trigger
        @task({category!r}, {action!r}, description="d")
        def run(ctx, it): return {result!r}
        @trigger("daily")
        def daily(): return {result!r}
    """


def test_builtins_are_imported_freshly_for_every_loader(tmp_path, monkeypatch):
    package = make_package(
        tmp_path,
        {
            "beta": plugin_module_text("b", "go", "beta"),
            "alpha": plugin_module_text("a", "go", "alpha"),
            "_shared": "raise RuntimeError('helpers are not plugins')\n",
            "broken": "raise RuntimeError('broken built-in')\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for _ in range(2):  # a second engine in the same process still gets every declaration
        catalog = Catalog()
        Loader(catalog).load_builtins(package)
        sources = catalog.sources()
        assert [s.source for s in sources] == [f"{package}.alpha", f"{package}.beta", f"{package}.broken"]
        assert {s.kind for s in sources} == {"builtin"}
        assert [s.loaded for s in sources] == [True, True, False]
        assert "broken built-in" in sources[2].error
        assert str(tmp_path / package / "broken.py") in sources[2].error
        assert [t.function() for t in catalog.triggers("daily")] == ["alpha", "beta"]
        assert call(catalog, "a", "go", None, None) == "alpha"
    assert f"{package}.broken" not in sys.modules
    # The loaded module is importable as usual afterwards.
    module = importlib.import_module(f"{package}.alpha")
    assert module.run(None, None) == "alpha"


def test_missing_builtin_package_is_not_fatal(catalog, loader, caplog):
    with caplog.at_level(logging.WARNING, logger="kzconsole.plugins"):
        loader.load_builtins("kzc_test_no_such_package")
    assert catalog.sources() == []
    assert "kzc_test_no_such_package" in caplog.text


def test_the_real_builtin_package_loads_cleanly(catalog, loader):
    loader.load_builtins()
    assert all(s.loaded and s.error is None for s in catalog.sources()), [s.error for s in catalog.sources()]


def fake_entry_points(monkeypatch, *values: str) -> None:
    points = [
        importlib.metadata.EntryPoint(name=f"ep{i}", value=value, group="kzconsole.plugins")
        for i, value in enumerate(values)
    ]

    def entry_points(**params):
        return [ep for ep in points if ep.group == params.get("group")]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def test_entry_points(tmp_path, monkeypatch):
    name = f"kzc_test_ep_{uuid.uuid4().hex[:8]}"
    write(tmp_path / f"{name}.py", plugin_module_text("ep", "go", "from an entry point"))
    write(tmp_path / f"{name}_bad.py", "raise ImportError('needs a library that is missing')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fake_entry_points(monkeypatch, name, f"{name}_bad", f"{name}:missing_attr", "kzc_test_absent_module")
    for _ in range(2):
        catalog = Catalog()
        Loader(catalog).load_entry_points()
        by_source = {s.source: s for s in catalog.sources()}
        assert set(by_source) == {name, f"{name}_bad", "kzc_test_absent_module"}
        assert {s.kind for s in by_source.values()} == {"entry_point"}
        assert by_source[name].loaded
        assert call(catalog, "ep", "go", None, None) == "from an entry point"
        assert "needs a library that is missing" in by_source[f"{name}_bad"].error
        assert "kzc_test_absent_module" in by_source["kzc_test_absent_module"].error
    # Another group sees nothing.
    catalog = Catalog()
    Loader(catalog).load_entry_points("kzc.other")
    assert catalog.sources() == []


def test_entry_point_attribute_must_exist(tmp_path, monkeypatch):
    name = f"kzc_test_ep_{uuid.uuid4().hex[:8]}"
    write(tmp_path / f"{name}.py", plugin_module_text("ep", "go", "x"))
    monkeypatch.syspath_prepend(str(tmp_path))
    fake_entry_points(monkeypatch, f"{name}:register")
    catalog = Catalog()
    Loader(catalog).load_entry_points()
    [source] = catalog.sources()
    assert not source.loaded and "register" in source.error and "AttributeError" in source.error


def test_load_all_order_is_builtins_directories_entry_points(tmp_path, monkeypatch, catalog, loader):
    package = make_package(tmp_path, {"core": plugin_module_text("core", "go", "builtin")})
    monkeypatch.syspath_prepend(str(tmp_path))
    ep_name = f"kzc_test_ep_{uuid.uuid4().hex[:8]}"
    write(tmp_path / f"{ep_name}.py", plugin_module_text("ep", "go", "entry point"))
    fake_entry_points(monkeypatch, ep_name)
    first, second = tmp_path / "d1", tmp_path / "d2"
    first.mkdir()
    second.mkdir()
    write(second / "a.py", plugin_module_text("d2", "go", "second dir"))
    write(first / "z.py", plugin_module_text("d1", "go", "first dir"))
    # load_all loads the default package; point it at the test package instead.
    monkeypatch.setattr(loader, "load_builtins", lambda: Loader.load_builtins(loader, package))
    loader.load_all([first, second])
    assert [t.function() for t in catalog.triggers("daily")] == ["builtin", "first dir", "second dir", "entry point"]
