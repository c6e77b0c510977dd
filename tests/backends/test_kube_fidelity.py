"""kube-apiserver behaviours FIDELITY.md lists, held against the emulator.

Deletion with finalizers: the real apiserver answers a DELETE of an object that
has ``metadata.finalizers`` by setting ``deletionTimestamp`` and keeping the
object until every finalizer is removed
(https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/).
Argo CD's ``resources-finalizer.argocd.argoproj.io`` on an Application relies on
it, and ``bootstrap destroy`` waits for exactly that.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client, config

from tests.fixtures.kube import KubeSandbox


@pytest.fixture
def core(kube_emu: KubeSandbox) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(str(kube_emu.kubeconfig_path), context="sandbox")
    yield client.CoreV1Api(api)
    api.close()


def test_delete_with_a_finalizer_only_marks_the_object(core: client.CoreV1Api) -> None:
    body = {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}, "data": {"a": "1"}}
    core.create_namespaced_config_map("default", body)
    core.delete_namespaced_config_map("held", "default")
    kept = core.read_namespaced_config_map("held", "default")
    assert kept.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("held", "default", {"metadata": {"finalizers": None}})
    with pytest.raises(client.ApiException) as gone:
        core.read_namespaced_config_map("held", "default")
    assert gone.value.status == 404
