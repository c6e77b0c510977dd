"""VaultClient against a real OpenBao dev server: KV v2 semantics and error mapping."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import hvac
import pytest

from bootstrap import errors
from bootstrap.clients import vault as vault_client
from sandbox import processes
from tests.fixtures.vault import VaultHandle, create_approle

SECRET = "s3cr3t-value-that-must-not-leak"


def test_write_then_read(vault: VaultHandle) -> None:
    path = f"{vault.prefix}/deploy-key"
    assert vault.client.read(path) is None
    assert vault.client.write(path, {"private_key": SECRET}, cas=0) == 1
    assert vault.client.read(path) == {"private_key": SECRET}


def test_cas_zero_refuses_a_second_write(vault: VaultHandle) -> None:
    path = f"{vault.prefix}/slack"
    vault.client.write(path, {"token": "first"}, cas=0)
    with pytest.raises(vault_client.CasMismatch, match="concurrently") as caught:
        vault.client.write(path, {"token": SECRET}, cas=0)
    assert isinstance(caught.value, errors.RetryableError)
    assert vault.client.read(path) == {"token": "first"}


def test_cas_on_the_read_version_updates(vault: VaultHandle) -> None:
    path = f"{vault.prefix}/passwords"
    vault.client.write(path, {"admin": "one"}, cas=0)
    current = vault.client.read_version(path)
    assert current is not None and current.version == 1
    assert vault.client.write(path, {"admin": "two"}, cas=current.version) == 2
    with pytest.raises(vault_client.CasMismatch):
        vault.client.write(path, {"admin": "three"}, cas=current.version)


def test_custom_metadata_round_trip(vault: VaultHandle) -> None:
    path = f"{vault.prefix}/deploy-key"
    provenance = {"key_id": "42", "fingerprint": "SHA256:abc"}
    vault.client.write(path, {"private_key": SECRET}, cas=0, metadata=provenance)
    current = vault.client.read_version(path)
    assert current == vault_client.VersionedSecret({"private_key": SECRET}, 1, provenance)


def test_delete_then_read_is_none_and_delete_is_idempotent(vault: VaultHandle) -> None:
    path = f"{vault.prefix}/opsgenie"
    vault.client.write(path, {"api_key": SECRET}, cas=0)
    vault.client.delete(path)
    assert vault.client.read(path) is None
    assert vault.client.read_version(path) is None
    vault.client.delete(path)
    assert vault.client.write(path, {"api_key": "again"}, cas=0) == 1


def test_soft_deleted_latest_version_reads_absent_and_accepts_cas_zero(vault: VaultHandle) -> None:
    path = f"{vault.prefix}/deploy-key"
    vault.client.write(path, {"private_key": "old"}, cas=0)
    root = hvac.Client(url=vault.url, token=vault.token)
    root.secrets.kv.v2.delete_latest_version_of_secret(path=path, mount_point="secret")
    assert vault.client.read(path) is None
    assert vault.client.write(path, {"private_key": "new"}, cas=0) == 2
    assert vault.client.read(path) == {"private_key": "new"}


def test_list(vault: VaultHandle) -> None:
    assert vault.client.list(vault.prefix) == []
    vault.client.write(f"{vault.prefix}/a", {"k": "v"}, cas=0)
    vault.client.write(f"{vault.prefix}/sub/b", {"k": "v"}, cas=0)
    assert sorted(vault.client.list(vault.prefix)) == ["a", "sub/"]


def test_approle_login_reads_and_writes_its_prefix(vault: VaultHandle) -> None:
    role_id, secret_id = create_approle(vault, vault.prefix)
    client = vault_client.VaultClient(vault.url, role_id=role_id, secret_id=secret_id)
    client.write(f"{vault.prefix}/x", {"k": SECRET}, cas=0)
    assert client.read(f"{vault.prefix}/x") == {"k": SECRET}


def test_approle_with_a_wrong_secret_id_is_an_auth_error(vault: VaultHandle) -> None:
    role_id, _ = create_approle(vault, vault.prefix)
    client = vault_client.VaultClient(vault.url, role_id=role_id, secret_id=SECRET)
    with pytest.raises(errors.AuthError, match=r"vault\.auth\.approle") as caught:
        client.read(f"{vault.prefix}/x")
    _assert_no_leak(caught.value)


def test_permission_denied_names_path_and_capability(vault: VaultHandle) -> None:
    role_id, secret_id = create_approle(vault, f"{vault.prefix}/allowed")
    client = vault_client.VaultClient(vault.url, role_id=role_id, secret_id=secret_id)
    path = f"{vault.prefix}/kuvaq/deploy-key"
    with pytest.raises(errors.AuthError) as caught:
        client.write(path, {"private_key": SECRET}, cas=0)
    assert f"needs create/update on secret/data/{path}" in str(caught.value)
    _assert_no_leak(caught.value)
    with pytest.raises(errors.AuthError, match=f"needs read on secret/data/{path}"):
        client.read(path)


def test_wrong_token_names_vault_auth(openbao: object, vault: VaultHandle) -> None:
    client = vault_client.VaultClient(vault.url, token=SECRET)
    with pytest.raises(errors.AuthError, match=r"Vault rejected the token \(vault\.auth\.token\)") as caught:
        client.read(f"{vault.prefix}/x")
    _assert_no_leak(caught.value)


def test_unreachable_url_is_retryable_and_names_the_url(vault: VaultHandle) -> None:
    url = f"http://127.0.0.1:{processes.free_port()}"
    client = vault_client.VaultClient(url, token=SECRET)
    with pytest.raises(errors.RetryableError, match=url) as caught:
        client.write(f"{vault.prefix}/x", {"k": SECRET}, cas=0)
    _assert_no_leak(caught.value)


def test_sealed_server_is_retryable(tmp_path: Path) -> None:
    server = processes.start_openbao(tmp_path, root_token=SECRET)
    try:
        hvac.Client(url=server.url, token=SECRET).sys.seal()
        client = vault_client.VaultClient(server.url, token=SECRET)
        with pytest.raises(errors.RetryableError, match="sealed") as caught:
            client.read("anything")
        _assert_no_leak(caught.value)
    finally:
        server.stop()
    assert not server.alive()


def test_detached_server_outlives_its_parent_and_stops_by_pid(tmp_path: Path) -> None:
    starter = (
        "import sys, pathlib; from sandbox import processes; "
        "s = processes.start_openbao(pathlib.Path(sys.argv[1]), detach=True); print(s.pid, s.url)"
    )
    # communicate() only returns once every holder of the stdout pipe has closed
    # it: a detached server that kept the pipe would hang this call.
    parent = subprocess.run(
        [sys.executable, "-c", starter, str(tmp_path)], capture_output=True, text=True, timeout=30, check=True
    )
    pid_text, url = parent.stdout.split()
    pid = int(pid_text)
    try:
        with urllib.request.urlopen(f"{url}/v1/sys/health", timeout=5) as response:
            assert response.status == 200
        assert not processes.stop_pid(pid, expect="no-such-program")
    finally:
        assert processes.stop_pid(pid, expect="bao")
    assert not processes.stop_pid(pid)


def test_neither_token_nor_approle_is_a_config_error() -> None:
    with pytest.raises(errors.ConfigError, match=r"vault\.auth"):
        vault_client.VaultClient("http://127.0.0.1:1", role_id="only-half")


def test_for_mount_uses_the_other_mount(vault: VaultHandle) -> None:
    root = hvac.Client(url=vault.url, token=vault.token)
    mount = vault.prefix.replace("/", "-")
    root.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    other = vault.client.for_mount(mount)
    other.write("x", {"k": "v"}, cas=0)
    assert other.read("x") == {"k": "v"}
    assert vault.client.read("x") is None


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("secret/bootstrap/kuvaq/slack#token", ("secret", "bootstrap/kuvaq/slack", "token")),
        ("vault:kv/x#k", ("kv", "x", "k")),
    ],
)
def test_split_reference(ref: str, expected: tuple[str, str, str]) -> None:
    assert vault_client.split_reference(ref) == expected


@pytest.mark.parametrize(
    "ref",
    ["secret/a/b", "secret/a#", "secret#k", "/secret/a#k", "secret//a#k", "secret/a#k#l", "secret/data/a#k"],
)
def test_split_reference_rejects_malformed(ref: str) -> None:
    with pytest.raises(ValueError, match="Vault reference"):
        vault_client.split_reference(ref)


def _assert_no_leak(exc: BaseException) -> None:
    chain: BaseException | None = exc
    while chain is not None:
        assert SECRET not in str(chain)
        assert SECRET not in repr(chain)
        chain = chain.__cause__ or chain.__context__
