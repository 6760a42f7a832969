"""The loader: imports plugin modules into the catalog, one all-or-nothing source at a time.

A source is one plugin file, one module of the built-in package, or one entry-point module
(contract 2). Loading one is staged: the module runs with a fresh :class:`Collector` active, its
declarations are checked (nothing declared twice in the module, nothing another loaded source
already declares), and only then does the new version replace the old one, in a single
:meth:`Catalog.install`. Anything that goes wrong is a *load error*: it never raises out of the
loader; it is recorded on the source (traceback text, shown by the console and ``kzconsole
plugins``) and logged on ``kzconsole.plugins``. A failed reload leaves the previous good version
serving.

Plugin files are executed from their source text, never through the import system: the bytecode
cache keys on (mtime in seconds, size), so a file rewritten within the same second with the same
size would silently run the old code. Built-in and entry-point modules are installed code and are
imported normally, but freshly each time, because several engines may live in one process (tests)
and a module cached in ``sys.modules`` would not run its decorators again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import importlib.metadata
import importlib.util
import linecache
import logging
import os
import pkgutil
import re
import stat
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kzconsole.plugin as plugin_api
from kzconsole.engine.catalog import Catalog, PluginSource
from kzconsole.engine.runtime import RuntimeScope
from kzconsole.plugin import Collector, PluginDeclarationError, TaskSpec, TriggerSpec, VerifierSpec, collecting

__all__ = [
    "Loader",
    "PluginLoadError",
    "PluginConflictError",
    "PluginPermissionError",
    "file_module_name",
    "permission_problem",
]

log = logging.getLogger("kzconsole.plugins")

_MISSING = object()


class PluginLoadError(Exception):
    """A module imported fine but its declarations cannot be accepted (declared twice in it)."""


class PluginConflictError(PluginLoadError):
    """A module declares a task or verifier that another loaded source already declares."""


class PluginPermissionError(PluginLoadError):
    """Running as root, a plugin file or folder another user could change (sshd's StrictModes)."""


def permission_problem(path: str | os.PathLike[str]) -> str | None:
    """Why running the plugin file at ``path`` would let another user run code as us, or None.

    As sshd's StrictModes does: the file and its folder (and for a symlink, the real file and its
    folder) must belong to the user running kzconsole and be writable by no one else.
    """
    uid = os.geteuid()
    file = Path(os.fspath(path))
    targets = [(file, "file"), (file.parent, "folder")]
    real = Path(os.path.realpath(file))
    if real != file:
        targets += [(real, "file"), (real.parent, "folder")]
    for target, what in targets:
        st = os.stat(target)
        if st.st_uid != uid:
            return (
                f"the plugin {what} {target} belongs to uid {st.st_uid}, not to the user running kzconsole (uid {uid})"
            )
        writable = [who for who, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH)) if st.st_mode & bit]
        if writable:
            return (
                f"the plugin {what} {target} is writable by {' and '.join(writable)}"
                f" (mode {stat.S_IMODE(st.st_mode):04o})"
            )
    return None


def file_module_name(path: str) -> str:
    """The ``sys.modules`` name of a plugin file: stable for a path, unique across directories
    (two ``numbers.py`` in two plugin directories must not share a module)."""
    stem = re.sub(r"[^0-9A-Za-z_]", "_", Path(path).stem) or "_"
    digest = hashlib.sha1(os.fsencode(path)).hexdigest()[:10]
    return f"kzconsole_plugins_{stem}_{digest}"


def _source_path(path: str | os.PathLike[str]) -> str:
    """The catalog key of a plugin file. The directory is resolved (so a watcher reporting the
    real path and a configuration naming a symlinked directory agree) but the file's own name is
    kept, so a symlinked plugin file is known, and deleted, by its own name."""
    p = Path(os.fspath(path))
    return str(p.parent.resolve() / p.name)


# --- load error text ------------------------------------------------------------------------

_THIS_FILE = os.path.normcase(os.path.abspath(__file__))
_PLUGIN_API_FILE = os.path.normcase(os.path.abspath(plugin_api.__file__))
_IMPORTLIB_DIR = os.path.normcase(os.path.dirname(os.path.abspath(importlib.__file__))) + os.sep


def _is_machinery(filename: str, exc: BaseException) -> bool:
    """Frames an operator does not need: this loader, the import system, and (for a declaration
    mistake, whose message already names the plugin's file and line) the decorators' insides."""
    if filename.startswith("<frozen importlib"):
        return True
    norm = os.path.normcase(os.path.abspath(filename)) if not filename.startswith("<") else filename
    if norm == _THIS_FILE or norm.startswith(_IMPORTLIB_DIR):
        return True
    return isinstance(exc, PluginDeclarationError) and norm == _PLUGIN_API_FILE


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, PluginLoadError):
        return f"{type(exc).__name__}: {exc}"
    te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    te.stack = traceback.StackSummary.from_list([frame for frame in te.stack if not _is_machinery(frame.filename, exc)])
    return "".join(te.format()).rstrip("\n")


# --- staging --------------------------------------------------------------------------------


@dataclass
class _Staged:
    """A module ready to run: how to run it, and what to do once the load is decided."""

    module: types.ModuleType
    execute: Callable[[], None]
    commit: Callable[[], None] = lambda: None
    rollback: Callable[[], None] = lambda: None


@dataclass
class _Pending:
    """A source refused because another source declares the same names; retried (without
    re-running it) only once its staged declarations no longer conflict."""

    candidate: PluginSource
    reload: Callable[[], PluginSource]


def _candidate(source: str, kind: str, collector: Collector) -> PluginSource:
    tasks: dict[tuple[str, str], TaskSpec] = {}
    verifiers: dict[tuple[str, str], VerifierSpec] = {}
    triggers: dict[tuple[str, Any], TriggerSpec] = {}
    problems: list[str] = []
    for decl in collector.declarations:
        if isinstance(decl, TaskSpec):
            first = tasks.setdefault((decl.category, decl.action), decl)
            if first is not decl:
                problems.append(f"task {decl.name} is declared twice: at {first.where} and at {decl.where}")
        elif isinstance(decl, VerifierSpec):
            firstv = verifiers.setdefault((decl.category, decl.field), decl)
            if firstv is not decl:
                problems.append(f"verifier {decl.name} is declared twice: at {firstv.where} and at {decl.where}")
        elif isinstance(decl, TriggerSpec):
            # The same function bound twice to one trigger (e.g. @trigger("account") plus
            # @trigger("all_dbs")) runs once per firing: a second call would only repeat its work.
            triggers.setdefault((decl.trigger, decl.function), decl)
    if problems:
        raise PluginLoadError("\n".join(problems))
    return PluginSource(
        source=source,
        kind=kind,
        loaded=True,
        loaded_at=None,
        tasks=tuple(tasks.values()),
        verifiers=tuple(verifiers.values()),
        triggers=tuple(triggers.values()),
        error=None,
    )


class Loader:
    """Loads plugin sources into ``catalog``. Thread-safe: loads are serialised, so checking a
    candidate against the catalog and installing it cannot interleave with another load."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        clock: Callable[[], float] = time.time,
        strict_permissions: bool = False,
        context: RuntimeScope = contextlib.nullcontext,
    ) -> None:
        self.catalog = catalog
        self._clock = clock
        # Entered while a plugin's module code runs (the engine binds its plugin runtime there).
        self._context = context
        # When running as root, refuse plugin files another user could change (see
        # permission_problem); the engine passes `plugins.strict_permissions`.
        self.strict_permissions = strict_permissions
        self._lock = threading.RLock()
        self._pending: dict[str, _Pending] = {}

    # --- public -------------------------------------------------------------------------------

    def load_builtins(self, package: str = "kzconsole.plugins") -> None:
        """Every module of ``package`` (found with pkgutil, names starting with ``_`` skipped as
        helpers), in name order."""
        with self._lock:
            importlib.invalidate_caches()  # modules added since the last look must be found
            try:
                pkg = importlib.import_module(package)
            except ModuleNotFoundError as exc:
                if exc.name and (package + ".").startswith(exc.name + "."):
                    log.warning("built-in plugin package %s not found", package)
                else:  # the package exists but something it imports does not
                    self._record_failure(package, "builtin", _error_text(exc))
                return
            except BaseException as exc:  # noqa: BLE001 - see _load for why BaseException
                self._record_failure(package, "builtin", _error_text(exc))
                return
            paths = getattr(pkg, "__path__", None)
            if paths is None:
                log.warning("built-in plugins: %s is a module, not a package", package)
                return
            names = sorted({info.name for info in pkgutil.iter_modules(list(paths))})
            for name in names:
                if not name.startswith("_"):
                    self._load_module(f"{package}.{name}", "builtin")
            self._retry_pending()

    def load_directory(self, path: str | os.PathLike[str]) -> None:
        """Every ``*.py`` file of the directory whose name starts with neither ``_`` (helpers)
        nor ``.`` (editors' temporary files), in name order. A missing directory is logged."""
        with self._lock:
            directory = Path(os.fspath(path))
            try:
                files = sorted(
                    (
                        entry
                        for entry in directory.iterdir()
                        if entry.suffix == ".py" and not entry.name.startswith(("_", ".")) and entry.is_file()
                    ),
                    key=lambda entry: entry.name,
                )
            except OSError as exc:
                log.warning("plugin directory %s cannot be read: %s", directory, exc)
                return
            for file in files:
                self._load_file(file)
            self._retry_pending()

    def load_file(self, path: str | os.PathLike[str]) -> PluginSource:
        """Load, or reload, one plugin file (hot reload calls this). Returns its record."""
        with self._lock:
            record = self._load_file(path)
            self._retry_pending()
            return self.catalog.source(record.source) or record

    def unload_file(self, path: str | os.PathLike[str]) -> bool:
        """A deleted file: its tasks, verifiers and triggers leave the catalog. Jobs already
        running keep the functions they hold. False when the file was not known."""
        with self._lock:
            source = _source_path(path)
            self._pending.pop(source, None)
            removed = self.catalog.remove(source)
            modname = file_module_name(source)
            sys.modules.pop(modname, None)
            linecache.cache.pop(source, None)
            if removed:
                log.info("plugin %s unloaded", source)
                self._retry_pending()
            return removed

    def load_entry_points(self, group: str = "kzconsole.plugins") -> None:
        """Every module registered under the entry-point ``group``, in entry-point name order.
        The module is the plugin; an ``module:attr`` entry point only has its attribute checked."""
        with self._lock:
            try:
                # Looked up through the module at call time, so tests can replace it.
                found = importlib.metadata.entry_points(group=group)
            except Exception:
                log.exception("cannot list the entry points of group %s", group)
                return
            seen: set[str] = set()
            for ep in sorted(found, key=lambda ep: (ep.name, ep.value)):
                if ep.module in seen:
                    continue
                seen.add(ep.module)
                self._load_module(ep.module, "entry_point", attr=ep.attr)
            self._retry_pending()

    def load_all(self, directories: Iterable[str | os.PathLike[str]]) -> None:
        """Built-ins, then each directory in order, then entry points: the load order of the
        triggers, and the order in which "the first one keeps serving" is decided."""
        with self._lock:
            self.load_builtins()
            for directory in directories:
                self.load_directory(directory)
            self.load_entry_points()

    # --- one source -----------------------------------------------------------------------------

    def _load_file(self, path: str | os.PathLike[str]) -> PluginSource:
        source = _source_path(path)
        modname = file_module_name(source)

        def prepare() -> _Staged:
            geteuid = getattr(os, "geteuid", None)
            if self.strict_permissions and geteuid is not None and geteuid() == 0:
                problem = permission_problem(source)
                if problem is not None:
                    raise PluginPermissionError(
                        f"refused: {problem}. Running as root, kzconsole only loads plugin files"
                        " that no other user can change: fix the owner or the mode (chown root,"
                        " chmod go-w), or set plugins.strict_permissions = false in the config"
                    )
            with open(source, "rb") as handle:
                data = handle.read()
            # dont_inherit: this module's `from __future__` flags must not leak into plugins.
            code = compile(data, source, "exec", dont_inherit=True)
            module = types.ModuleType(modname)
            module.__file__ = source
            module.__cached__ = None  # type: ignore[attr-defined]
            # Tracebacks and inspect must show the text that was compiled, not whatever is on
            # disk later; mtime None tells linecache never to re-read it.
            lines = importlib.util.decode_source(data).splitlines(keepends=True)
            previous_lines = linecache.cache.get(source)
            linecache.cache[source] = (len(data), None, lines, source)

            def rollback() -> None:
                if previous_lines is None:
                    linecache.cache.pop(source, None)
                else:
                    linecache.cache[source] = previous_lines

            return _Staged(module, lambda: exec(code, module.__dict__), rollback=rollback)

        return self._load(source, "file", modname, prepare, lambda: self._load_file(source))

    def _load_module(self, modname: str, kind: str, attr: str | None = None) -> PluginSource:
        def prepare() -> _Staged:
            spec = importlib.util.find_spec(modname)
            if spec is None or spec.loader is None:
                raise ModuleNotFoundError(f"No module named {modname!r}", name=modname)
            module = importlib.util.module_from_spec(spec)

            def execute() -> None:
                spec.loader.exec_module(module)  # type: ignore[union-attr]
                if attr:
                    target: Any = module
                    for part in attr.split("."):
                        target = getattr(target, part)

            def commit() -> None:
                # What a normal import does, so `import package.module` finds it afterwards.
                parent, _, child = modname.rpartition(".")
                if parent and parent in sys.modules:
                    setattr(sys.modules[parent], child, module)

            return _Staged(module, execute, commit=commit)

        return self._load(modname, kind, modname, prepare, lambda: self._load_module(modname, kind, attr))

    def _load(
        self, source: str, kind: str, modname: str, prepare: Callable[[], _Staged], reload: Callable[[], PluginSource]
    ) -> PluginSource:
        collector = Collector()
        saved_module = sys.modules.get(modname, _MISSING)
        staged: _Staged | None = None
        try:
            staged = prepare()
            # Registered while it runs (dataclasses and typing look their module up there) and
            # kept after a successful load (pickle, inspect, get_type_hints).
            sys.modules[modname] = staged.module
            # A print at import must not end up in a command's stdout (a --json document there
            # stays valid): while the module runs, its stdout goes to stderr.
            with collecting(collector), contextlib.redirect_stdout(sys.stderr), self._context():
                staged.execute()
            candidate = _candidate(source, kind, collector)
            problems = self.catalog.conflicts(candidate)
            if problems:
                self._pending[source] = _Pending(candidate, reload)
                raise PluginConflictError("\n".join(problems))
        # BaseException: a plugin that calls sys.exit() or raises KeyboardInterrupt at import is a
        # broken plugin like any other, and must not stop the engine or the hot-reload thread.
        # A real Ctrl-C landing exactly while a plugin is imported is therefore recorded as that
        # plugin's load error instead of stopping the process; the next Ctrl-C does that, which
        # is simpler and safer than guessing where the interrupt came from.
        except BaseException as exc:  # noqa: BLE001 - see above
            text = _error_text(exc)  # before the rollback, so traceback lines are the new text
            if not isinstance(exc, PluginConflictError):
                self._pending.pop(source, None)
            if saved_module is _MISSING:
                sys.modules.pop(modname, None)
            else:
                sys.modules[modname] = saved_module  # type: ignore[assignment]
            if staged is not None:
                staged.rollback()
            return self._record_failure(source, kind, text)
        staged.commit()
        self._pending.pop(source, None)
        record = dataclasses.replace(candidate, loaded_at=self._clock())
        replaced = self.catalog.source(source)
        self.catalog.install(record)
        log.info(
            "plugin %s %s: %d task(s), %d verifier(s), %d trigger binding(s)",
            source,
            "reloaded" if replaced is not None and replaced.loaded else "loaded",
            len(record.tasks),
            len(record.verifiers),
            len(record.triggers),
        )
        return record

    def _record_failure(self, source: str, kind: str, text: str) -> PluginSource:
        previous = self.catalog.source(source)
        if previous is not None and previous.loaded:
            record = dataclasses.replace(previous, error=text)
            log.error("plugin %s: the new version cannot be loaded; the previous one keeps serving:\n%s", source, text)
        else:
            record = PluginSource(source, kind, False, None, (), (), (), text)
            log.error("plugin %s cannot be loaded:\n%s", source, text)
        self.catalog.install(record)
        return record

    def _retry_pending(self) -> None:
        """Sources refused for a conflict load once the other source is gone (deleted, or reloaded
        without the name). Checked against their staged declarations first, so a file that would
        still conflict is not run again on every change of another file."""
        progress = True
        while progress and self._pending:
            progress = False
            for source, pending in list(self._pending.items()):
                if self._pending.get(source) is not pending:
                    continue
                if self.catalog.conflicts(pending.candidate):
                    continue
                del self._pending[source]
                pending.reload()
                progress = True
