"""The headless engine: plugins, jobs, store, scheduler, triggers. Never imports Textual or Rich.

The console and the command line use only the names exported here.
"""

from kzconsole.engine.engine import (
    Engine,
    EngineError,
    InvalidJobState,
    JobNotFound,
    JobRejected,
    describe_errors,
)
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
from kzconsole.engine.models import Firing, JobRecord, JobStatus
from kzconsole.engine.store import ApiKey, Store, StoreError

__all__ = [
    "Engine",
    "EngineError",
    "InvalidJobState",
    "JobNotFound",
    "JobRejected",
    "describe_errors",
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
    "JobControl",
    "Store",
    "StoreError",
    "ApiKey",
]


def __getattr__(name: str):
    # The runner is heavy and only job-running code needs JobControl: import it on first use.
    if name == "JobControl":
        from kzconsole.engine.runner import JobControl

        return JobControl
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
