"""The Jira Service Management Operations adapter (the successor of OpsGenie).

Two APIs, two credentials: the ops REST API
(``https://api.atlassian.com/jsm/ops/api/{cloudId}/v1/…``) with basic auth
(Atlassian account email + API token) manages integrations, heartbeats and
teams; alerts enter through the ingestion API
(``…/jsm/ops/integration/v2/alerts``) with an integration's own key
(``GenieKey``). Sources for each behaviour: the fidelity table in sandbox/jsm.py.

What it guarantees:

- the cloudId is resolved from the site (``<site>.atlassian.net/_edge/tenant_info``),
  once per client; nobody types it;
- bounded retries: 429 after its ``Retry-After`` (if short), 5xx and connection
  errors with exponential backoff; creating something is never blindly repeated
  after a 5xx or a lost connection (it may have happened: the step re-plans and
  finds it by name instead);
- lists follow ``links.next`` (offset/size pages) to the end;
- errors name what to fix: 401 → ``alerting.jsm.email``/``api_token``; 403 →
  the scope/role; an unknown team → ``alerting.team`` and the teams it saw;
- the API token and integration keys never appear in messages or reprs.
"""

from __future__ import annotations

import random
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

import requests

from bootstrap import errors
from bootstrap.clients import budget
from bootstrap.clients.alerting import Heartbeat
from bootstrap.clients.opsgenie import CreatedIntegration, Integration
from bootstrap.clients.opsgenie import _retry_after as _retry_after  # one parser of Retry-After

API_URL = "https://api.atlassian.com"
PAGE_SIZE = 100
_TRANSIENT = frozenset({429, 500, 502, 503, 504})
_SCOPE = {"GET": "read:ops-config:jira-service-management"}
_WRITE_SCOPE = "write:ops-config:jira-service-management"


def site_url(site: str) -> str:
    """``kuvaq`` → ``https://kuvaq.atlassian.net``; a host or URL is taken as given."""
    if site.startswith(("http://", "https://")):
        return site.rstrip("/")
    return f"https://{site if '.' in site else site + '.atlassian.net'}"


def ingestion_url(api_url: str | None = None) -> str:
    """What goes into Alertmanager's ``opsgenie_configs[].api_url`` (it appends ``v2/alerts``)."""
    return (api_url or API_URL).rstrip("/") + "/jsm/ops/integration/"


@budget.metered("jsm")
class JsmClient:
    """Configuration through the ops REST API; test alerts through an integration's key."""

    provider = "jsm"

    def __init__(
        self,
        site: str,
        email: str,
        api_token: str,
        *,
        api_url: str | None = None,
        retries: int = 3,
        backoff: float = 0.5,
        max_retry_after: float = 30.0,
        timeout: float = 30.0,
    ) -> None:
        self._site = site_url(site)
        self._api = (api_url or API_URL).rstrip("/")
        self._email = email
        self._token = api_token
        self._retries = retries
        self._backoff = backoff
        self._max_retry_after = max_retry_after
        self._timeout = timeout
        self._http = requests.Session()
        self._cloud_id: str | None = None
        self._team_ids: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"JsmClient(site={self._site!r})"

    # -- site and teams ------------------------------------------------------------
    def cloud_id(self) -> str:
        if self._cloud_id is None:
            data = self._call("GET", self._site + "/_edge/tenant_info", auth=False, what="tenant_info")
            cloud_id = data.get("cloudId") if isinstance(data, dict) else None
            if not isinstance(cloud_id, str) or not cloud_id:
                raise errors.PermanentError(
                    f"{self._site}/_edge/tenant_info did not name a cloudId: check alerting.jsm.site "
                    "(the part before .atlassian.net)"
                )
            self._cloud_id = cloud_id
        return self._cloud_id

    def team_id(self, team: str) -> str:
        """The id of the JSM team called ``team``; a clear error naming alerting.team if there is none."""
        if team not in self._team_ids:
            seen = {str(t.get("teamName")): str(t.get("teamId")) for t in self._pages("/v1/teams")}
            if team not in seen:
                known = ", ".join(sorted(seen)[:20]) or "none"
                raise errors.PermanentError(
                    f"JSM has no team named {team!r}: fix alerting.team or create the team in Jira Service "
                    f"Management (Teams → Create team, then enable Operations for it); teams seen: {known}"
                )
            self._team_ids.update(seen)
        return self._team_ids[team]

    # -- integrations --------------------------------------------------------------
    def find_integrations(self, name: str, type: str, team: str) -> list[Integration]:
        team_id = self.team_id(team)
        query = {"type": type, "teamId": team_id, "name": name}
        return [
            _integration(i)
            for i in self._pages("/v1/integrations", query)
            if i.get("name") == name and i.get("type") == type and i.get("teamId") == team_id
        ]

    def get_integration(self, integration_id: str) -> Integration | None:
        data = self._rest("GET", f"/v1/integrations/{integration_id}", missing_ok=True)
        return _integration(data) if data else None

    def create_integration(self, name: str, type: str, team: str) -> CreatedIntegration:
        body = {"name": name, "type": type, "teamId": self.team_id(team)}
        data = self._rest("POST", "/v1/integrations", body=body, idempotent=False)
        if not data.get("apiKey"):
            raise errors.PermanentError(
                f"JSM created integration {data.get('id')} ({name}) but returned no key; delete it in "
                "Jira Service Management and run again"
            )
        return CreatedIntegration(
            id=str(data["id"]),
            name=str(data["name"]),
            type=str(data["type"]),
            enabled=bool(data.get("enabled")),
            api_key=str(data["apiKey"]),
        )

    def enable_integration(self, integration_id: str) -> None:
        """Enable, then read back: a PATCH the service ignored must not pass for success."""
        self._rest("PATCH", f"/v1/integrations/{integration_id}", body={"enabled": True})
        current = self.get_integration(integration_id)
        if current is None or not current.enabled:
            raise errors.PermanentError(
                f"JSM did not enable integration {integration_id}: enable it in Jira Service Management "
                "(Operations → Integrations) and run again"
            )

    def delete_integration(self, integration_id: str) -> None:
        self._rest("DELETE", f"/v1/integrations/{integration_id}", missing_ok=True)

    # -- heartbeats ----------------------------------------------------------------
    def find_heartbeat(self, name: str, team: str) -> Heartbeat | None:
        path = f"/v1/teams/{self.team_id(team)}/heartbeats"
        found = next((h for h in self._pages(path, {"name": name}) if h.get("name") == name), None)
        return _heartbeat(found) if found else None

    def create_heartbeat(self, name: str, team: str, interval_minutes: int) -> Heartbeat:
        body = {
            "name": name,
            "description": "Alertmanager's Watchdog pings this; silence means alerting is broken.",
            "interval": interval_minutes,
            "intervalUnit": "minutes",
            "enabled": True,
            "alertMessage": f"{name}: Alertmanager stopped sending its Watchdog heartbeat",
            "alertTags": ["gitops-bootstrap", "dead-mans-switch"],
            "alertPriority": "P1",
        }
        path = f"/v1/teams/{self.team_id(team)}/heartbeats"
        return _heartbeat(self._rest("POST", path, body=body, idempotent=False))

    def delete_heartbeat(self, name: str, team: str) -> None:
        path = f"/v1/teams/{self.team_id(team)}/heartbeats"
        self._rest("DELETE", path, params={"name": name}, missing_ok=True)

    def heartbeat_url(self, name: str, team: str) -> str:
        query = urllib.parse.urlencode({"name": name})
        return f"{self._base()}/v1/teams/{self.team_id(team)}/heartbeats/ping?{query}"

    def heartbeat_webhook(self, name: str, team: str, integration_key: str) -> dict[str, Any]:
        """The ping is a REST API call: it carries the account's email and API token (basic auth)."""
        return {
            "url": self.heartbeat_url(name, team),
            "send_resolved": False,
            "http_config": {"basic_auth": {"username": self._email, "password": self._token}},
        }

    def alertmanager_url(self) -> str:
        return ingestion_url(self._api)

    # -- alerts (ingestion API, integration key) ------------------------------------
    def send_test_alert(self, integration_key: str, alias: str, message: str) -> None:
        """Post an alert as Alertmanager does; a 202 means JSM accepted it for the integration."""
        body = {"message": message, "alias": alias, "source": "gitops-bootstrap", "priority": "P5"}
        self._call("POST", self._ingest("/v2/alerts"), body=body, key=integration_key, what="create alert")

    def close_test_alert(self, integration_key: str, alias: str) -> None:
        body = {"source": "gitops-bootstrap", "note": "test alert closed"}
        url = self._ingest(f"/v2/alerts/{urllib.parse.quote(alias, safe='')}/close")
        self._call(
            "POST",
            url,
            params={"identifierType": "alias"},
            body=body,
            key=integration_key,
            what="close alert",
        )

    # -- plumbing --------------------------------------------------------------------
    def _base(self) -> str:
        return f"{self._api}/jsm/ops/api/{self.cloud_id()}"

    def _ingest(self, path: str) -> str:
        return self._api + "/jsm/ops/integration" + path

    def _rest(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        missing_ok: bool = False,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        data = self._call(
            method,
            self._base() + path,
            params=params,
            body=body,
            missing_ok=missing_ok,
            idempotent=idempotent,
            what=path,
        )
        return data if isinstance(data, dict) else {}

    def _pages(self, path: str, params: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a list, following ``links.next`` (a path relative to the REST base)."""
        url: str | None = self._base() + path
        query: Mapping[str, str] | None = {**(params or {}), "offset": "0", "size": str(PAGE_SIZE)}
        seen = 0
        while url is not None:
            page = self._call("GET", url, params=query, what=path)
            values = page.get("values") if isinstance(page, dict) else None
            yield from (v for v in values or [] if isinstance(v, dict))
            seen += 1
            nxt = ((page.get("links") or {}).get("next") if isinstance(page, dict) else None) or None
            if not nxt or not values or seen > 1000:
                return
            url = nxt if nxt.startswith("http") else self._base() + "/" + nxt.lstrip("/")
            query = None

    def _call(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        key: str | None = None,
        auth: bool = True,
        missing_ok: bool = False,
        idempotent: bool = True,
    ) -> Any:
        label = f"JSM {method} {what}"
        headers = {"Accept": "application/json"}
        if key is not None:
            headers["Authorization"] = f"GenieKey {key}"
        credentials = (self._email, self._token) if auth and key is None else None
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            try:
                resp = self._http.request(
                    method,
                    url,
                    params=params,
                    json=body,
                    headers=headers,
                    auth=credentials,
                    timeout=self._timeout,
                )
            except requests.RequestException as exc:
                if last or not idempotent:
                    raise errors.RetryableError(f"{label}: cannot reach JSM ({type(exc).__name__})") from None
                self._pause(self._backoff * 2**attempt)
                continue
            if resp.status_code in _TRANSIENT:
                delay = _retry_after(resp.headers)
                again = resp.status_code == 429 or idempotent
                if last or not again or (delay is not None and delay > self._max_retry_after):
                    raise _error(label, resp, method, key is not None)
                self._pause(delay if delay is not None else self._backoff * 2**attempt)
                continue
            if resp.status_code == 404 and missing_ok:
                return {}
            if resp.status_code >= 400:
                raise _error(label, resp, method, key is not None)
            try:
                return resp.json() if resp.content else {}
            except ValueError:
                return {}
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _pause(self, seconds: float) -> None:
        time.sleep(seconds + random.uniform(0, self._backoff))


def _error(label: str, resp: requests.Response, method: str, with_key: bool) -> errors.StepError:
    status = resp.status_code
    detail = _detail(resp)
    if status == 429:
        return errors.RetryableError(f"{label}: rate-limited by JSM", delay=_retry_after(resp.headers))
    if status >= 500:
        return errors.RetryableError(f"{label}: JSM server error {status}")
    if status == 401 and with_key:
        return errors.AuthError(
            f"{label}: JSM refused the integration key ({detail}); run `bootstrap run` again to replace the "
            "integration, or check it was not deleted by hand"
        )
    if status == 401:
        return errors.AuthError(
            f"{label}: JSM rejected alerting.jsm.email / alerting.jsm.api_token ({detail}); create an API "
            "token at https://id.atlassian.com/manage-profile/security/api-tokens for that "
            "account and update the secret alerting.jsm.api_token points to"
        )
    if status == 403:
        if with_key:
            return errors.AuthError(
                f"{label}: the integration is disabled ({detail}); enable it and run again"
            )
        scope = _SCOPE.get(method, _WRITE_SCOPE)
        return errors.AuthError(
            f"{label}: alerting.jsm.email may not do this ({detail}); the account needs the Jira Service "
            f"Management admin role (or an OAuth token with {scope}) and must be an admin of alerting.team"
        )
    if status == 404:
        return errors.PermanentError(
            f"{label}: not found ({detail}); check alerting.jsm.site is the site that has JSM Operations"
        )
    return errors.PermanentError(f"{label} failed with {status}: {detail}")


def _detail(resp: requests.Response) -> str:
    """The vendor's message, whatever shape the error body has (its format is unverified)."""
    try:
        body = resp.json()
    except ValueError:
        return resp.reason or "no details"
    if not isinstance(body, dict):
        return resp.reason or "no details"
    parts = [str(m) for m in body.get("errorMessages") or [] if m]
    if body.get("message"):
        parts.append(str(body["message"]))
    problems = body.get("errors")
    if isinstance(problems, dict):
        parts += [f"{k}: {v}" for k, v in problems.items()]
    elif isinstance(problems, list):
        parts += [str(p.get("title") or p) if isinstance(p, dict) else str(p) for p in problems]
    return "; ".join(parts)[:500] or resp.reason or "no details"


def _integration(raw: Mapping[str, Any]) -> Integration:
    return Integration(
        id=str(raw["id"]),
        name=str(raw.get("name")),
        type=str(raw.get("type")),
        enabled=bool(raw.get("enabled")),
        team_id=raw.get("teamId"),
    )


def _heartbeat(raw: Mapping[str, Any]) -> Heartbeat:
    unit = str(raw.get("intervalUnit") or "minutes").lower()
    factor = {"minutes": 1, "hours": 60, "days": 1440}.get(unit, 1)
    status = str(raw.get("status") or "")
    return Heartbeat(
        name=str(raw.get("name")),
        enabled=bool(raw.get("enabled")),
        interval_minutes=int(raw.get("interval") or 0) * factor,
        expired=status.lower() in ("unresponsive", "expired"),
        pinged=status.lower() == "responsive",
    )
