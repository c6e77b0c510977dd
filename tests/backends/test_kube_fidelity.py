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


# -- ServiceAccount tokens and /version (cluster registration relies on them) -----------------------
# kubernetes.io/docs/concepts/configuration/secret/#serviceaccount-token-secrets and
# kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/
# (#manually-create-an-api-token-for-a-serviceaccount):
# a Secret of type kubernetes.io/service-account-token annotated with the ServiceAccount's name
# is filled by the token controller with token, ca.crt and namespace (after its creation).
def _token_secret(name: str, account: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "annotations": {"kubernetes.io/service-account.name": account}},
        "type": "kubernetes.io/service-account-token",
    }


def _filled(kube_emu: KubeSandbox, name: str) -> dict[str, str]:
    from bootstrap.clients.kubernetes import KubeClient

    return KubeClient(str(kube_emu.kubeconfig_path), "sandbox").wait_secret_keys(
        "default", name, ("token", "ca.crt", "namespace"), 30.0, "test"
    )


def test_token_controller_fills_a_service_account_token_secret(
    core: client.CoreV1Api, kube_emu: KubeSandbox
) -> None:
    core.create_namespaced_service_account("default", {"metadata": {"name": "robot"}})
    created = core.create_namespaced_secret("default", _token_secret("robot-token", "robot"))
    assert not created.data  # filled afterwards, by the controller, not by the create
    data = _filled(kube_emu, "robot-token")
    assert data["namespace"] == "default" and data["ca.crt"] == kube_emu.ca_bundle
    assert data["token"].count(".") == 2  # a JWT's three parts
    secret = core.read_namespaced_secret("robot-token", "default")
    account = core.read_namespaced_service_account("robot", "default")
    assert secret.metadata.annotations["kubernetes.io/service-account.uid"] == account.metadata.uid
    # Deleting the ServiceAccount deletes its token Secrets (service-accounts-admin, "Token controller").
    core.delete_namespaced_service_account("robot", "default")
    with pytest.raises(client.ApiException) as gone:
        core.read_namespaced_secret("robot-token", "default")
    assert gone.value.status == 404


def test_a_token_secret_created_before_its_account_is_filled_once_the_account_exists(
    core: client.CoreV1Api, kube_emu: KubeSandbox
) -> None:
    """Unverified (see sandbox/kube_tokens.py): the real controller may instead delete such a Secret."""
    core.create_namespaced_secret("default", _token_secret("early-token", "late"))
    assert not core.read_namespaced_secret("early-token", "default").data
    core.create_namespaced_service_account("default", {"metadata": {"name": "late"}})
    assert _filled(kube_emu, "early-token")["token"]


def test_version_answers_major_and_minor(kube_emu: KubeSandbox) -> None:
    """GET /version: Kubernetes' OpenAPI (kubernetes/api/openapi-spec, path ``/version/``, operation
    ``getCodeVersion``, schema ``version.Info`` with string ``major``/``minor``), as the official client's
    ``VersionApi.get_code`` reads it. A ``+`` after the minor (managed providers) is **unverified** here;
    bootstrap/hub.py strips it either way."""
    from bootstrap.clients.kubernetes import KubeClient

    kube_emu.server_version["minor"] = "31+"
    assert KubeClient(str(kube_emu.kubeconfig_path), "sandbox").version() == ("1", "31+")
