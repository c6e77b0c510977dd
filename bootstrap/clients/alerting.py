"""What the alertmanager-opsgenie step needs from an alerting provider (OpsGenie or JSM Ops).

One small protocol, so the step chooses an adapter by ``alerting.provider``
and otherwise runs the same code for both: find-or-create the integration,
keep the dead-man's-switch heartbeat, and describe how Alertmanager reaches
each of them. The adapters (``opsgenie.OpsGenieClient``, ``jsm.JsmClient``)
implement it; the types they exchange live in ``opsgenie`` (the older one)
and here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bootstrap.clients.opsgenie import CreatedIntegration, Integration


@dataclass(frozen=True)
class Heartbeat:
    """A heartbeat as the provider reports it.

    ``expired`` is True only when the provider says the pings stopped (a silent
    Alertmanager); a heartbeat that was never pinged yet is not expired.
    """

    name: str
    enabled: bool
    interval_minutes: int
    expired: bool
    pinged: bool


class AlertingProvider(Protocol):
    """The provider-specific calls of the alertmanager-opsgenie step."""

    provider: str
    """``opsgenie`` or ``jsm``: names Vault paths and messages."""

    def find_integrations(self, name: str, type: str, team: str) -> list[Integration]: ...

    def create_integration(self, name: str, type: str, team: str) -> CreatedIntegration: ...

    def enable_integration(self, integration_id: str) -> None: ...

    def delete_integration(self, integration_id: str) -> None: ...

    def find_heartbeat(self, name: str, team: str) -> Heartbeat | None: ...

    def create_heartbeat(self, name: str, team: str, interval_minutes: int) -> Heartbeat: ...

    def delete_heartbeat(self, name: str, team: str) -> None:
        """Delete; a heartbeat that is already gone is fine."""

    def heartbeat_webhook(self, name: str, team: str, integration_key: str) -> dict[str, Any]:
        """An Alertmanager ``webhook_configs`` entry that pings the heartbeat ``name``."""

    def alertmanager_url(self) -> str:
        """The ``opsgenie_configs[].api_url`` Alertmanager posts alerts to (it appends ``v2/alerts``)."""
