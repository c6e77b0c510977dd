"""A stateful Jira Service Management (JSM) Operations emulator.

It exists so that the JSM adapter, the alertmanager-opsgenie step and a real
Alertmanager can be pointed at one loopback server that answers like
``api.atlassian.com`` (the ops REST API and the alert-ingestion API) and like a
site's ``https://<site>.atlassian.net/_edge/tenant_info``.

Fidelity table: every behaviour the step relies on, with its source (keys
below). "unverified" means no vendor source was found; each such belief has a
test of what the tool does when it is wrong (tests/backends/test_jsm_client.py).

- REST base ``/jsm/ops/api/{cloudId}/v1/...``, basic auth email + API token: [H] [I]
- cloudId of a site: ``GET https://<site>.atlassian.net/_edge/tenant_info``
  answers ``{"cloudId": ...}``: [T]
- lists: ``offset``/``size`` query; body ``{"values": [...], "links": {"next": ...}}``;
  ``next`` is a path relative to the REST base (``/v1/...?offset=&size=``): [H] [C].
  Default and maximum page size (20/100): unverified
- integrations: ``GET /v1/integrations`` (``type``, ``teamId``, ``name`` filters);
  ``POST`` answers ``{id, name, type, enabled, teamId, apiKey}``;
  ``GET/PATCH/DELETE /v1/integrations/{id}``: [C] [TF]
- the key (``apiKey``) comes with create only; names are not unique: unverified (as OpsGenie)
- enable with ``PATCH /v1/integrations/{id}`` carrying ``enabled``: [TF]; a body with
  ``enabled`` alone: unverified (``partial_patch_ignored`` simulates the belief failing)
- ``POST /v1/integrations/{id}/enable`` and ``/disable``: unverified (the adapter does not use them)
- new integrations start disabled: unverified (``created_enabled``; the adapter enables either way)
- heartbeats belong to a team: ``GET/POST /v1/teams/{teamId}/heartbeats``; ``PATCH`` and
  ``DELETE`` with ``?name=``: [H] [TF]
- heartbeat fields ``name, description, interval, intervalUnit, enabled, alertMessage,
  alertTags, alertPriority``; answers add ``status`` and ``ownerTeamId``: [H] [TF]
- ping: ``GET /v1/teams/{teamId}/heartbeats/ping?name=`` with basic auth: [P] (Compass Ops,
  the same API); ``POST`` (all Alertmanager's webhook sends): unverified (``ping_methods``)
- heartbeat ``status`` ``Responsive`` once pinged: [H]; ``Unresponsive`` after an interval
  without a ping and ``Unknown`` before the first ping: unverified
- teams: ``GET /v1/teams`` answers ``values[{teamId, teamName}]``: unverified (the adapter
  names alerting.team and the teams it saw when it finds none)
- alert ingestion ``POST /jsm/ops/integration/v2/alerts`` with ``Authorization: GenieKey
  <integration key>``, 202 ``{result, took, requestId}``; close by alias
  ``POST .../v2/alerts/{alias}/close?identifierType=alias``: [E]
- error bodies ``{"errorMessages": [...], "errors": {field: message}}``: unverified (Jira
  platform's ErrorCollection; the adapter reads any JSON body, or none)
- 401 bad credential, 403 missing scope/role, 404 unknown cloudId/object, 429 + ``Retry-After``: [S]

[H] https://developer.atlassian.com/cloud/jira/service-desk-ops/rest/v2/api-group-heartbeats/
[I] https://developer.atlassian.com/cloud/jira/service-desk-ops/rest/v2/api-group-integrations/
[C] https://developer.atlassian.com/cloud/compass/rest/v1/api-group-integrations/ (same ops API)
[TF] github.com/atlassian/terraform-provider-atlassian-operations (Atlassian's own client):
     internal/provider/{api_integration,heartbeat}_resource.go, internal/dto/
[P] Compass Ops help "How to use Heartbeats?" (.../v1/teams/{teamId}/heartbeats/ping?name=...)
[T] https://support.atlassian.com/jira/kb/retrieve-my-atlassian-sites-cloud-id
[E] https://developer.atlassian.com/cloud/jira/service-desk-ops/rest/v1/api-group-integration-events
[S] https://developer.atlassian.com/cloud/jira/service-desk-ops/rest/intro/ (Status codes)
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

from sandbox.httpemu import EmulatorServer, Fault, Request, Response

API = "/jsm/ops/api"
INGEST = "/jsm/ops/integration"
DEFAULT_SIZE = 20  # unverified
MAX_SIZE = 100  # unverified
UNITS = {"minutes": 60, "hours": 3600, "days": 86400}
INTEGRATION_TYPES = frozenset({"API", "Prometheus", "Webhook", "Email", "Grafana"})


def _error(status: int, message: str, errors: dict[str, str] | None = None) -> Response:
    return Response(status, {"errorMessages": [message], "errors": errors or {}})


class Refused(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass
class User:
    email: str
    token: str
    admin: bool
    """Admin (``write:ops-config``) may change configuration; others get 403 on writes."""


@dataclass
class IntegrationRecord:
    id: str
    name: str
    type: str
    team_id: str | None
    api_key: str
    enabled: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "enabled": self.enabled,
            "teamId": self.team_id,
            "typeSpecificProperties": {},
        }


@dataclass
class HeartbeatRecord:
    name: str
    team_id: str
    interval: int
    unit: str
    enabled: bool
    description: str = ""
    alert_message: str = ""
    alert_tags: list[str] = field(default_factory=list)
    alert_priority: str = "P3"
    created: float = field(default_factory=time.time)
    last_ping: float | None = None
    pings: int = 0

    def status(self, now: float) -> str:
        if self.last_ping is None:
            return "Unknown"
        return "Responsive" if now - self.last_ping <= self.interval * UNITS[self.unit] else "Unresponsive"

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "interval": self.interval,
            "intervalUnit": self.unit,
            "enabled": self.enabled,
            "status": self.status(now),
            "ownerTeamId": self.team_id,
            "alertMessage": self.alert_message,
            "alertTags": self.alert_tags,
            "alertPriority": self.alert_priority,
        }


@dataclass
class AlertRecord:
    alias: str
    message: str
    api_key: str
    integration_id: str
    body: dict[str, Any]
    status: str = "open"


class JsmEmulator(EmulatorServer):
    """JSM Ops on loopback; seed with ``add_user`` and ``add_team``."""

    name = "jsm-emulator"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.cloud_id = str(uuid.uuid4())
        self.users: dict[str, User] = {}
        self.teams: dict[str, str] = {}
        """team id → team name"""
        self.integrations: dict[str, IntegrationRecord] = {}
        self.heartbeats: dict[tuple[str, str], HeartbeatRecord] = {}
        self.alerts: list[AlertRecord] = []
        self.clock = time.time
        """Heartbeat status is computed against this (tests move time forward by replacing it)."""
        self.partial_patch_ignored = False
        """Belief check: a real PATCH might ignore a body with ``enabled`` only."""
        self.ping_methods = frozenset({"GET", "POST"})
        """Belief check: which methods the ping endpoint accepts."""
        self.created_enabled = False

        base = API + "/{cloud_id}/v1"
        r = self.route
        r("GET", "/_edge/tenant_info")(self._tenant_info)
        r("GET", base + "/teams")(self._list_teams)
        r("GET", base + "/integrations")(self._list_integrations)
        r("POST", base + "/integrations")(self._create_integration)
        r("GET", base + "/integrations/{id}")(self._get_integration)
        r("PATCH", base + "/integrations/{id}")(self._patch_integration)
        r("DELETE", base + "/integrations/{id}")(self._delete_integration)
        r("POST", base + "/integrations/{id}/enable")(lambda q: self._switch(q, True))
        r("POST", base + "/integrations/{id}/disable")(lambda q: self._switch(q, False))
        r("GET", base + "/teams/{team_id}/heartbeats")(self._list_heartbeats)
        r("POST", base + "/teams/{team_id}/heartbeats")(self._create_heartbeat)
        r("PATCH", base + "/teams/{team_id}/heartbeats")(self._patch_heartbeat)
        r("DELETE", base + "/teams/{team_id}/heartbeats")(self._delete_heartbeat)
        for method in ("GET", "POST"):
            r(method, base + "/teams/{team_id}/heartbeats/ping")(self._ping)
        r("POST", INGEST + "/v2/alerts")(self._create_alert)
        r("POST", INGEST + "/v2/alerts/{identifier}/close")(self._close_alert)

    # -- seeding and inspection ------------------------------------------------
    def add_user(self, email: str, token: str, admin: bool = True) -> None:
        with self.lock:
            self.users[email] = User(email, token, admin)

    def add_team(self, name: str) -> str:
        with self.lock:
            for team_id, team_name in self.teams.items():
                if team_name == name:
                    return team_id
            team_id = str(uuid.uuid4())
            self.teams[team_id] = name
            return team_id

    def add_integration(self, name: str, team: str, enabled: bool = True) -> IntegrationRecord:
        with self.lock:
            record = IntegrationRecord(str(uuid.uuid4()), name, "API", self.add_team(team), str(uuid.uuid4()))
            record.enabled = enabled
            self.integrations[record.id] = record
            return record

    def heartbeat(self, name: str) -> HeartbeatRecord | None:
        return next((h for (_, n), h in self.heartbeats.items() if n == name), None)

    # -- httpemu hooks ---------------------------------------------------------
    def is_write(self, method: str, path: str) -> bool:
        return super().is_write(method, path) or path.endswith("/ping")

    def authenticate(self, req: Request) -> Response | None:
        try:
            if req.path.startswith(API):
                self._user(req)
                if req.params.get("cloud_id") != self.cloud_id:
                    return _error(404, "Cloud id not found")
            elif req.path.startswith(INGEST):
                self._integration_key(req)
        except Refused as refused:
            return refused.response
        return None

    def rate_limited(self, rule: Fault) -> Response:
        resp = _error(429, "Too many requests")
        resp.headers["Retry-After"] = str(rule.retry_after)
        return resp

    def server_error(self, rule: Fault) -> Response:
        return _error(rule.status, "Internal server error")

    def not_found(self, req: Request) -> Response:
        return _error(404, "Not found")

    # -- auth ------------------------------------------------------------------
    def _user(self, req: Request) -> User:
        scheme, _, blob = (req.header("authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            raise Refused(_error(401, "Client must be authenticated to access this resource."))
        try:
            email, _, token = base64.b64decode(blob).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise Refused(_error(401, "Client must be authenticated to access this resource.")) from None
        user = self.users.get(email)
        if user is None or user.token != token:
            raise Refused(_error(401, "Client must be authenticated to access this resource."))
        return user

    def _admin(self, req: Request) -> User:
        user = self._user(req)
        if not user.admin:
            raise Refused(_error(403, "The user does not have the required permission (write:ops-config)."))
        return user

    def _integration_key(self, req: Request) -> IntegrationRecord:
        scheme, _, key = (req.header("authorization") or "").partition(" ")
        record = next(
            (
                i
                for i in self.integrations.values()
                if scheme.lower() == "geniekey" and i.api_key == key.strip()
            ),
            None,
        )
        if record is None:
            raise Refused(_error(401, "Could not authenticate"))
        if not record.enabled:
            raise Refused(_error(403, f"Integration [{record.name}] is disabled"))
        return record

    @staticmethod
    def _body(req: Request) -> dict[str, Any]:
        try:
            data = req.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Refused(_error(400, "Invalid JSON body")) from None
        if not isinstance(data, dict):
            raise Refused(_error(400, "Invalid JSON body"))
        return data

    def _team(self, team_id: str) -> str:
        if team_id not in self.teams:
            raise Refused(_error(404, f"Team [{team_id}] not found"))
        return team_id

    def _page(self, req: Request, items: list[dict[str, Any]], path: str) -> Response:
        """One page and ``links.next`` relative to the REST base, as the documented examples show."""
        try:
            offset = int(req.arg("offset") or 0)
            size = min(int(req.arg("size") or DEFAULT_SIZE), MAX_SIZE)
        except ValueError:
            return _error(400, "offset and size must be integers")
        if offset < 0 or size < 1:
            return _error(400, "offset must be >= 0 and size >= 1")
        links: dict[str, str] = {}
        if offset + size < len(items):
            query = {k: v[-1] for k, v in req.query.items() if k not in ("offset", "size")}
            query.update(offset=str(offset + size), size=str(size))
            links["next"] = f"{path}?{urllib.parse.urlencode(query)}"
        return Response(200, {"values": items[offset : offset + size], "links": links})

    # -- site ------------------------------------------------------------------
    def _tenant_info(self, req: Request) -> Response:
        return Response(200, {"cloudId": self.cloud_id})

    def _list_teams(self, req: Request) -> Response:
        teams = [{"teamId": tid, "teamName": name} for tid, name in self.teams.items()]
        return self._page(req, teams, "/v1/teams")

    # -- integrations ----------------------------------------------------------
    def _list_integrations(self, req: Request) -> Response:
        found = [
            i.to_json()
            for i in self.integrations.values()
            if (not req.arg("type") or i.type == req.arg("type"))
            and (not req.arg("teamId") or i.team_id == req.arg("teamId"))
            and (not req.arg("name") or i.name == req.arg("name"))
        ]
        return self._page(req, found, "/v1/integrations")

    def _create_integration(self, req: Request) -> Response:
        try:
            self._admin(req)
            body = self._body(req)
        except Refused as refused:
            return refused.response
        errors: dict[str, str] = {}
        if not isinstance(body.get("name"), str) or not body["name"].strip():
            errors["name"] = "name must not be empty"
        if body.get("type") not in INTEGRATION_TYPES:
            errors["type"] = f"type must be one of {sorted(INTEGRATION_TYPES)}"
        team_id = body.get("teamId")
        if team_id is not None and team_id not in self.teams:
            errors["teamId"] = "team does not exist"
        if errors:
            return _error(400, "Invalid request", errors)
        record = IntegrationRecord(
            str(uuid.uuid4()), body["name"], body["type"], team_id, str(uuid.uuid4()), self.created_enabled
        )
        self.integrations[record.id] = record
        return Response(201, {**record.to_json(), "apiKey": record.api_key})

    def _find(self, req: Request) -> IntegrationRecord:
        record = self.integrations.get(req.params["id"])
        if record is None:
            raise Refused(_error(404, f"Integration [{req.params['id']}] not found"))
        return record

    def _get_integration(self, req: Request) -> Response:
        try:
            record = self._find(req)
        except Refused as refused:
            return refused.response
        return Response(200, record.to_json())

    def _patch_integration(self, req: Request) -> Response:
        try:
            self._admin(req)
            record = self._find(req)
            body = self._body(req)
        except Refused as refused:
            return refused.response
        if "enabled" in body and not (self.partial_patch_ignored and "name" not in body):
            record.enabled = bool(body["enabled"])
        if isinstance(body.get("name"), str) and body["name"].strip():
            record.name = body["name"]
        return Response(200, record.to_json())

    def _switch(self, req: Request, enabled: bool) -> Response:
        try:
            self._admin(req)
            record = self._find(req)
        except Refused as refused:
            return refused.response
        record.enabled = enabled
        return Response(200, record.to_json())

    def _delete_integration(self, req: Request) -> Response:
        try:
            self._admin(req)
            record = self._find(req)
        except Refused as refused:
            return refused.response
        del self.integrations[record.id]
        return Response(204)

    # -- heartbeats ------------------------------------------------------------
    def _list_heartbeats(self, req: Request) -> Response:
        try:
            team_id = self._team(req.params["team_id"])
        except Refused as refused:
            return refused.response
        now = self.clock()
        name = req.arg("name")
        found = [
            h.to_json(now)
            for (tid, n), h in self.heartbeats.items()
            if tid == team_id and (not name or n == name)
        ]
        return self._page(req, found, f"/v1/teams/{team_id}/heartbeats")

    def _create_heartbeat(self, req: Request) -> Response:
        try:
            self._admin(req)
            team_id = self._team(req.params["team_id"])
            body = self._body(req)
        except Refused as refused:
            return refused.response
        errors: dict[str, str] = {}
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            errors["name"] = "name must not be empty"
        elif (team_id, name) in self.heartbeats:
            errors["name"] = f"heartbeat [{name}] already exists"
        if not isinstance(body.get("interval"), int) or body["interval"] < 1:
            errors["interval"] = "interval must be a positive integer"
        if body.get("intervalUnit") not in UNITS:
            errors["intervalUnit"] = "intervalUnit must be one of minutes, hours, days"
        if errors:
            return _error(400, "Invalid request", errors)
        record = HeartbeatRecord(
            str(name),
            team_id,
            body["interval"],
            body["intervalUnit"],
            bool(body.get("enabled", False)),
            str(body.get("description") or ""),
            str(body.get("alertMessage") or ""),
            [str(t) for t in body.get("alertTags") or []],
            str(body.get("alertPriority") or "P3"),
            created=self.clock(),
        )
        self.heartbeats[(team_id, record.name)] = record
        return Response(201, record.to_json(self.clock()))

    def _named(self, req: Request) -> HeartbeatRecord:
        team_id = self._team(req.params["team_id"])
        name = req.arg("name") or ""
        record = self.heartbeats.get((team_id, name))
        if record is None:
            raise Refused(_error(404, f"Heartbeat [{name}] not found"))
        return record

    def _patch_heartbeat(self, req: Request) -> Response:
        try:
            self._admin(req)
            record = self._named(req)
            body = self._body(req)
        except Refused as refused:
            return refused.response
        record.enabled = bool(body.get("enabled", record.enabled))
        if isinstance(body.get("interval"), int):
            record.interval = body["interval"]
        if body.get("intervalUnit") in UNITS:
            record.unit = body["intervalUnit"]
        return Response(200, record.to_json(self.clock()))

    def _delete_heartbeat(self, req: Request) -> Response:
        try:
            self._admin(req)
            record = self._named(req)
        except Refused as refused:
            return refused.response
        del self.heartbeats[(record.team_id, record.name)]
        return Response(204)

    def _ping(self, req: Request) -> Response:
        if req.method not in self.ping_methods:
            return _error(405, "Method Not Allowed")
        try:
            record = self._named(req)
        except Refused as refused:
            return refused.response
        record.last_ping, record.pings = self.clock(), record.pings + 1
        return Response(
            202, {"result": "PONG - Heartbeat received", "took": 0.01, "requestId": str(uuid.uuid4())}
        )

    # -- alert ingestion ---------------------------------------------------------
    def _accepted(self) -> Response:
        return Response(
            202, {"result": "Request will be processed", "took": 0.01, "requestId": str(uuid.uuid4())}
        )

    def _create_alert(self, req: Request) -> Response:
        try:
            integration = self._integration_key(req)
            body = self._body(req)
        except Refused as refused:
            return refused.response
        if not isinstance(body.get("message"), str) or not body["message"].strip():
            return _error(422, "Invalid request", {"message": "message must not be empty"})
        alias = str(body.get("alias") or uuid.uuid4())
        key = str(req.header("authorization")).partition(" ")[2].strip()
        self.alerts.append(AlertRecord(alias, body["message"], key, integration.id, body))
        return self._accepted()

    def _close_alert(self, req: Request) -> Response:
        try:
            self._integration_key(req)
        except Refused as refused:
            return refused.response
        for alert in self.alerts:
            if alert.alias == req.params["identifier"]:
                alert.status = "closed"
        return self._accepted()
