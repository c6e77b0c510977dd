"""A stand-in for Kubernetes' ServiceAccount token controller.

What a real control plane does, and what cluster registration relies on
(https://kubernetes.io/docs/concepts/configuration/secret/#serviceaccount-token-secrets,
https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/#manually-create-an-api-token-for-a-serviceaccount,
https://kubernetes.io/docs/reference/access-authn-authz/service-accounts-admin/#token-controller):

* a Secret of type ``kubernetes.io/service-account-token`` whose annotation
  ``kubernetes.io/service-account.name`` names a ServiceAccount of its namespace is
  filled by the token controller, *after* it was created (asynchronously), with
  ``data.token`` (a long-lived token that does not expire), ``data.ca.crt`` (the
  cluster's CA bundle) and ``data.namespace``; the controller also sets the
  annotation ``kubernetes.io/service-account.uid``;
* deleting the ServiceAccount deletes its token Secrets (service-accounts-admin,
  "Token controller": "watches ServiceAccount deletion and deletes all corresponding
  ServiceAccount token Secrets").

**Unverified**: what the controller does with a token Secret naming a ServiceAccount
that does not exist yet; here it stays unfilled until the ServiceAccount appears (the
registration step creates the ServiceAccount first and waits, so either behaviour ends
the same way). The token is random, JWT-shaped but unsigned: nothing here verifies it.
"""

from __future__ import annotations

import base64
import json
import secrets
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.kube import Key, KubeEmulator

TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME = "kubernetes.io/service-account.name"
SA_UID = "kubernetes.io/service-account.uid"


def ca_bundle(seed: str) -> str:
    """A PEM-shaped CA bundle, stable per emulator (not a parseable certificate: nothing here uses TLS)."""
    body = base64.b64encode(f"sandbox-kube-ca:{seed}".encode() * 3).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def wants_token(obj: dict[str, Any]) -> bool:
    """A token Secret the controller has not filled yet."""
    return (
        obj.get("kind") == "Secret"
        and obj.get("type") == TOKEN_TYPE
        and bool(((obj.get("metadata") or {}).get("annotations") or {}).get(SA_NAME))
        and not (obj.get("data") or {}).get("token")
    )


def fill(emu: KubeEmulator, key: Key, ca: str) -> None:
    """One reconcile of a token Secret: issue the token once its ServiceAccount exists."""
    with emu.lock:
        secret = emu.stored(key)
        if secret is None or not wants_token(secret):
            return
        namespace = key[2]
        sa_name = secret["metadata"]["annotations"][SA_NAME]
        account = emu.stored(("", "serviceaccounts", namespace, sa_name))
        if account is None:
            return  # unverified (module docstring): stays unfilled; the ServiceAccount's creation retries
        new = json.loads(json.dumps(secret))
        new["metadata"]["annotations"][SA_UID] = account["metadata"]["uid"]
        new["data"] = {
            **(secret.get("data") or {}),
            "token": _b64(_token(namespace, sa_name)),
            "ca.crt": _b64(ca),
            "namespace": _b64(namespace),
        }
        emu.commit_stored(key, new)


def on_commit(emu: KubeEmulator, key: Key, obj: dict[str, Any], ca: str) -> None:
    """Schedule what the controller does about a stored object (callers hold the lock)."""
    if wants_token(obj):
        emu.schedule(partial(fill, emu, key, ca), emu.ready_delay)
    elif obj.get("kind") == "ServiceAccount":
        # A token Secret created before its ServiceAccount is filled once the account exists.
        for k in emu.stored_keys():
            other = emu.stored(k)
            if k[:3] == ("", "secrets", key[2]) and other is not None and wants_token(other):
                emu.schedule(partial(fill, emu, k, ca), emu.ready_delay)


def on_delete(emu: KubeEmulator, key: Key, obj: dict[str, Any]) -> None:
    """A deleted ServiceAccount takes its token Secrets with it (callers hold the lock)."""
    if obj.get("kind") != "ServiceAccount":
        return
    name = obj["metadata"]["name"]
    for k in emu.stored_keys():
        other = emu.stored(k) or {}
        annotations = (other.get("metadata") or {}).get("annotations") or {}
        if (
            k[:3] == ("", "secrets", key[2])
            and other.get("type") == TOKEN_TYPE
            and annotations.get(SA_NAME) == name
        ):
            emu.delete_stored(k)


def _token(namespace: str, account: str) -> str:
    header = {"alg": "RS256", "kid": "sandbox"}
    claims = {
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": namespace,
        "kubernetes.io/serviceaccount/service-account.name": account,
        "sub": f"system:serviceaccount:{namespace}:{account}",
        "jti": secrets.token_hex(16),
    }
    parts = [json.dumps(header).encode(), json.dumps(claims).encode(), secrets.token_bytes(64)]
    return ".".join(base64.urlsafe_b64encode(p).decode().rstrip("=") for p in parts)


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()
