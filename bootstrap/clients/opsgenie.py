"""The OpsGenie / JSM adapter the alertmanager-opsgenie step uses.

The integration API is plain HTTP (``opsgenie-sdk`` has none); alerts go
through ``opsgenie-sdk``. What it guarantees:

- bounded retries everywhere: a 429 is retried after its ``Retry-After`` (if
  short), 5xx and connection errors with exponential backoff, but creating an
  integration is never blindly repeated after a 5xx (it may have happened; the
  step re-plans and finds it by name + type + team instead);
- the SDK's own retry (5 attempts, up to 30 s apart, by default) is cut down to the same budget;
- HTTP statuses become the tool's errors naming the setting to fix
  (``alerting.api_key`` and the access right it lacks, ``alerting.team``);
- keys never appear in messages or reprs (``CreatedIntegration.api_key`` is
  excluded from its repr).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import opsgenie_sdk
import requests
import tenacity

from bootstrap import errors
from bootstrap.clients import budget
from bootstrap.clients.alerting import Heartbeat

Provider = Literal["opsgenie", "jsm"]
Region = Literal["us", "eu"]

_OPSGENIE_HOSTS = {"us": "https://api.opsgenie.com", "eu": "https://api.eu.opsgenie.com"}
_JSM_INGESTION = "https://api.atlassian.com/jsm/ops/integration"
_RIGHT_FOR_METHOD = {
    "GET": "Read",
    "POST": "Create and Update",
    "PUT": "Create and Update",
    "DELETE": "Delete",
}
_TRANSIENT = frozenset({429, 500, 502, 503, 504})


def api_url_for(provider: Provider, region: Region) -> str:
    """The REST base URL: OpsGenie's regional API, or JSM's alert ingestion (alerts only)."""
    if provider == "jsm":
        return _JSM_INGESTION
    try:
        return _OPSGENIE_HOSTS[region]
    except KeyError:
        raise errors.ConfigError(f"alerting.region: unknown region {region!r}; use us or eu") from None


def alertmanager_api_url(provider: Provider, region: Region) -> str:
    """What goes into Alertmanager's ``opsgenie_configs[].api_url`` (it appends ``v2/alerts``)."""
    return api_url_for(provider, region) + "/"


@dataclass(frozen=True)
class Integration:
    id: str
    name: str
    type: str
    enabled: bool
    team_id: str | None


@dataclass(frozen=True)
class CreatedIntegration:
    """A new integration and its key, which OpsGenie returns this once only: store it at once."""

    id: str
    name: str
    type: str
    enabled: bool
    api_key: str = field(repr=False)


@budget.metered("opsgenie")
class OpsGenieClient:
    """Integration management with an API key; alerts with an integration key."""

    provider = "opsgenie"

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        retries: int = 3,
        backoff: float = 0.5,
        max_retry_after: float = 30.0,
        timeout: float = 30.0,
    ) -> None:
        """``backoff`` is the base of the exponential wait between retries; tests set it to 0."""
        self._url = str(api_url).rstrip("/")
        self._api_key = api_key
        self._retries = retries
        self._backoff = backoff
        self._max_retry_after = max_retry_after
        self._timeout = timeout
        self._http = requests.Session()
        self._http.headers["Authorization"] = f"GenieKey {api_key}"

    def __repr__(self) -> str:
        return f"OpsGenieClient(api_url={self._url!r})"

    # -- integrations (raw HTTP) -----------------------------------------------
    def find_integrations(self, name: str, type: str, team: str) -> list[Integration]:
        """Integrations of ``type`` owned by ``team`` called ``name`` (names are not unique)."""
        data = self._json("GET", "/v2/integrations", params={"type": type, "teamName": team}, team=team)
        return [
            _integration(i) for i in data.get("data", []) if i.get("name") == name and i.get("type") == type
        ]

    def get_integration(self, integration_id: str) -> Integration | None:
        data = self._json("GET", f"/v2/integrations/{integration_id}", missing_ok=True)
        return _integration(data["data"]) if data else None

    def create_integration(self, name: str, type: str, team: str) -> CreatedIntegration:
        body = {"name": name, "type": type, "ownerTeam": {"name": team}}
        data = self._json("POST", "/v2/integrations", body=body, team=team, idempotent=False)["data"]
        return CreatedIntegration(
            id=data["id"],
            name=data["name"],
            type=data["type"],
            enabled=bool(data.get("enabled")),
            api_key=data["apiKey"],
        )

    def enable_integration(self, integration_id: str) -> None:
        self._json("POST", f"/v2/integrations/{integration_id}/enable")

    def delete_integration(self, integration_id: str) -> None:
        """Delete; an integration that is already gone is fine."""
        self._json("DELETE", f"/v2/integrations/{integration_id}", missing_ok=True)

    # -- alerts (opsgenie-sdk) -------------------------------------------------
    def send_test_alert(self, integration_api_key: str, alias: str, message: str) -> str:
        """Create an alert with the integration's own key; returns the request id to poll."""
        payload = opsgenie_sdk.CreateAlertPayload(
            message=message, alias=alias, source="gitops-bootstrap", priority="P5", tags=["gitops-bootstrap"]
        )
        api = self._alerts(integration_api_key)
        response = self._sdk("create alert", lambda: api.create_alert(create_alert_payload=payload))
        return str(response.request_id)

    def alert_request_succeeded(self, request_id: str) -> bool:
        """Whether OpsGenie has processed the request successfully (False while still queued)."""
        api = self._alerts(self._api_key)
        response = self._sdk(
            "read request status", lambda: api.get_request_status(request_id=request_id), missing_ok=True
        )
        return response is not None and bool(response.data.is_success)

    def close_alert(self, integration_api_key: str, alias: str) -> None:
        """Close with the integration's key: API-management keys may not close alerts (REFERENCE §11)."""
        payload = opsgenie_sdk.CloseAlertPayload(source="gitops-bootstrap", note="test alert closed")
        api = self._alerts(integration_api_key)
        self._sdk(
            "close alert",
            lambda: api.close_alert(identifier=alias, identifier_type="alias", close_alert_payload=payload),
        )

    # -- alert ingestion (raw HTTP; JSM) ----------------------------------------
    def ingest_alert(self, alias: str, message: str) -> None:
        """Post an alert with this client's key, as Alertmanager does; any 2xx means accepted.

        For provider ``jsm`` the client's key is the integration's own key and
        its URL the ingestion endpoint, which serves no request-status API.
        """
        body = {"message": message, "alias": alias, "source": "gitops-bootstrap", "priority": "P5"}
        self._json("POST", "/v2/alerts", body=body)

    def ingest_close(self, alias: str) -> None:
        """Close the alert ``alias`` (as Alertmanager does on resolve); a 2xx means accepted."""
        body = {"source": "gitops-bootstrap", "note": "test alert closed"}
        self._json("POST", f"/v2/alerts/{alias}/close", params={"identifierType": "alias"}, body=body)

    # -- heartbeats (opsgenie-sdk HeartbeatApi; https://docs.opsgenie.com/docs/heartbeat-api) ---------
    def find_heartbeat(self, name: str, team: str) -> Heartbeat | None:
        api = self._heartbeats()
        found = self._sdk("read heartbeat", lambda: api.get_heartbeat(name=name), missing_ok=True)
        if found is None:
            return None
        data = found.data
        factor = {"minutes": 1, "hours": 60, "days": 1440}.get(str(data.interval_unit), 1)
        return Heartbeat(
            name=str(data.name),
            enabled=bool(data.enabled),
            interval_minutes=int(data.interval or 0) * factor,
            expired=bool(data.expired),
            pinged=data.last_ping_time is not None,
        )

    def create_heartbeat(self, name: str, team: str, interval_minutes: int) -> Heartbeat:
        payload = opsgenie_sdk.CreateHeartbeatPayload(
            name=name,
            description="Alertmanager's Watchdog pings this; silence means alerting is broken.",
            interval=interval_minutes,
            interval_unit="minutes",
            enabled=True,
            owner_team=opsgenie_sdk.CreateHeartbeatPayloadAllOfOwnerTeam(name=team),
            alert_message=f"{name}: Alertmanager stopped sending its Watchdog heartbeat",
            alert_tags=["gitops-bootstrap", "dead-mans-switch"],
            alert_priority="P1",
        )
        api = self._heartbeats()
        created = self._sdk(
            "create heartbeat", lambda: api.create_heartbeat(create_heartbeat_payload=payload)
        ).data
        return Heartbeat(str(created.name), bool(created.enabled), interval_minutes, False, False)

    def delete_heartbeat(self, name: str, team: str) -> None:
        api = self._heartbeats()
        self._sdk("delete heartbeat", lambda: api.delete_heartbeat(name=name), missing_ok=True)

    def heartbeat_webhook(self, name: str, team: str, integration_key: str) -> dict[str, Any]:
        """Ping with the integration's own key, which the Heartbeat API allows for pings."""
        return {
            "url": f"{self._url}/v2/heartbeats/{name}/ping",
            "send_resolved": False,
            "http_config": {"authorization": {"type": "GenieKey", "credentials": integration_key}},
        }

    def alertmanager_url(self) -> str:
        return self._url + "/"

    def _heartbeats(self) -> Any:
        return opsgenie_sdk.HeartbeatApi(
            api_client=opsgenie_sdk.ApiClient(configuration=self._conf(self._api_key))
        )

    # -- plumbing: raw HTTP ----------------------------------------------------
    def _json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        team: str | None = None,
        missing_ok: bool = False,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        what = f"OpsGenie {method} {path}"
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            try:
                resp = self._http.request(
                    method, self._url + path, params=params, json=body, timeout=self._timeout
                )
            except requests.RequestException as exc:
                if last or not idempotent:
                    raise errors.RetryableError(
                        f"{what}: cannot reach OpsGenie ({type(exc).__name__})"
                    ) from None
                self._sleep(self._backoff * 2**attempt)
                continue
            if resp.status_code in _TRANSIENT:
                delay = _retry_after(resp.headers)
                retryable_now = resp.status_code == 429 or idempotent
                if last or not retryable_now or (delay is not None and delay > self._max_retry_after):
                    raise self._error(what, resp, method, team) from None
                self._sleep(delay if delay is not None else self._backoff * 2**attempt)
                continue
            if resp.status_code == 404 and missing_ok:
                return {}
            if resp.status_code >= 400:
                raise self._error(what, resp, method, team) from None
            data: dict[str, Any] = resp.json()
            return data
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds + random.uniform(0, self._backoff))

    def _error(self, what: str, resp: requests.Response, method: str, team: str | None) -> errors.StepError:
        status = resp.status_code
        try:
            body = resp.json()
        except ValueError:
            body = {}
        message = str(body.get("message") or resp.reason)
        problems: dict[str, str] = body.get("errors") or {}
        if status == 429:
            delay = _retry_after(resp.headers)
            return errors.RetryableError(f"{what}: rate-limited by OpsGenie", delay=delay)
        if status >= 500:
            return errors.RetryableError(f"{what}: OpsGenie server error {status}")
        if status == 401:
            return errors.AuthError(
                f"{what}: OpsGenie rejected alerting.api_key ({message}); create an API key under "
                "Settings → API key management and update the secret alerting.api_key points to."
            )
        if status == 403:
            right = _RIGHT_FOR_METHOD.get(method, "Configuration access")
            return errors.AuthError(
                f"{what}: alerting.api_key may not do this ({message}); it needs the access rights "
                f"'Configuration access' and '{right}' (Settings → API key management), and must not "
                "be an integration's key or a key restricted to another team."
            )
        if status == 404 and team is not None:
            return errors.PermanentError(
                f"{what}: OpsGenie has no team named {team!r}: fix alerting.team or create the team."
            )
        if status == 422 and "ownerTeam" in problems:
            return errors.PermanentError(
                f"{what}: OpsGenie does not accept team {team!r} ({problems['ownerTeam']}): "
                "fix alerting.team."
            )
        detail = "; ".join(f"{k}: {v}" for k, v in problems.items())
        return errors.PermanentError(
            f"{what} failed with {status}: {message}" + (f" ({detail})" if detail else "")
        )

    # -- plumbing: opsgenie-sdk ------------------------------------------------
    def _alerts(self, key: str) -> Any:
        return opsgenie_sdk.AlertApi(api_client=opsgenie_sdk.ApiClient(configuration=self._conf(key)))

    def _conf(self, key: str) -> Any:
        conf = opsgenie_sdk.Configuration()
        conf.host = self._url
        # Configuration() is a shallow copy of a process-wide default: mutating its api_key
        # dict would leak this key into every other client. Always assign a fresh dict.
        conf.api_key = {"Authorization": key}
        conf.retry_count = self._retries
        conf.back_off = self._backoff
        conf.retry_delay = self._backoff * 2**self._retries
        conf.retry_max_delay = self._max_retry_after * (self._retries + 1)
        return conf

    def _sdk(self, what: str, call: Callable[[], Any], missing_ok: bool = False) -> Any:
        """Run one SDK call, mapping its exceptions (never using their text: it dumps headers).

        With ``missing_ok`` a 404 returns None.
        """
        try:
            return call()
        except tenacity.RetryError as exc:
            cause = exc.last_attempt.exception()
            status = getattr(cause, "status", None)
            headers = getattr(cause, "headers", None) or {}
            if status == 429:
                raise errors.RetryableError(
                    f"OpsGenie {what}: rate-limited", delay=_retry_after(headers)
                ) from None
            reason = f"server error {status}" if status else f"cannot reach OpsGenie ({type(cause).__name__})"
            raise errors.RetryableError(f"OpsGenie {what}: {reason}") from None
        except opsgenie_sdk.exceptions.OpenApiException as exc:
            status = getattr(exc, "status", None)
            if status == 404 and missing_ok:
                return None
            if status in (401, 403):
                raise errors.AuthError(
                    f"OpsGenie {what}: the key was refused ({status}); alert actions need an "
                    "integration's key (keys from API key management cannot create or close alerts); "
                    "check that the integration is enabled and its key current "
                    "(for provider jsm: alerting.api_key)."
                ) from None
            if status is not None and (status == 429 or status >= 500 or status == 0):
                raise errors.RetryableError(f"OpsGenie {what}: HTTP {status}") from None
            raise errors.PermanentError(f"OpsGenie {what} failed with HTTP {status}") from None


def _retry_after(headers: Mapping[str, Any]) -> float | None:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
    return None


def _integration(raw: Mapping[str, Any]) -> Integration:
    team_id = raw.get("teamId") or (raw.get("ownerTeam") or {}).get("id")
    return Integration(
        id=raw["id"], name=raw["name"], type=raw["type"], enabled=bool(raw.get("enabled")), team_id=team_id
    )
