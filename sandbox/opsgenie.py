"""A stateful OpsGenie REST emulator (plus the JSM alert-ingestion path).

It exists so that the alertmanager-opsgenie step, the OpsGenie client,
``opsgenie-sdk`` and a real Alertmanager can all be pointed at one loopback
server that behaves like OpsGenie where the step's correctness depends on it:

- every answer is OpsGenie's envelope (``data``/``result``, ``took``,
  ``requestId``; errors ``message`` with 401/403/404/422, 422 with ``errors``);
- ``Authorization: GenieKey <key>``: seeded API keys (Settings → API key
  management) carry access rights (``configuration`` is what the integration
  API needs) and may be scoped to a team, but may not create, close or update
  alerts; integration keys may send and close alerts but get 403 on the
  integration API, and a disabled integration's key is refused;
- an integration's ``apiKey`` is returned by create only, names are not unique
  (a re-run must find its integration by name + type + team);
- alert actions are asynchronous as in OpsGenie: 202 + ``requestId``, the
  outcome is read from ``/v2/alerts/requests/{id}`` (optionally 404 for the
  first polls, as while OpsGenie's queue is busy); each alert records the
  GenieKey and integration it arrived with, so a test can assert that
  Alertmanager used the right key.
"""

from __future__ import annotations

import datetime
import itertools
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sandbox.httpemu import EmulatorServer, Fault, Request, Response

RIGHTS = ("configuration", "read", "create", "update", "delete")
INTEGRATION_TYPES = frozenset({"API", "Prometheus", "Email", "Webhook", "Grafana", "Marid", "Jira"})
PRIORITIES = frozenset({"P1", "P2", "P3", "P4", "P5"})
RESPONDER_TYPES = frozenset({"team", "user", "escalation", "schedule"})
JSM_PREFIX = "/jsm/ops/integration"
_MESSAGE_MAX = 130


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _envelope(status: int, **body: Any) -> Response:
    return Response(status, {**body, "took": 0.01, "requestId": str(uuid.uuid4())})


def _error(status: int, message: str, errors: dict[str, str] | None = None) -> Response:
    if errors:
        return _envelope(status, message=message, errors=errors)
    return _envelope(status, message=message)


def _unprocessable(errors: dict[str, str]) -> Response:
    return _error(422, "Request body is not processable. Please check the errors.", errors)


class Refused(Exception):
    """Ends a request with an OpsGenie error response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass
class ApiKey:
    key: str
    team: str | None
    rights: frozenset[str]


@dataclass
class Team:
    id: str
    name: str


@dataclass
class IntegrationRecord:
    id: str
    name: str
    type: str
    enabled: bool
    api_key: str
    team_id: str | None
    settings: dict[str, Any] = field(default_factory=dict)
    """Everything else the payload carried (allowWriteAccess, responders, …)."""

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "enabled": self.enabled,
            "teamId": self.team_id,
        }


@dataclass
class AlertRecord:
    """One alert as OpsGenie stored it, plus how it arrived (key, integration, path)."""

    id: str
    tiny_id: str
    alias: str
    message: str
    api_key: str
    integration_id: str | None
    integration_name: str
    path: str
    description: str = ""
    priority: str = "P3"
    responders: list[dict[str, Any]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)
    entity: str = ""
    source: str = ""
    note: str = ""
    user: str = ""
    actions: list[str] = field(default_factory=list)
    status: str = "open"
    count: int = 1
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    close_requests: list[dict[str, Any]] = field(default_factory=list)
    resolved_responders: list[dict[str, str]] = field(default_factory=list)
    """Responders as OpsGenie answers them: ``{type, id}`` (names resolved to ids)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tinyId": self.tiny_id,
            "alias": self.alias,
            "message": self.message,
            "status": self.status,
            "acknowledged": False,
            "isSeen": False,
            "tags": self.tags,
            "snoozed": False,
            "count": self.count,
            "lastOccurredAt": self.updated_at,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "source": self.source,
            "owner": "",
            "priority": self.priority,
            "responders": self.resolved_responders,
            "integration": {"id": self.integration_id or "", "name": self.integration_name, "type": "API"},
            "report": {},
            "actions": self.actions,
            "entity": self.entity,
            "description": self.description,
            "details": self.details,
        }


@dataclass
class RequestRecord:
    """The outcome of one asynchronous alert action."""

    action: str
    is_success: bool
    status: str
    alias: str
    alert_id: str
    integration_id: str
    processed_at: str = field(default_factory=_now)
    polls: int = 0


@dataclass(frozen=True)
class Principal:
    """Who a GenieKey stands for."""

    key: str
    rights: frozenset[str]
    team: str | None = None
    integration: IntegrationRecord | None = None


class OpsGenieEmulator(EmulatorServer):
    """OpsGenie on loopback; seed with ``add_api_key``/``add_team``/``add_integration``."""

    name = "opsgenie-emulator"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.api_keys: dict[str, ApiKey] = {}
        self.teams: dict[str, Team] = {}
        self.integrations: dict[str, IntegrationRecord] = {}
        self.alerts: list[AlertRecord] = []
        self.requests: dict[str, RequestRecord] = {}
        self.heartbeats: dict[str, int] = {}
        """Heartbeat name → number of pings received."""
        self.heartbeat_settings: dict[str, dict[str, Any]] = {}
        """Heartbeat name → what the Heartbeat API stored (interval, intervalUnit, enabled, ownerTeam, …)."""
        self.request_lag = 0
        """How many polls of a new request's status answer 404 before it is visible."""
        self._tiny = itertools.count(1)

        r = self.route
        r("GET", "/v2/integrations")(self._list_integrations)
        r("POST", "/v2/integrations")(self._create_integration)
        r("GET", "/v2/integrations/{id}")(self._get_integration)
        r("PUT", "/v2/integrations/{id}")(self._update_integration)
        r("DELETE", "/v2/integrations/{id}")(self._delete_integration)
        r("POST", "/v2/integrations/{id}/enable")(self._enable_integration)
        r("POST", "/v2/integrations/{id}/disable")(self._disable_integration)
        r("GET", "/v2/teams/{identifier}")(self._get_team)
        for prefix in ("", JSM_PREFIX):
            r("POST", prefix + "/v2/alerts")(self._create_alert)
            r("GET", prefix + "/v2/alerts/requests/{request_id}")(self._request_status)
            r("POST", prefix + "/v2/alerts/{identifier}/close")(self._close_alert)
            r("PUT", prefix + "/v2/alerts/{identifier}/message")(self._update_alert)
            r("PUT", prefix + "/v2/alerts/{identifier}/description")(self._update_alert)
            r("GET", prefix + "/v2/alerts/{identifier}")(self._get_alert)
        for method in ("GET", "POST", "PUT", "PATCH"):
            r(method, "/v2/heartbeats/{name}/ping")(self._ping)
        r("POST", "/v2/heartbeats")(self._create_heartbeat)
        r("GET", "/v2/heartbeats/{name}")(self._get_heartbeat)
        r("DELETE", "/v2/heartbeats/{name}")(self._delete_heartbeat)

    # -- seeding and inspection ------------------------------------------------
    def add_api_key(self, key: str, team: str | None = None, rights: Iterable[str] = RIGHTS) -> None:
        with self.lock:
            self.api_keys[key] = ApiKey(key, team, frozenset(rights))

    def add_team(self, name: str) -> str:
        with self.lock:
            team = self.teams.get(name) or Team(str(uuid.uuid4()), name)
            self.teams[name] = team
            return team.id

    def add_integration(
        self,
        name: str,
        type: str = "API",
        team: str | None = None,
        enabled: bool = True,
        api_key: str | None = None,
    ) -> IntegrationRecord:
        """Seed an integration (e.g. the JSM one whose key the user supplies)."""
        with self.lock:
            team_id = self.teams[team].id if team else None
            record = IntegrationRecord(
                str(uuid.uuid4()), name, type, enabled, api_key or str(uuid.uuid4()), team_id
            )
            self.integrations[record.id] = record
            return record

    def add_heartbeat(self, name: str) -> None:
        with self.lock:
            self.heartbeats.setdefault(name, 0)

    # -- httpemu hooks ---------------------------------------------------------
    def is_write(self, method: str, path: str) -> bool:
        return super().is_write(method, path) or path.endswith("/ping")

    def authenticate(self, req: Request) -> Response | None:
        try:
            self._principal(req)
        except Refused as refused:
            return refused.response
        return None

    def rate_limited(self, rule: Fault) -> Response:
        resp = _error(
            429, "You are making too many requests! To avoid errors, we recommend you limit requests."
        )
        resp.headers.update(
            {
                "Retry-After": str(rule.retry_after),
                "X-RateLimit-State": "THROTTLED",
                "X-RateLimit-Reason": "INTEGRATION",
                "X-RateLimit-Period-In-Sec": "60",
            }
        )
        return resp

    def server_error(self, rule: Fault) -> Response:
        return _error(rule.status, "Internal Server Error")

    def not_found(self, req: Request) -> Response:
        return _error(404, "Resource not found")

    # -- auth ------------------------------------------------------------------
    def _principal(self, req: Request) -> Principal:
        scheme, _, key = (req.header("authorization") or "").partition(" ")
        key = key.strip()
        if scheme.lower() != "geniekey" or not key:
            raise Refused(_error(401, "Could not authenticate"))
        jsm = req.path.startswith(JSM_PREFIX)
        seeded = self.api_keys.get(key)
        if seeded is not None and not jsm:
            return Principal(key, seeded.rights, seeded.team)
        integration = next((i for i in self.integrations.values() if i.api_key == key), None)
        if integration is None:
            raise Refused(_error(401, "Could not authenticate"))
        if not integration.enabled:
            raise Refused(_error(401, f"Integration [{integration.name}] is disabled"))
        team = next((t.name for t in self.teams.values() if t.id == integration.team_id), None)
        return Principal(key, frozenset({"read", "create", "update"}), team, integration)

    def _need(self, req: Request, *rights: str) -> Principal:
        principal = self._principal(req)
        missing = [r for r in rights if r not in principal.rights]
        if missing:
            raise Refused(
                _error(403, f"Key does not have the required access right(s): {', '.join(missing)}")
            )
        return principal

    def _alert_action(self, req: Request, right: str) -> Principal:
        """Create/close/update of an alert: only an integration's key may (never an API-management key).

        Source: https://support.atlassian.com/opsgenie/docs/api-key-management/ (API-management
        keys are blocked for create, acknowledge, close and add-note alert requests). The status
        and wording of the refusal are unverified.
        """
        principal = self._need(req, right)
        if principal.integration is None:
            raise Refused(
                _error(
                    403,
                    "API keys from API key management cannot create, acknowledge or close alerts; "
                    "use an integration's API key",
                )
            )
        return principal

    def _configure(self, req: Request, right: str) -> Principal:
        """Integration API access: an API key with Configuration access (never an integration key)."""
        principal = self._need(req, "configuration", right)
        if principal.integration is not None:
            raise Refused(_error(403, "Integration keys cannot access the Integration API"))
        return principal

    def _integration(self, req: Request, principal: Principal) -> IntegrationRecord:
        record = self.integrations.get(req.params["id"])
        if record is None:
            raise Refused(_error(404, f"Integration with id [{req.params['id']}] could not be found"))
        if principal.team and record.team_id != self.teams[principal.team].id:
            raise Refused(_error(403, "Key is restricted to another team"))
        return record

    def _team(self, name: str) -> Team:
        team = self.teams.get(name)
        if team is None:
            raise Refused(_error(404, f"No team exists with name [{name}]"))
        return team

    @staticmethod
    def _body(req: Request) -> dict[str, Any]:
        try:
            data = req.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Refused(_error(400, "Invalid JSON body")) from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise Refused(_error(400, "Invalid JSON body"))
        return data

    # -- integrations ----------------------------------------------------------
    def _list_integrations(self, req: Request) -> Response:
        try:
            principal = self._configure(req, "read")
            wanted_type = req.arg("type")
            team_name = req.arg("teamName") or principal.team
            team_id = self._team(team_name).id if team_name else req.arg("teamId")
        except Refused as refused:
            return refused.response
        found = [
            i.summary()
            for i in self.integrations.values()
            if (not wanted_type or i.type == wanted_type) and (not team_id or i.team_id == team_id)
        ]
        return _envelope(200, data=found)

    def _create_integration(self, req: Request) -> Response:
        try:
            principal = self._configure(req, "create")
            body = self._body(req)
        except Refused as refused:
            return refused.response
        errors: dict[str, str] = {}
        name = body.get("name")
        kind = body.get("type")
        if not isinstance(name, str) or not name.strip():
            errors["name"] = "Name cannot be empty"
        if not kind:
            errors["type"] = "Type cannot be empty"
        elif kind not in INTEGRATION_TYPES:
            errors["type"] = f"Integration type [{kind}] is not valid"
        owner = body.get("ownerTeam") or {}
        team: Team | None = None
        if owner:
            team = self.teams.get(str(owner.get("name", ""))) or next(
                (t for t in self.teams.values() if t.id == owner.get("id")), None
            )
            if team is None:
                errors["ownerTeam"] = "Team does not exist"
        if errors:
            return _unprocessable(errors)
        if principal.team and (team is None or team.name != principal.team):
            return _error(403, "Key is restricted to another team")
        settings = {k: v for k, v in body.items() if k not in ("name", "type", "ownerTeam", "enabled")}
        record = IntegrationRecord(
            str(uuid.uuid4()),
            str(name),
            str(kind),
            False,
            str(uuid.uuid4()),
            team.id if team else None,
            settings,
        )
        self.integrations[record.id] = record
        return _envelope(201, data={**self._detail(record), "apiKey": record.api_key})

    def _detail(self, record: IntegrationRecord) -> dict[str, Any]:
        team = next((t for t in self.teams.values() if t.id == record.team_id), None)
        return {
            **record.settings,
            "id": record.id,
            "name": record.name,
            "type": record.type,
            "enabled": record.enabled,
            "ownerTeam": {"id": team.id, "name": team.name} if team else None,
            "_readOnly": ["id", "type"],
        }

    def _get_integration(self, req: Request) -> Response:
        try:
            record = self._integration(req, self._configure(req, "read"))
        except Refused as refused:
            return refused.response
        return _envelope(200, data=self._detail(record))

    def _update_integration(self, req: Request) -> Response:
        try:
            record = self._integration(req, self._configure(req, "update"))
            body = self._body(req)
        except Refused as refused:
            return refused.response
        errors: dict[str, str] = {}
        if not isinstance(body.get("name"), str) or not body["name"].strip():
            errors["name"] = "Name cannot be empty"
        if body.get("type", record.type) != record.type:
            errors["type"] = "Integration type cannot be changed"
        if errors:
            return _unprocessable(errors)
        record.name = body["name"]
        if "enabled" in body:
            record.enabled = bool(body["enabled"])
        record.settings = {k: v for k, v in body.items() if k not in ("name", "type", "ownerTeam", "enabled")}
        return _envelope(200, data=self._detail(record))

    def _delete_integration(self, req: Request) -> Response:
        try:
            record = self._integration(req, self._configure(req, "delete"))
        except Refused as refused:
            return refused.response
        del self.integrations[record.id]
        return _envelope(200, result="Deleted")

    def _switch(self, req: Request, enabled: bool) -> Response:
        try:
            record = self._integration(req, self._configure(req, "update"))
        except Refused as refused:
            return refused.response
        record.enabled = enabled
        return _envelope(200, result="Enabled" if enabled else "Disabled", data=record.summary())

    def _enable_integration(self, req: Request) -> Response:
        return self._switch(req, True)

    def _disable_integration(self, req: Request) -> Response:
        return self._switch(req, False)

    # -- teams -----------------------------------------------------------------
    def _get_team(self, req: Request) -> Response:
        try:
            principal = self._need(req, "read")
            if principal.integration is not None:
                return _error(403, "Integration keys cannot access the Team API")
            ident = req.params["identifier"]
            if (req.arg("identifierType") or "id") == "name":
                team = self._team(ident)
            else:
                team = next((t for t in self.teams.values() if t.id == ident), None) or self._team(ident)
        except Refused as refused:
            return refused.response
        return _envelope(200, data={"id": team.id, "name": team.name, "description": "", "members": []})

    # -- alerts ----------------------------------------------------------------
    def _accepted(self, record: RequestRecord) -> Response:
        request_id = str(uuid.uuid4())
        self.requests[request_id] = record
        return Response(202, {"result": "Request will be processed", "took": 0.01, "requestId": request_id})

    def _create_alert(self, req: Request) -> Response:
        try:
            principal = self._alert_action(req, "create")
            body = self._body(req)
        except Refused as refused:
            return refused.response
        errors = _alert_errors(body)
        if errors:
            return _unprocessable(errors)
        integration = principal.integration
        alias = str(body.get("alias") or "")
        existing = next((a for a in self.alerts if alias and a.alias == alias and a.status == "open"), None)
        if existing is not None:
            # OpsGenie de-duplicates an open alert with the same alias instead of opening another.
            existing.count += 1
            existing.updated_at = _now()
            status, alert = "Alert is deduplicated", existing
        else:
            alert = AlertRecord(
                id=str(uuid.uuid4()),
                tiny_id=str(next(self._tiny)),
                alias=alias,
                message=str(body["message"])[:_MESSAGE_MAX],
                api_key=principal.key,
                integration_id=integration.id if integration else None,
                integration_name=integration.name if integration else "Default API",
                path=req.path,
                description=str(body.get("description") or ""),
                priority=str(body.get("priority") or "P3"),
                responders=list(body.get("responders") or []),
                tags=[str(t) for t in body.get("tags") or []],
                details={str(k): str(v) for k, v in (body.get("details") or {}).items()},
                entity=str(body.get("entity") or ""),
                source=str(body.get("source") or ""),
                note=str(body.get("note") or ""),
                user=str(body.get("user") or ""),
                actions=[str(a) for a in body.get("actions") or []],
            )
            if not alert.alias:
                alert.alias = alert.id
            alert.resolved_responders = [self._resolve(r) for r in alert.responders]
            self.alerts.append(alert)
            status = "Created alert"
        return self._accepted(
            RequestRecord(
                "Create", True, status, alert.alias, alert.id, integration.id if integration else ""
            )
        )

    def _resolve(self, responder: dict[str, Any]) -> dict[str, str]:
        ref = str(responder.get("id") or responder.get("name") or responder.get("username"))
        team = self.teams.get(ref) if responder.get("type") == "team" else None
        return {"type": str(responder["type"]), "id": team.id if team else ref}

    def _find_alert(self, req: Request) -> AlertRecord | None:
        ident = req.params["identifier"]
        kind = req.arg("identifierType") or "id"
        attr = {"id": "id", "alias": "alias", "tiny": "tiny_id"}.get(kind, "id")
        matches = [a for a in self.alerts if getattr(a, attr) == ident]
        # Several closed alerts may share an alias; the newest one is "the" alert.
        return matches[-1] if matches else None

    def _close_alert(self, req: Request) -> Response:
        try:
            principal = self._alert_action(req, "update")
            body = self._body(req)
        except Refused as refused:
            return refused.response
        integration_id = principal.integration.id if principal.integration else ""
        alert = self._find_alert(req)
        if alert is None:
            ident = req.params["identifier"]
            return self._accepted(
                RequestRecord("Close", False, "Alert does not exist", ident, "", integration_id)
            )
        alert.close_requests.append({**body, "api_key": principal.key})
        if alert.status == "closed":
            status = "Alert is already closed"
        else:
            alert.status, alert.updated_at, status = "closed", _now(), "Closed alert"
        return self._accepted(RequestRecord("Close", True, status, alert.alias, alert.id, integration_id))

    def _update_alert(self, req: Request) -> Response:
        try:
            principal = self._alert_action(req, "update")
            body = self._body(req)
        except Refused as refused:
            return refused.response
        integration_id = principal.integration.id if principal.integration else ""
        alert = self._find_alert(req)
        if alert is None:
            ident = req.params["identifier"]
            return self._accepted(
                RequestRecord("Update", False, "Alert does not exist", ident, "", integration_id)
            )
        if "message" in body:
            alert.message = str(body["message"])[:_MESSAGE_MAX]
        if "description" in body:
            alert.description = str(body["description"])
        alert.updated_at = _now()
        return self._accepted(
            RequestRecord("Update", True, "Updated alert", alert.alias, alert.id, integration_id)
        )

    def _request_status(self, req: Request) -> Response:
        try:
            self._need(req, "read")
        except Refused as refused:
            return refused.response
        record = self.requests.get(req.params["request_id"])
        if record is not None:
            record.polls += 1
        if record is None or record.polls <= self.request_lag:
            return _error(404, "Request not found. It might not be processed, yet.")
        return _envelope(
            200,
            data={
                "success": True,
                "action": record.action,
                "processedAt": record.processed_at,
                "integrationId": record.integration_id,
                "isSuccess": record.is_success,
                "status": record.status,
                "alertId": record.alert_id,
                "alias": record.alias,
            },
        )

    def _get_alert(self, req: Request) -> Response:
        try:
            self._need(req, "read")
        except Refused as refused:
            return refused.response
        alert = self._find_alert(req)
        if alert is None:
            return _error(404, "Alert does not exist")
        return _envelope(200, data=alert.to_json())

    # -- heartbeats ------------------------------------------------------------
    # Heartbeat API: https://docs.opsgenie.com/docs/heartbeat-api (interval, intervalUnit and enabled are
    # mandatory on create; the answer's fields are opsgenie-sdk 2.1.5's Heartbeat/HeartbeatMeta models).
    def _create_heartbeat(self, req: Request) -> Response:
        try:
            self._configure(req, "create")
            body = self._body(req)
        except Refused as refused:
            return refused.response
        errors = {
            k: f"{k} can not be empty"
            for k in ("name", "interval", "intervalUnit", "enabled")
            if body.get(k) in (None, "")
        }
        if body.get("intervalUnit") not in (None, "minutes", "hours", "days"):
            errors["intervalUnit"] = "intervalUnit should be one of [minutes, hours, days]"
        if not errors and body["name"] in self.heartbeat_settings:
            errors["name"] = "Heartbeat with name already exists"
        if errors:
            return _unprocessable(errors)
        self.heartbeats.setdefault(body["name"], 0)
        self.heartbeat_settings[body["name"]] = {**body, "lastPing": None}
        return _envelope(201, data={"name": body["name"], "enabled": bool(body["enabled"]), "expired": False})

    def _get_heartbeat(self, req: Request) -> Response:
        try:
            self._configure(req, "read")
        except Refused as refused:
            return refused.response
        found = self.heartbeat_settings.get(req.params["name"])
        if found is None:
            return _error(404, f"Heartbeat with name [{req.params['name']}] does not exist")
        seconds = (
            int(found["interval"]) * {"minutes": 60, "hours": 3600, "days": 86400}[found["intervalUnit"]]
        )
        last = found["lastPing"]
        data = {k: found.get(k) for k in ("name", "description", "interval", "intervalUnit", "enabled")}
        data["expired"] = (
            last is not None and datetime.datetime.now(datetime.UTC).timestamp() - last > seconds
        )
        if last is not None:
            data["lastPingTime"] = datetime.datetime.fromtimestamp(last, datetime.UTC).isoformat()
        return _envelope(200, data=data)

    def _delete_heartbeat(self, req: Request) -> Response:
        try:
            self._configure(req, "delete")
        except Refused as refused:
            return refused.response
        if self.heartbeat_settings.pop(req.params["name"], None) is None:
            return _error(404, f"Heartbeat with name [{req.params['name']}] does not exist")
        self.heartbeats.pop(req.params["name"], None)
        return _envelope(200, result="Deleted")

    def _ping(self, req: Request) -> Response:
        name = req.params["name"]
        if name not in self.heartbeats:
            return _error(404, f"Heartbeat with name [{name}] does not exist")
        self.heartbeats[name] += 1
        if name in self.heartbeat_settings:
            self.heartbeat_settings[name]["lastPing"] = datetime.datetime.now(datetime.UTC).timestamp()
        return Response(
            202, {"result": "PONG - Heartbeat received", "took": 0.01, "requestId": str(uuid.uuid4())}
        )


def _alert_errors(body: dict[str, Any]) -> dict[str, str]:
    """OpsGenie's synchronous validation of a create-alert payload."""
    errors: dict[str, str] = {}
    if not isinstance(body.get("message"), str) or not body["message"].strip():
        errors["message"] = "Message can not be empty."
    if body.get("priority") and body["priority"] not in PRIORITIES:
        errors["priority"] = "Priority should be one of [P1, P2, P3, P4, P5]"
    for n, responder in enumerate(body.get("responders") or []):
        if not isinstance(responder, dict) or responder.get("type") not in RESPONDER_TYPES:
            errors[f"responders[{n}].type"] = (
                "Responder type should be one of [team, user, escalation, schedule]"
            )
        elif not (responder.get("id") or responder.get("name") or responder.get("username")):
            errors[f"responders[{n}]"] = "Responder should have one of [id, name, username]"
    details = body.get("details")
    if details is not None and not isinstance(details, dict):
        errors["details"] = "Details should be a map of strings"
    return errors
