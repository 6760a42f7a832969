"""The engines on a store, as ``kzconsole nodes`` and the console's Nodes view show them
(contract 9): every engine alive or dead, what it runs, and what was resumed elsewhere when it died.

Built from the store only (leases, executing jobs, takeovers), so any node of a cluster gives the
same answer. Liveness is judged as the scheduler judges it (:func:`dead_owners`), on the store's
clock.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from kzconsole.engine.models import JobStatus, Takeover
from kzconsole.engine.store.base import Store

__all__ = ["NodeInfo", "list_nodes"]


@dataclass(frozen=True)
class NodeInfo:
    """One engine on the store."""

    engine: str  # the engine's id (jobs' owner while it runs them)
    name: str  # the node name (jobs' `node`)
    host: str
    pid: int
    version: str
    started: float
    last_heartbeat: float  # on the store's clock
    alive: bool
    running: int  # jobs it executes now (from the store's records)
    slots: int  # its tasks.max_running
    tasks: tuple[str, ...]
    resumed_elsewhere: tuple[Takeover, ...]  # its jobs other engines took over (newest first)
    listed_at: float | None = None  # the store's clock when this was read

    def load(self) -> str:
        """Its jobs out of its slots: ``1/4``; ``1/-`` for a process that claims no job (``tasks
        run``, ``triggers run``: it runs the one it was given, it has no slots)."""
        return f"{self.running}/{self.slots if self.slots else '-'}"

    def heartbeat_age(self, now: float | None = None) -> str:
        """How long ago its last heartbeat was: ``12 s ago``, ``3 min ago``, ``5 h ago``. Judged
        on the store's clock (``listed_at``), as the heartbeat is: the clock of the node that
        asks may be off. ``now`` is used only for a NodeInfo made without ``listed_at``."""
        reference = self.listed_at if self.listed_at is not None else now
        if reference is None:
            return "-"
        seconds = max(0, int(reference - self.last_heartbeat))
        if seconds < 120:
            return f"{seconds} s ago"
        if seconds < 7200:
            return f"{seconds // 60} min ago"
        return f"{seconds // 3600} h ago"

    def public(self) -> dict[str, Any]:
        return {
            "node": self.name,
            "engine": self.engine,
            "host": self.host,
            "pid": self.pid,
            "version": self.version,
            "started": self.started,
            "last_heartbeat": self.last_heartbeat,
            "alive": self.alive,
            "running": self.running,
            "slots": self.slots,
            "tasks": list(self.tasks),
            "resumed_elsewhere": [
                {
                    "job_id": t.job_id,
                    "by_node": t.to_name,
                    "by_engine": t.to_engine,
                    "at": t.at,
                    "rows_done": t.rows_done,
                    "outcome": t.outcome,
                }
                for t in self.resumed_elsewhere
            ],
        }


def list_nodes(store: Store, *, takeovers_per_node: int = 20) -> list[NodeInfo]:
    """Every engine lease on ``store``: alive ones first, then by node name and start."""
    from kzconsole.engine.leases import LEASE_TTL, dead_owners

    leases = store.engines()
    now = store.now()
    is_dead = dead_owners(store, now, socket.gethostname(), leases=leases)
    running: dict[str | None, int] = {}
    for job in store.jobs_in_status(JobStatus.EXECUTING.value):
        running[job.owner] = running.get(job.owner, 0) + 1
    nodes = []
    for lease in leases:
        alive = not is_dead(lease.node)
        taken = () if alive else tuple(store.takeovers(from_engine=lease.node, limit=takeovers_per_node))
        nodes.append(
            NodeInfo(
                engine=lease.node,
                name=lease.node_name,
                host=lease.host,
                pid=lease.pid,
                version=lease.version,
                started=lease.started,
                last_heartbeat=lease.expires - LEASE_TTL,
                alive=alive,
                running=running.get(lease.node, 0),
                slots=lease.slots,
                tasks=lease.tasks,
                resumed_elsewhere=taken,
                listed_at=now,
            )
        )
    nodes.sort(key=lambda n: (not n.alive, n.name, n.started, n.engine))
    return nodes
