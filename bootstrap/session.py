"""One customer's run-time wiring: config, secrets, services, store, context.

Kept out of the CLI so that the CLI stays a thin parser and so that tests and
the fleet runner build exactly what ``bootstrap run`` builds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from bootstrap import checkpoint, config
from bootstrap import secrets as secrets_mod
from bootstrap.config import CustomerConfig
from bootstrap.secrets import RedactingFilter, Redactor, Secrets
from bootstrap.services import Services
from bootstrap.step import Context


@dataclass
class Session:
    path: Path
    config: CustomerConfig
    redactor: Redactor
    secrets: Secrets
    services: Services
    store: checkpoint.Store
    context: Context


def open_session(
    path: Path,
    state_dir: Path | None = None,
    force: bool = False,
    redactor: Redactor | None = None,
    environ: dict[str, str] | None = None,
    state_url: str | None = None,
) -> Session:
    cfg = config.load(path)
    redactor = redactor or secrets_mod.REDACTOR
    install_log_redaction(redactor)
    base = path.resolve().parent
    secrets = Secrets(redactor, base, environ=environ)
    services = Services(cfg, secrets, base)
    secrets.use_vault(lambda: services.vault)
    directory = checkpoint.state_dir_for(path, state_dir)
    store = checkpoint.store_for(state_url, directory, cfg.customer.name)
    ctx = Context(config=cfg, secrets=secrets, services=services, workdir=directory, force=force)
    return Session(path, cfg, redactor, secrets, services, store, ctx)


def install_log_redaction(redactor: Redactor) -> None:
    """Mask secrets in every log record, whichever library emits it."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(redactor))

