"""Deploy-key values shared by the GitHub adapter and the deploy-key step, without PyGithub.

Kept apart from ``bootstrap.clients.github`` so that importing the steps (which
``bootstrap status`` does, for their ids) does not import the GitHub SDK.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from bootstrap.errors import PermanentError


def fingerprint(public_openssh: str) -> str:
    """GitHub's (and ``ssh-keygen -lf``'s) SHA256 fingerprint of an OpenSSH public key."""
    blob = base64.b64decode(public_openssh.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class DeployKey:
    id: int
    title: str
    key: str
    read_only: bool
    fingerprint: str


class KeyInUse(PermanentError):
    """GitHub refuses a deploy key already on some repository or user; ``existing`` if on this repo."""

    def __init__(self, message: str, existing: DeployKey | None) -> None:
        super().__init__(message)
        self.existing = existing


def generate() -> tuple[str, str]:
    """A new ed25519 key pair: (private key in OpenSSH PEM, public key ``ssh-ed25519 AAAA…``)."""
    # Imported here: cryptography's SSH support pulls in bcrypt, and `bootstrap status` imports the steps.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode()
