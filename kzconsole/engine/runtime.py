"""The engine services a plugin reaches through ``kzconsole.plugin.runtime()``.

Each engine has its own :class:`EngineRuntime`, bound while its jobs run, its trigger functions run
and its plugins are imported (``kzconsole.plugin._bind_runtime``), so two engines in one process
each answer their own plugins: their own data dir, options, databases and jobs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from kzconsole import plugin as _plugin_api
from kzconsole.engine.clock import Clock
from kzconsole.engine.models import JobRecord
from kzconsole.plugin import Database

__all__ = ["EngineRuntime", "RuntimeScope"]

# What the parts that run plugin code (the loader, the executor, the trigger service) enter around
# it: an engine's EngineRuntime.bound; contextlib.nullcontext where no engine is bound.
RuntimeScope = Callable[[], contextlib.AbstractContextManager[Any]]


class _Host(Protocol):
    """What of its engine a runtime uses (the Engine facade)."""

    settings: Any
    clock: Clock
    data_dir: Path

    def list_jobs(self, *, status: Any = None) -> list[JobRecord]: ...

    def remove_job(self, job_id: str) -> Any: ...


class EngineRuntime(_plugin_api.Runtime):
    """The services of one engine."""

    def __init__(self, engine: _Host) -> None:
        self._engine = engine

    def bound(self) -> contextlib.AbstractContextManager[Any]:
        """A context manager: plugin code run inside sees this runtime."""
        return _plugin_api._bind_runtime(self)

    def options(self, name: str) -> dict[str, Any]:
        return dict(self._engine.settings.plugin_options.get(name, {}))

    def databases(self) -> list[Database]:
        from kzconsole.engine.databases import list_databases

        return list_databases(self._engine.settings)

    def jobs(self, *, status: Any = None) -> list[dict[str, Any]]:
        return [j.public() for j in self._engine.list_jobs(status=status)]

    def remove_job(self, job_id: str) -> None:
        self._engine.remove_job(job_id)

    def now(self) -> float:
        return self._engine.clock.time()

    @property
    def data_dir(self) -> Path:
        return self._engine.data_dir
