"""Workload readiness judged as ``kubectl rollout status`` does, not by counting available pods alone."""

from __future__ import annotations

from typing import Any

from bootstrap.clients.kubernetes import readiness


def deployment(generation: int = 2, **status: Any) -> dict[str, Any]:
    base = {
        "observedGeneration": 2,
        "replicas": 2,
        "updatedReplicas": 2,
        "availableReplicas": 2,
        "conditions": [{"type": "Available", "status": "True"}],
    }
    return {"metadata": {"generation": generation}, "spec": {"replicas": 2}, "status": base | status}


def statefulset(**status: Any) -> dict[str, Any]:
    base = {
        "observedGeneration": 1,
        "replicas": 1,
        "readyReplicas": 1,
        "updatedReplicas": 1,
        "currentRevision": "c-1",
        "updateRevision": "c-1",
    }
    return {"metadata": {"generation": 1}, "spec": {"replicas": 1}, "status": base | status}


def test_rolled_out_deployment_is_ready() -> None:
    assert readiness("Deployment", deployment()) == (True, "2/2 available")


def test_deployment_mid_upgrade_is_not_ready_though_pods_are_available() -> None:
    # The old ReplicaSet still serves: available, but not updated.
    assert readiness("Deployment", deployment(updatedReplicas=1)) == (False, "1/2 updated")
    assert readiness("Deployment", deployment(replicas=3)) == (False, "1 old replica(s) pending termination")
    assert readiness("Deployment", deployment(generation=3)) == (False, "not yet observed by its controller")


def test_statefulset_waits_for_its_update_revision() -> None:
    assert readiness("StatefulSet", statefulset()) == (True, "1/1 ready")
    assert readiness("StatefulSet", statefulset(updateRevision="c-2")) == (
        False,
        "rolling out revision c-2 (current c-1)",
    )
    assert readiness("StatefulSet", statefulset(updatedReplicas=0)) == (False, "0/1 updated")
