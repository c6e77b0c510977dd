"""The Kubernetes checkpoint store against the API emulator: locking by resourceVersion, races, leases."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config as kube_config
from kubernetes.dynamic import DynamicClient, exceptions

from bootstrap import checkpoint
from bootstrap.checkpoint import kube_store as kubestore
from bootstrap.checkpoint.kube_store import KubeStore
from bootstrap.clients import kubernetes as kube
from bootstrap.errors import AuthError, ConfigError, LockedError, StateError
from tests.fixtures.kube import KubeSandbox

NS = "bootstrap-state"
SECRET = "bootstrap-state-kuvaq"
_SA_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


@pytest.fixture
def emu(kube_emu: KubeSandbox) -> KubeSandbox:
    kube_emu.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    return kube_emu


def _store(emu: KubeSandbox, **kw: Any) -> KubeStore:
    return KubeStore(str(emu.kubeconfig_path), "sandbox", NS, "kuvaq", **kw)


def _state_json(emu: KubeSandbox) -> dict[str, Any]:
    secret = emu.get("v1", "Secret", NS, SECRET)
    assert secret is not None
    return dict(json.loads(base64.b64decode(secret["data"]["state.json"])))


def _annotations(emu: KubeSandbox) -> dict[str, str]:
    secret = emu.get("v1", "Secret", NS, SECRET)
    assert secret is not None
    return dict(secret["metadata"].get("annotations") or {})


def _bump(store: KubeStore, step: str = "deploy-key") -> None:
    state = store.load("kuvaq")
    state.record(step).attempts += 1
    store.save(state)


class _Interleaved(kube.KubeClient):
    """A real client that lets another run move right after its first read, to pin a race down."""

    def __init__(self, emu: KubeSandbox, between: Callable[[], object]) -> None:
        super().__init__(str(emu.kubeconfig_path), "sandbox")
        self._between: Callable[[], object] | None = between

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        obj = super().get(api_version, kind, namespace, name)
        between, self._between = self._between, None
        if between is not None:
            between()
        return obj


# -- URLs and the factory ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("kubernetes:///bootstrap-state", (None, "bootstrap-state")),
        ("kubernetes://mgmt/bootstrap-state", ("mgmt", "bootstrap-state")),
        (
            "kubernetes://arn:aws:eks:eu-west-1:1:cluster/mgmt/ns/",
            ("arn:aws:eks:eu-west-1:1:cluster/mgmt", "ns"),
        ),
        ("kubernetes://a%2Fb/ns", ("a/b", "ns")),
    ],
)
def test_state_urls_name_a_context_and_a_namespace(url: str, expected: tuple[str | None, str]) -> None:
    assert kubestore.parse_state_url(url) == expected


@pytest.mark.parametrize(
    "url", ["kubernetes://ns", "kubernetes:///", "kubernetes:///Bad_NS", "s3://bucket/x"]
)
def test_bad_state_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="kubernetes:///NAMESPACE") as err:
        kubestore.parse_state_url(url)
    assert err.value.exit_code == 4


def test_store_for_picks_the_file_store_by_default(tmp_path: Path) -> None:
    assert isinstance(checkpoint.store_for(None, tmp_path, "kuvaq"), checkpoint.FileStore)
    store = checkpoint.store_for("kubernetes://mgmt/bootstrap-state", tmp_path, "kuvaq", "/kc")
    assert isinstance(store, KubeStore)
    assert (store.context, store.namespace, store.name) == ("mgmt", NS, SECRET)
    assert store.describe() == "Secret bootstrap-state/bootstrap-state-kuvaq (context mgmt)"


# -- round trip ---------------------------------------------------------------------------
def test_round_trip_writes_the_file_stores_json_in_a_labelled_secret(
    emu: KubeSandbox, tmp_path: Path
) -> None:
    store = _store(emu)
    assert store.load("kuvaq").steps == {}  # no Secret yet: a fresh state, nothing written
    assert emu.get("v1", "Secret", NS, SECRET) is None
    with store.lock() as notice:
        assert notice is None
        holder = json.loads(_annotations(emu)[kubestore.HOLDER])
        assert set(holder) == {"id", "pid", "host", "started"}
        assert kubestore.LEASE_UNTIL in _annotations(emu)
        state = store.load("kuvaq")
        rec = state.record("deploy-key")
        rec.status = checkpoint.Status.DONE
        rec.outputs = {"fingerprint": "SHA256:abc"}
        store.save(state)
    secret = emu.get("v1", "Secret", NS, SECRET)
    assert secret is not None and secret["type"] == "Opaque"
    assert secret["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "gitops-bootstrap",
        "bootstrap.gitops.dev/customer": "kuvaq",
    }
    assert not set(_annotations(emu)) & {kubestore.HOLDER, kubestore.LEASE_UNTIL}  # released

    again = _store(emu).load("kuvaq")
    assert again.record("deploy-key").status is checkpoint.Status.DONE
    assert again.record("deploy-key").outputs == {"fingerprint": "SHA256:abc"}
    # The same document the file store writes: it can be moved between the two as is.
    (tmp_path / "state.json").write_text(json.dumps(_state_json(emu)))
    assert checkpoint.FileStore(tmp_path).load("kuvaq").steps == again.steps


def test_a_save_needs_the_lock_and_the_store_is_for_one_customer(emu: KubeSandbox) -> None:
    store = _store(emu)
    with pytest.raises(StateError, match="only saved while holding its lock"):
        store.save(checkpoint.State(customer="kuvaq"))
    with pytest.raises(StateError, match="not 'other'"):
        store.load("other")


# -- the lock -------------------------------------------------------------------------------
def test_second_lock_while_held_is_locked_naming_the_holder(emu: KubeSandbox) -> None:
    first, second = _store(emu), _store(emu)
    with first.lock():
        _bump(first)
        locked = r"locked by pid \d+ on .+ since .+lease until"
        with pytest.raises(LockedError, match=locked) as err, second.lock():
            pytest.fail("the second run must not get the lock")
        assert err.value.exit_code == 5 and "--break-lock" in str(err.value)
        with pytest.raises(LockedError, match="already locked by this process"), first.lock():
            pass
        _bump(first)  # the loser changed nothing
    with second.lock():
        _bump(second)
    assert _state_json(emu)["steps"]["deploy-key"]["attempts"] == 3


def test_losing_the_create_race_is_locked_naming_the_winner(emu: KubeSandbox) -> None:
    winner = _store(emu)
    with contextlib.ExitStack() as held:
        loser = _store(emu, client=_Interleaved(emu, lambda: held.enter_context(winner.lock())))
        # The loser reads "absent", then the winner creates the Secret: 409 AlreadyExists.
        with pytest.raises(LockedError, match=r"locked by pid \d+"), loser.lock():
            pass
        _bump(winner)  # the winner holds the lock and writes
    assert emu.log.count("POST", f"/namespaces/{NS}/secrets") == 2


def test_losing_the_update_race_is_locked_naming_the_winner(emu: KubeSandbox) -> None:
    with _store(emu).lock():
        pass  # the Secret exists, free
    winner = _store(emu)
    with contextlib.ExitStack() as held:
        loser = _store(emu, client=_Interleaved(emu, lambda: held.enter_context(winner.lock())))
        # The loser reads "free", then the winner takes it: 409 on the loser's stale resourceVersion.
        with pytest.raises(LockedError, match=r"locked by pid \d+"), loser.lock():
            pass
        _bump(winner)
    assert _state_json(emu)["steps"]["deploy-key"]["attempts"] == 1


def test_two_writers_racing_never_lose_an_update(emu: KubeSandbox) -> None:
    rounds = 12
    barrier = threading.Barrier(2, timeout=30)  # a hang guard, not a timing assertion
    wins: list[list[bool]] = [[], []]
    losses: list[str] = []
    failures: list[BaseException] = []

    def writer(me: int) -> None:
        store = _store(emu)
        try:
            for _ in range(rounds):
                barrier.wait()
                held = contextlib.ExitStack()
                try:
                    held.enter_context(store.lock())
                except LockedError as exc:
                    losses.append(str(exc))
                    wins[me].append(False)
                else:
                    wins[me].append(True)
                barrier.wait()  # both have tried while the winner still holds the lock
                with held:
                    if wins[me][-1]:
                        _bump(store, "counter")
        except BaseException as exc:
            failures.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=writer, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert [a != b for a, b in zip(*wins, strict=True)] == [True] * rounds  # exactly one winner a round
    assert len(losses) == rounds and all("locked by pid" in m for m in losses)
    assert _store(emu).load("kuvaq").record("counter").attempts == rounds  # no lost update


def test_break_lock_takes_over_and_the_old_holder_cannot_overwrite(emu: KubeSandbox) -> None:
    old, new = _store(emu), _store(emu)
    with pytest.raises(StateError, match="taken over by pid") as err, old.lock():
        _bump(old)
        stale = old.load("kuvaq")
        with new.lock(break_lock=True) as notice:
            assert notice is not None and notice.startswith("broke the lock held by pid")
            _bump(new)
            stale.record("argocd-dir").attempts = 99
            old.save(stale)  # must not overwrite the new holder's state
    assert "nothing was overwritten" in str(err.value)
    state = _store(emu).load("kuvaq")
    assert state.record("deploy-key").attempts == 2 and "argocd-dir" not in state.steps
    assert kubestore.HOLDER not in _annotations(emu)  # the new holder released; the old one left it alone


def test_the_old_holders_release_leaves_the_new_holders_lock(emu: KubeSandbox) -> None:
    old, new = _store(emu), _store(emu)
    with contextlib.ExitStack() as held:
        with old.lock():
            held.enter_context(new.lock(break_lock=True))
        assert kubestore.HOLDER in _annotations(emu)
        _bump(new)  # still the new holder's lock: its save goes through


def test_an_expired_lease_is_taken_over_with_a_notice(emu: KubeSandbox) -> None:
    crashed = _store(emu, lease=timedelta(0))
    with contextlib.ExitStack() as never_released:
        never_released.enter_context(crashed.lock())
        _bump(crashed)
        with _store(emu).lock() as notice:
            assert notice is not None
            assert notice.startswith("took over a stale lock left by pid") and "lease expired" in notice
        with pytest.raises(StateError, match="taken over"):
            _bump(crashed)  # had it been alive after all, it cannot write over the new run
        with contextlib.suppress(StateError):
            never_released.close()
    assert _state_json(emu)["steps"]["deploy-key"]["attempts"] == 1


def test_every_save_renews_the_lease(emu: KubeSandbox) -> None:
    store = _store(emu)
    other = kube.KubeClient(str(emu.kubeconfig_path), "sandbox")
    with store.lock():
        secret = other.get("v1", "Secret", NS, SECRET)
        assert secret is not None
        secret["metadata"]["annotations"][kubestore.LEASE_UNTIL] = "2000-01-01T00:00:00Z"  # time passed
        other.replace(secret)
        _bump(store)
        renewed = _annotations(emu)[kubestore.LEASE_UNTIL]
        assert renewed.endswith("Z") and renewed > checkpoint.now()[:19]
        with pytest.raises(LockedError), _store(emu).lock():
            pass


def test_an_unrelated_edit_while_held_does_not_stop_the_run(emu: KubeSandbox) -> None:
    store = _store(emu)
    other = kube.KubeClient(str(emu.kubeconfig_path), "sandbox")
    with store.lock():
        _bump(store)
        secret = other.get("v1", "Secret", NS, SECRET)
        assert secret is not None
        secret["metadata"]["labels"]["team"] = "sre"  # e.g. `kubectl label`
        other.replace(secret)
        _bump(store)
    secret = emu.get("v1", "Secret", NS, SECRET)
    assert secret is not None and secret["metadata"]["labels"]["team"] == "sre"
    assert _state_json(emu)["steps"]["deploy-key"]["attempts"] == 2


# -- what goes wrong ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "Expecting property name"),
        ("[1, 2]", "not a JSON object"),
        ('{"schema_version": 1, "steps": {"deploy-key": 3}}', "AttributeError"),
    ],
)
def test_a_corrupt_checkpoint_says_how_to_get_out(emu: KubeSandbox, content: str, why: str) -> None:
    emu.seed(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET, "namespace": NS},
            "stringData": {"state.json": content},
        }
    )
    with pytest.raises(StateError, match=why) as err:
        _store(emu).load("kuvaq")
    message = str(err.value)
    assert f"kubectl --context sandbox -n {NS} delete secret {SECRET}" in message
    assert checkpoint.LOST in message  # what moving it aside costs, argocd-dir's drift record included


def test_a_missing_namespace_is_named(kube_emu: KubeSandbox) -> None:
    store = KubeStore(str(kube_emu.kubeconfig_path), "sandbox", "nowhere", "kuvaq")
    with pytest.raises(StateError, match="namespace nowhere does not exist"), store.lock():
        pass


@pytest.mark.parametrize("verb", ["get", "create", "update"])
def test_rbac_refusals_name_the_permission(emu: KubeSandbox, verb: str) -> None:
    if verb == "update":
        with _store(emu).lock():
            pass  # the Secret exists, so taking the lock is an update
    emu.forbid(verb, "secrets", NS)
    refused = f"'sandbox'.*needs permission to {verb} secrets in namespace {NS}"
    with pytest.raises(AuthError, match=refused), _store(emu).lock():
        pass


# -- the emulator's optimistic concurrency, which all of the above relies on ----------------
def test_the_emulator_refuses_stale_resource_versions(emu: KubeSandbox) -> None:
    kc = kube.KubeClient(str(emu.kubeconfig_path), "sandbox")
    created = kc.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": NS}})
    with pytest.raises(kube.Conflict, match="already exists"):
        kc.create(created)
    current = kc.replace(created | {"stringData": {"a": "1"}})
    with pytest.raises(kube.Conflict, match="has been modified"):
        kc.replace(created | {"stringData": {"a": "2"}})  # PUT with the stale resourceVersion

    dyn = DynamicClient(kube_config.new_client_from_config(str(emu.kubeconfig_path), "sandbox"))  # type: ignore[no-untyped-call]
    secrets = dyn.resources.get(api_version="v1", kind="Secret")
    stale = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "data": {"b": "Mg=="}}
    for content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
        with pytest.raises(exceptions.ConflictError):
            secrets.patch(name="s", namespace=NS, body=stale, content_type=content_type)
    fresh = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}, "data": {"b": "Mg=="}}
    secrets.patch(name="s", namespace=NS, body=fresh, content_type="application/merge-patch+json")
    with pytest.raises(kube.Missing):
        kc.replace(created | {"metadata": {"name": "gone", "namespace": NS}})


def test_in_a_pod_without_a_kubeconfig_the_store_uses_the_pods_service_account(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if Path("~/.kube/config").expanduser().exists() or Path(_SA_TOKEN).exists():
        pytest.skip("this machine has a kubeconfig or a ServiceAccount token")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "1")
    with pytest.raises(AuthError, match="cannot use this pod's ServiceAccount"):
        checkpoint.store_for("kubernetes:///bootstrap-state", Path("."), "kuvaq").load("kuvaq")
    # A step's client never falls back onto the cluster the tool runs in.
    with pytest.raises(AuthError, match="cannot load kubeconfig"):
        kube.KubeClient(None, None).get("v1", "Secret", NS, SECRET)
