"""The headless engine: plugins, jobs, store, scheduler, triggers. Never imports Textual or Rich.

The console and the command line use only the names exported here.
"""

from typing import TYPE_CHECKING, Any

from kzconsole.engine.arguments import MAX_WAIT_MS, check_account_id, check_wait_ms
from kzconsole.engine.clock import SYSTEM_CLOCK, Clock, FakeClock
from kzconsole.engine.engine import Engine
from kzconsole.engine.errors import EngineError, InvalidJobState, JobNotFound, JobRejected, describe_errors
from kzconsole.engine.events import (
    CatalogChanged,
    EngineLogged,
    Event,
    EventBus,
    JobChanged,
    JobDeleted,
    JobLogged,
    JobProgressed,
    StoreChanged,
    TriggerFired,
)
from kzconsole.engine.intake import InputReport
from kzconsole.engine.logs import install_stream_router
from kzconsole.engine.models import PUBLIC_JOB_KEYS, Firing, JobRecord, JobStatus
from kzconsole.engine.store import ApiKey, Store, StoreChange, StoreError
from kzconsole.engine.store.job_query import SORTS, InvalidQuery, JobQuery
from kzconsole.engine.store.query import JobRows

if TYPE_CHECKING:  # the types of Engine.plugins() and Engine.nodes() items
    from kzconsole.engine.catalog import PluginSource
    from kzconsole.engine.nodes import NodeInfo

__all__ = [
    "Engine",
    "Clock",
    "FakeClock",
    "SYSTEM_CLOCK",
    "install_stream_router",
    "EngineError",
    "InvalidJobState",
    "JobNotFound",
    "JobRejected",
    "describe_errors",
    "MAX_WAIT_MS",
    "check_account_id",
    "check_wait_ms",
    "Event",
    "EventBus",
    "JobChanged",
    "JobDeleted",
    "JobLogged",
    "JobProgressed",
    "StoreChanged",
    "CatalogChanged",
    "TriggerFired",
    "EngineLogged",
    "Firing",
    "JobRecord",
    "JobStatus",
    "PUBLIC_JOB_KEYS",
    "JobControl",
    "InputReport",
    "PluginSource",
    "NodeInfo",
    "copy_stores",
    "Store",
    "StoreChange",
    "StoreError",
    "ApiKey",
    "JobQuery",
    "JobRows",
    "InvalidQuery",
    "SORTS",
]


def __getattr__(name: str) -> Any:
    # Only job-running code needs JobControl: import it on first use.
    if name == "JobControl":
        from kzconsole.engine.control import JobControl

        return JobControl
    if name == "PluginSource":  # console: loaded with the catalog, not at import
        from kzconsole.engine.catalog import PluginSource

        return PluginSource
    if name == "NodeInfo":
        from kzconsole.engine.nodes import NodeInfo

        return NodeInfo
    if name == "copy_stores":  # `kzconsole store copy` (contract 9)
        from kzconsole.engine.store.copy import copy_stores

        return copy_stores
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
