"""Who an engine is, and whether a process is alive: the two facts the lease rule rests on."""

from __future__ import annotations

import os
import socket
import uuid


def node_name(configured: str | None = None) -> str:
    """This node's name (contract 9): ``--node`` / ``engine.node`` when given, else the host name."""
    return configured or socket.gethostname()


def new_node_id(name: str | None = None) -> str:
    """An id unique to this engine process: ``<node name>:<pid>:<random>`` (the owner of the jobs
    it runs, the key of its lease). Unique even when a node's engine restarts under the same
    name, so the restarted engine never mistakes the dead one's jobs for its own."""
    return f"{node_name(name)}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b") ", 1)[1][:1] != b"Z"
    except (OSError, IndexError):
        return True
