"""The public plugin API of kzconsole (contract section 2).

A plugin is a Python module that imports from here only::

    from kzconsole.plugin import task, verifier, trigger, INIT, STOP, OK, Next

This module is deliberately small and self-contained: it never imports Textual, Rich, or the
engine. Decorators validate a declaration at import time (a mistake raises
:class:`PluginDeclarationError` naming the file and line) and hand it to the loader that is
importing the module; used outside a loader they only annotate the function.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "task",
    "verifier",
    "trigger",
    "INIT",
    "STOP",
    "OK",
    "Next",
    "JOB_KEYS",
    "Context",
    "PluginDeclarationError",
    "CRON_TRIGGERS",
    "DATABASE_TRIGGERS",
    "TRIGGER_NAMES",
    "Database",
    "Runtime",
    "runtime",
    "TaskNaming",
]


class _Marker:
    """A named singleton: INIT, STOP and OK compare by identity and print by name."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:  # pickling/copying keeps the singleton
        return self._name


INIT = _Marker("INIT")
"""The iterator value on a job's first call."""
STOP = _Marker("STOP")
"""Returned (or given to :class:`Next`) to end the job now."""
OK = _Marker("OK")
"""Returned for a successful row; a CSV task then writes the input row."""

_NO_RESULT = _Marker("_NO_RESULT")


class Next:
    """Hand ``state`` to the next call as ``it``, optionally with a ``result`` for this call.

    ``Next(state)`` writes nothing and counts a CSV row as a success; ``Next(state, result)``
    handles ``result`` as if it had been returned directly (``Next(state, None)`` is ``OK``).
    ``Next(STOP, ...)`` handles the result, then ends the job.
    """

    __slots__ = ("state", "result")

    def __init__(self, state: Any, result: Any = _NO_RESULT) -> None:
        self.state = state
        self.result = result

    @property
    def has_result(self) -> bool:
        return self.result is not _NO_RESULT

    def __repr__(self) -> str:
        if self.has_result:
            return f"Next({self.state!r}, {self.result!r})"
        return f"Next({self.state!r})"


class PluginDeclarationError(Exception):
    """A mistake in a declaration (bad name, wrong arity, ...). The message names file and line."""


CRON_TRIGGERS = ("minutely", "hourly", "daily")
DATABASE_TRIGGERS = ("account", "account_mod", "system", "other")
TRIGGER_NAMES = CRON_TRIGGERS + DATABASE_TRIGGERS + ("all_dbs",)


@dataclass(slots=True, kw_only=True, eq=False)
class Context:
    """The ``ctx`` argument of a task (the original's ExtraArgs)."""

    account_id: str | None
    auth_account_id: str | None
    job_id: str
    category: str
    action: str
    log: logging.Logger
    # Set by the engine when an operator asks the job to stop (stop_requested reads it).
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def stop_requested(self) -> bool:
        """True once an operator asked the job to stop."""
        return self.stop_event.is_set()

    def __repr__(self) -> str:
        return f"<Context job={self.job_id} {self.category}/{self.action} account={self.account_id}>"


# --- declarations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    """Where a declaration was made: shown in every error about it."""

    filename: str
    lineno: int

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno}"


class TaskNaming:
    """What a task is called and whether it takes input, for whatever describes one (the
    declaration here, the console's catalog entry)."""

    category: str
    action: str
    expected_content: str | None

    @property
    def name(self) -> str:
        return f"{self.category}/{self.action}"

    @property
    def is_noinput(self) -> bool:
        return self.expected_content is None


@dataclass(frozen=True)
class TaskSpec(TaskNaming):
    """A declared task: the metadata of contract 2.1 plus the callables."""

    category: str
    action: str
    description: str
    doc: str
    mandatory: tuple[str, ...]
    optional: tuple[str, ...]
    expected_content: str | None
    output_header: tuple[str, ...] | Callable[[], Any] | None
    finish: Callable[[Any, Any], Any] | None
    function: Callable[..., Any]
    is_generator: bool
    where: Where

    @property
    def fields(self) -> tuple[str, ...]:
        return self.mandatory + self.optional

    def help(self) -> dict[str, Any]:
        """The catalog entry of ``tasks help --json``."""
        return {
            "description": self.description,
            "doc": self.doc,
            "expected_content": self.expected_content,
            "mandatory": list(self.mandatory),
            "optional": list(self.optional),
        }


@dataclass(frozen=True)
class VerifierSpec:
    category: str
    field: str
    function: Callable[[str], Any]
    where: Where

    @property
    def name(self) -> str:
        return f"{self.category}/{self.field}"


@dataclass(frozen=True)
class TriggerSpec:
    trigger: str  # one of CRON_TRIGGERS + DATABASE_TRIGGERS (all_dbs is expanded)
    function: Callable[..., Any]
    where: Where

    @property
    def function_name(self) -> str:
        return getattr(self.function, "__qualname__", repr(self.function))


Declaration = TaskSpec | VerifierSpec | TriggerSpec


@dataclass
class Collector:
    """Receives the declarations made while one module is being imported (used by the loader)."""

    declarations: list[Declaration] = field(default_factory=list)


_local = threading.local()


def _current_collector() -> Collector | None:
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


class collecting:
    """Context manager used by the loader: declarations made inside go to ``collector``.

    Thread-local, so two threads loading plugins at once never see each other's declarations.
    """

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def __enter__(self) -> Collector:
        stack = getattr(_local, "stack", None)
        if stack is None:
            stack = _local.stack = []
        stack.append(self.collector)
        return self.collector

    def __exit__(self, *exc: object) -> None:
        _local.stack.pop()


def _declare(fn: Callable[..., Any], decl: Declaration) -> None:
    existing = getattr(fn, "__kzconsole_declarations__", None)
    if existing is None:
        try:
            fn.__kzconsole_declarations__ = [decl]  # type: ignore[attr-defined]
        except (AttributeError, TypeError):
            pass
    else:
        existing.append(decl)
    collector = _current_collector()
    if collector is not None:
        collector.declarations.append(decl)


def _where(fn: Any) -> Where:
    code = getattr(fn, "__code__", None)
    if code is not None:
        return Where(code.co_filename, code.co_firstlineno)
    try:
        return Where(inspect.getsourcefile(fn) or "?", inspect.getsourcelines(fn)[1])
    except (TypeError, OSError):
        # Called from a decorator line: the caller's frame is two levels up.
        frame = inspect.currentframe()
        outer = frame.f_back.f_back.f_back if frame and frame.f_back and frame.f_back.f_back else None
        if outer is not None:
            return Where(outer.f_code.co_filename, outer.f_lineno)
        return Where("?", 0)


def _fail(where: Where, what: str, message: str) -> PluginDeclarationError:
    return PluginDeclarationError(f"{where}: {what}: {message}")


def _check_name(value: Any, kind: str, where: Where, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(where, what, f"{kind} must be a non-empty string, got {value!r}")
    if any(ch == "." or ch == "/" or ch.isspace() for ch in value):
        raise _fail(where, what, f"{kind} {value!r} must not contain '.', '/' or whitespace")
    return value


def _accepts_positional(fn: Callable[..., Any], count: int) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True  # builtins without a signature: trust the author
    try:
        sig.bind(*range(count))
    except TypeError:
        return False
    return True


def _field_list(value: Any, name: str, where: Where, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise _fail(where, what, f"{name} must be a list of column names, got {value!r}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise _fail(where, what, f"{name} holds {item!r}, which is not a column name")
    return tuple(item.strip() for item in value)


_DEFAULT = object()


def task(
    category: str,
    action: str,
    *,
    description: str,
    doc: str = "",
    mandatory: list[str] | tuple[str, ...] | None = None,
    optional: list[str] | tuple[str, ...] | None = None,
    expected_content: Any = _DEFAULT,
    output_header: list[str] | tuple[str, ...] | Callable[[], Any] | None = None,
    finish: Callable[[Any, Any], Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a task. See the plugin author's guide (docs/plugins.md) and contract 2.1."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        where = _where(fn)
        what = f"task {category}/{action}"
        _check_name(category, "category", where, what)
        _check_name(action, "action", where, what)
        if not callable(fn):
            raise _fail(where, what, "@task must decorate a function")
        if not isinstance(description, str) or not description.strip():
            raise _fail(where, what, "description= must be a non-empty sentence")
        if not isinstance(doc, str):
            raise _fail(where, what, f"doc= must be a string, got {doc!r}")
        mand = _field_list(mandatory, "mandatory", where, what)
        opt = _field_list(optional, "optional", where, what)
        seen: set[str] = set()
        for name in mand + opt:
            if name in seen:
                raise _fail(where, what, f"field {name!r} is declared twice in mandatory + optional")
            seen.add(name)
        if expected_content is _DEFAULT:
            content = "text/csv" if (mand or opt) else None
        elif expected_content in (None, "text/csv"):
            content = expected_content
        else:
            raise _fail(where, what, f'expected_content must be "text/csv" or None, got {expected_content!r}')
        if content is None and (mand or opt):
            raise _fail(
                where, what, "a noinput task (expected_content=None) cannot declare mandatory or optional fields"
            )
        header: tuple[str, ...] | Callable[[], Any] | None
        if output_header is None or callable(output_header):
            header = output_header
        else:
            header = _field_list(output_header, "output_header", where, what)
            if not header:
                raise _fail(where, what, "output_header must not be empty")
        if finish is not None and not callable(finish):
            raise _fail(where, what, f"finish= must be callable, got {finish!r}")
        if finish is not None and not _accepts_positional(finish, 2):
            raise _fail(where, what, "finish must take (ctx, it)")
        is_gen = inspect.isgeneratorfunction(fn)
        if content is None:
            if is_gen:
                if not _accepts_positional(fn, 1):
                    raise _fail(where, what, "a generator noinput task must take (ctx)")
            elif not _accepts_positional(fn, 2):
                raise _fail(where, what, "a noinput task must take (ctx, it)")
        else:
            if is_gen:
                raise _fail(where, what, "only a noinput task may be a generator function")
            if not _accepts_positional(fn, 3):
                raise _fail(where, what, "a CSV task must take (ctx, it, row)")
        spec = TaskSpec(
            category=category,
            action=action,
            description=description.strip(),
            doc=doc,
            mandatory=mand,
            optional=opt,
            expected_content=content,
            output_header=header,
            finish=finish,
            function=fn,
            is_generator=is_gen,
            where=where,
        )
        _declare(fn, spec)
        return fn

    return decorate


def verifier(category: str, field: str) -> Callable[[Callable[[str], Any]], Callable[[str], Any]]:
    """Declare a cell verifier for every column named ``field`` in the tasks of ``category``."""

    def decorate(fn: Callable[[str], Any]) -> Callable[[str], Any]:
        where = _where(fn)
        what = f"verifier {category}/{field}"
        _check_name(category, "category", where, what)
        if not isinstance(field, str) or not field.strip():
            raise _fail(where, what, f"field must be a non-empty column name, got {field!r}")
        if not callable(fn) or not _accepts_positional(fn, 1):
            raise _fail(where, what, "a verifier must take one argument (the cell)")
        _declare(fn, VerifierSpec(category, field.strip(), fn, where))
        return fn

    return decorate


def trigger(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Bind a function to a trigger: ``minutely``, ``hourly``, ``daily`` (no argument) or a
    database trigger ``account``, ``account_mod``, ``system``, ``other``, ``all_dbs`` (one
    argument: the database). A function may carry several ``@trigger`` decorators."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        where = _where(fn)
        what = f"trigger {name!r}"
        if name not in TRIGGER_NAMES:
            raise _fail(where, what, f"unknown trigger; use one of {', '.join(TRIGGER_NAMES)}")
        if not callable(fn):
            raise _fail(where, what, "@trigger must decorate a function")
        arity = 0 if name in CRON_TRIGGERS else 1
        if not _accepts_positional(fn, arity):
            raise _fail(
                where,
                what,
                "a cron trigger function takes no argument"
                if arity == 0
                else "a database trigger function takes one argument (the database)",
            )
        names = DATABASE_TRIGGERS if name == "all_dbs" else (name,)
        for one in names:
            _declare(fn, TriggerSpec(one, fn, where))
        return fn

    return decorate


# --- the runtime: engine services a plugin may use -------------------------------------------


@dataclass(frozen=True)
class Database:
    """A database visited by a database pass (the argument of a database trigger function).

    ``str(db)`` is its name (e.g. ``account/ab/cd/0123456789abcdef0123456789ab-202611``); ``kind``
    is ``account``, ``account_mod``, ``system`` or ``other``; ``path`` is its SQLite file when the
    source is a directory (None for a ``list`` source).
    """

    name: str
    kind: str
    path: Any = None

    def __str__(self) -> str:
        return self.name


# The keys of a job record (contract 4.1), in the contract's order: what `runtime().jobs()` gives
# each job, and the engine's JSON record (`tasks list --json`, the API).
JOB_KEYS = (
    "id", "account_id", "auth_account_id", "category", "action", "file_name", "status", "created",
    "start_timestamp", "end_timestamp", "total_count", "success_count", "failure_count", "node",
    "output_rows", "wait_after_row_ms", "error",
)  # fmt: skip


class Runtime:
    """What the engine running a plugin offers it beyond ``ctx`` (trigger functions have no ctx).

    Get it with :func:`runtime`. Methods are safe to call from any thread.
    """

    def options(self, name: str) -> dict[str, Any]:
        """The table ``[plugin_options.<name>]`` of the configuration (empty when absent)."""
        raise NotImplementedError

    def databases(self) -> list[Database]:
        """The databases of the configured source, in name order, classified."""
        raise NotImplementedError

    def jobs(self, *, status: Any = None) -> list[dict[str, Any]]:
        """Every job record (the contract's JSON shape: :data:`JOB_KEYS`), newest first."""
        raise NotImplementedError

    def remove_job(self, job_id: str) -> None:
        """Delete a finished job and its files."""
        raise NotImplementedError

    def now(self) -> float:
        """The engine's clock (Unix seconds); tests inject it."""
        raise NotImplementedError

    @property
    def data_dir(self) -> Any:
        raise NotImplementedError


# The runtime of the engine whose code is running in this thread: bound while one of its jobs
# runs, one of its trigger functions runs, or it imports a plugin, so two engines in one process
# each answer their own plugins. Outside those (a plugin's own thread), the engine that bound one
# last answers.
_bound: contextvars.ContextVar[Runtime | None] = contextvars.ContextVar("kzconsole_runtime", default=None)
_runtime: Runtime | None = None


def runtime() -> Runtime:
    """The engine services of the engine running this plugin code."""
    current = _bound.get() or _runtime
    if current is None:
        raise RuntimeError("no kzconsole engine is running in this process")
    return current


class _Binding:
    """``with _bind_runtime(rt):`` - plugin code run inside sees ``rt`` (engine use only)."""

    __slots__ = ("_runtime", "_token")

    def __init__(self, value: Runtime) -> None:
        self._runtime = value

    def __enter__(self) -> Runtime:
        global _runtime
        _runtime = self._runtime
        self._token = _bound.set(self._runtime)
        return self._runtime

    def __exit__(self, *exc: object) -> None:
        _bound.reset(self._token)


def _bind_runtime(value: Runtime) -> _Binding:
    return _Binding(value)


def _set_runtime(value: Runtime | None) -> None:
    """The process default (the engine that answers outside any binding)."""
    global _runtime
    _runtime = value
