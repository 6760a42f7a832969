"""``make soak``: the kill and freeze points of the cluster tests many times, at different rows
(pytest -m slow; not part of make test)."""

from __future__ import annotations

import signal

import pytest

from kzconsole.engine.models import JobStatus
from tests.cluster.conftest import Cluster, assert_rows_exactly_once, wait_until
from tests.cluster.test_cluster import _running_on

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("round_", range(12))
def test_kill_9_at_many_points(cluster: Cluster, round_: int) -> None:
    a = cluster.node("node-a").start(KZ_ROW_S="0.005")
    b = cluster.node("node-b").start(KZ_ROW_S="0.005")
    cli = cluster.node("console")
    ids = [cli.add_fast("cl", "plain", 150) for _ in range(4)]
    victim = (a, b)[round_ % 2]
    wait_until(
        lambda: any(_running_on(cluster, i, victim.name, 5 + 11 * round_) for i in ids),
        60,
        f"{victim.name} to be mid-job",
    )
    victim.kill()
    finished = cluster.wait_finished(ids, timeout=180)
    assert {j.status for j in finished.values()} == {JobStatus.SUCCESS}, cluster.logs()
    for job_id in ids:
        assert_rows_exactly_once(cluster, job_id, 150)


@pytest.mark.parametrize("round_", range(4))
def test_freeze_past_the_lease_at_many_points(cluster: Cluster, round_: int) -> None:
    a = cluster.node("node-a").start(KZ_ROW_S="0.01")
    cluster.node("node-b").start(KZ_ROW_S="0.01")
    cli = cluster.node("console")
    ids = [cli.add_fast("cl", "plain", 300) for _ in range(3)]
    wait_until(lambda: any(_running_on(cluster, i, "node-a", 3 + 17 * round_) for i in ids), 60, "node-a to be mid-job")
    a.signal(signal.SIGSTOP)
    wait_until(lambda: not any(_running_on(cluster, i, "node-a", 0) for i in ids), 90, "node-a's jobs to be taken over")
    a.signal(signal.SIGCONT)
    finished = cluster.wait_finished(ids, timeout=240)
    assert {j.status for j in finished.values()} == {JobStatus.SUCCESS}, cluster.logs()
    for job_id in ids:
        assert_rows_exactly_once(cluster, job_id, 300)
