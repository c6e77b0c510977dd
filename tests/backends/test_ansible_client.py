"""Real ansible-runner + kubernetes.core against the Kubernetes emulator.

Each playbook run costs ~3 s of Ansible start-up, so the runs are few and each
test checks several things about one run.
"""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from typing import Any

import pytest

from bootstrap.clients import argocd
from bootstrap.clients.ansible import SECRET_VARS_FILE, AnsibleRunner
from bootstrap.errors import AuthError
from tests.fixtures.kube import KubeSandbox

SECRET = "s3cr3t-Pa55word-never-shown"
TOKEN = "ghp_tokenInOurEnvironmentOnly0123456789"
ENCODED = base64.b64encode(SECRET.encode()).decode()

MANIFESTS: list[dict[str, Any]] = [
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": "default"},
        "data": {"a": "1"},
    },
    {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "default"},
        "stringData": {"password": "{{ admin_password }}"},
    },
]


class DirWatcher:
    """A progress hook that inspects the private data dir while the run is going on."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dirs: set[Path] = set()
        self.leaks: list[Path] = []
        self.modes: set[int] = set()
        self.vault_files = 0
        self.commands = 0

    def __call__(self, _line: str) -> None:
        for private in self.root.iterdir():
            self.dirs.add(private)
            self.modes.add(stat.S_IMODE(private.stat().st_mode))
            for path in private.rglob("*"):
                if not path.is_file():  # the vault password pipe is a FIFO: nothing stored in it
                    continue
                content = path.read_bytes()
                if any(s.encode() in content for s in (SECRET, ENCODED, TOKEN)):
                    self.leaks.append(path)
                if path == private / SECRET_VARS_FILE:
                    assert content.startswith(b"$ANSIBLE_VAULT;")
                    self.vault_files += 1
                if path.name == "command":
                    self.commands += 1


@pytest.fixture
def tmp_root(tmp_path: Path) -> Path:
    root = tmp_path / "private"
    root.mkdir()
    return root


def test_apply_check_mode_then_apply_then_noop(
    kube_emu: KubeSandbox, tmp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A token in our environment must not reach the playbook's (runner records it in artifacts).
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("K8S_AUTH_API_KEY", TOKEN)
    watcher = DirWatcher(tmp_root)
    runner = AnsibleRunner(tmp_root=tmp_root, progress=watcher)
    kubeconfig = str(kube_emu.kubeconfig_path)
    secrets = {"admin_password": SECRET}

    planned = runner.apply(MANIFESTS, "bootstrap", secrets, kubeconfig, "sandbox", check=True)
    assert planned.changed
    by_kind = {c.kind: c for c in planned.changes}
    assert by_kind["ConfigMap"].action == "create" and "+  a: '1'" in by_kind["ConfigMap"].diff
    assert by_kind["Secret"].diff == "data keys set: password (values hidden)"
    assert kube_emu.get("v1", "ConfigMap", "default", "cm") is None
    assert kube_emu.get("v1", "Secret", "default", "creds") is None
    assert kube_emu.log.writes == []
    assert kube_emu.log.count("PATCH") == 2  # the dry-run applies did reach the server

    applied = runner.apply(MANIFESTS, "bootstrap", secrets, kubeconfig, "sandbox")
    assert applied.changed and {c.action for c in applied.changes} == {"create"}
    secret = kube_emu.get("v1", "Secret", "default", "creds")
    assert secret is not None and secret["data"] == {"password": ENCODED}
    for kind, name in (("ConfigMap", "cm"), ("Secret", "creds")):
        obj = kube_emu.get("v1", kind, "default", name)
        assert obj is not None
        managers = {(m["manager"], m["operation"]) for m in obj["metadata"]["managedFields"]}
        assert managers == {("bootstrap", "Apply")}
    writes = len(kube_emu.log.writes)
    assert writes == 2

    again = runner.apply(MANIFESTS, "bootstrap", secrets, kubeconfig, "sandbox")
    assert not again.changed and again.changes == []
    assert len(kube_emu.log.writes) == writes

    for result in (planned, applied, again):
        assert SECRET not in repr(result) and ENCODED not in repr(result)
    assert watcher.dirs and len(watcher.dirs) == 3  # a fresh dir per run
    assert watcher.modes == {0o700}
    assert watcher.leaks == []
    assert watcher.vault_files and watcher.commands  # the scan did see the files while playbooks ran
    assert list(tmp_root.iterdir()) == []  # every private dir removed


def test_delete_playbook_removes_objects(kube_emu: KubeSandbox, tmp_root: Path) -> None:
    kube_emu.seed(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "default"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "default"}},
    )
    lines: list[str] = []
    runner = AnsibleRunner(tmp_root=tmp_root, progress=lines.append)
    objects = [
        {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "default", "name": "cm"},
        {"apiVersion": "v1", "kind": "Secret", "namespace": "default", "name": "creds"},
        {"apiVersion": "v1", "kind": "Secret", "namespace": "default", "name": "already-gone"},
        {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "default", "name": "never-was"},
        # A kind the API does not serve (its CRD already deleted) has no object left: gone, not failed.
        {"apiVersion": "example.com/v1", "kind": "Widget", "namespace": "default", "name": "w"},
    ]
    result = runner.delete(objects, str(kube_emu.kubeconfig_path), "sandbox")
    # One module start for the plain objects and one (no_log) for the Secrets, not one per object.
    assert [line for line in lines if line.startswith("Delete")] == ["Delete objects …", "Delete secrets …"]
    assert [(c.kind, c.name, c.action) for c in result.changes] == [
        ("ConfigMap", "cm", "delete"),
        ("Secret", "creds", "delete"),
    ]
    assert kube_emu.get("v1", "ConfigMap", "default", "cm") is None
    assert kube_emu.get("v1", "Secret", "default", "creds") is None
    assert list(tmp_root.iterdir()) == []


def test_forbidden_secret_is_an_auth_error_without_the_secret(kube_emu: KubeSandbox, tmp_root: Path) -> None:
    kube_emu.forbid("patch", "secrets", "default")
    runner = AnsibleRunner(tmp_root=tmp_root)
    with pytest.raises(AuthError) as err:
        runner.apply(
            MANIFESTS, "bootstrap", {"admin_password": SECRET}, str(kube_emu.kubeconfig_path), "sandbox"
        )
    message = str(err.value)
    assert "Secret default/creds" in message and 'cannot patch resource "secrets"' in message
    assert "cluster.context" in message
    assert SECRET not in message and ENCODED not in message
    assert kube_emu.get("v1", "ConfigMap", "default", "cm") is not None  # the other object still applied
    assert list(tmp_root.iterdir()) == []


def test_one_task_applies_a_list_and_names_what_failed(kube_emu: KubeSandbox, tmp_root: Path) -> None:
    """All objects go in one module start; one refused object neither hides nor stops the others."""
    kube_emu.forbid("patch", "configmaps", "locked")
    manifests = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in ("open", "locked")
    ] + [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm{i}", "namespace": ns}, "data": {}}
        for i, ns in enumerate(("open", "locked", "open"))
    ]
    # Text Ansible must not template goes the templated way (raw block); the rest through the file.
    template = "{{.app.metadata.name}} is {{.app.status.health.status}}"
    manifests.append(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "notify", "namespace": "open"},
            "data": {"template": argocd.literal(template)},
        }
    )
    runner = AnsibleRunner(tmp_root=tmp_root)
    with pytest.raises(AuthError) as err:
        runner.apply(manifests, "bootstrap", {}, str(kube_emu.kubeconfig_path), "sandbox")
    assert "ConfigMap locked/cm1" in str(err.value)
    assert kube_emu.get("v1", "ConfigMap", "open", "notify")["data"] == {"template": template}
    assert kube_emu.get("v1", "ConfigMap", "open", "cm0") is not None
    assert kube_emu.get("v1", "ConfigMap", "open", "cm2") is not None
    assert kube_emu.get("v1", "ConfigMap", "locked", "cm1") is None
