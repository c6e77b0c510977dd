"""Realism tests: the OpsGenie emulator driven by the real opsgenie-sdk, by plain
requests for the integration API, and by the exact JSON Alertmanager 0.25's
opsgenie notifier posts."""

from __future__ import annotations

from typing import Any

import opsgenie_sdk
import pytest
import requests
import tenacity

from sandbox.httpemu import Fault
from sandbox.opsgenie import OpsGenieEmulator
from tests.fixtures.opsgenie import API_KEY, TEAM


def alert_api(emu: OpsGenieEmulator, key: str = API_KEY, retries: int = 1) -> Any:
    conf = opsgenie_sdk.Configuration()
    conf.host = emu.url
    # Configuration() is a shallow copy of a shared default: assign a new dict, never mutate api_key.
    conf.api_key = {"Authorization": key}
    conf.retry_count = retries
    conf.retry_delay = 0
    conf.back_off = 0
    return opsgenie_sdk.AlertApi(api_client=opsgenie_sdk.ApiClient(configuration=conf))


def http(
    emu: OpsGenieEmulator, method: str, path: str, key: str = API_KEY, **kwargs: Any
) -> requests.Response:
    headers = {"Authorization": f"GenieKey {key}"}
    return requests.request(method, emu.url + path, headers=headers, timeout=5, **kwargs)


def create_integration(emu: OpsGenieEmulator, name: str = "alertmanager-kuvaq", kind: str = "API") -> Any:
    resp = http(
        emu, "POST", "/v2/integrations", json={"name": name, "type": kind, "ownerTeam": {"name": TEAM}}
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["data"]


def integration_key(emu: OpsGenieEmulator) -> str:
    """An enabled integration's key: the only kind OpsGenie lets create and close alerts."""
    return emu.add_integration("alerts-kuvaq", team=TEAM).api_key


def test_integration_lifecycle(opsgenie_emu: OpsGenieEmulator) -> None:
    created = create_integration(opsgenie_emu)
    assert created["enabled"] is False
    assert created["type"] == "API"
    assert created["apiKey"]
    assert created["ownerTeam"]["name"] == TEAM
    iid = created["id"]

    fetched = http(opsgenie_emu, "GET", f"/v2/integrations/{iid}").json()
    assert "apiKey" not in fetched["data"]  # the key is returned by create only
    assert set(fetched) == {"data", "took", "requestId"}

    listed = http(opsgenie_emu, "GET", "/v2/integrations", params={"type": "API", "teamName": TEAM}).json()
    team_id = opsgenie_emu.teams[TEAM].id
    assert listed["data"] == [
        {"id": iid, "name": "alertmanager-kuvaq", "type": "API", "enabled": False, "teamId": team_id}
    ]
    assert http(opsgenie_emu, "GET", "/v2/integrations", params={"type": "Prometheus"}).json()["data"] == []

    assert http(opsgenie_emu, "POST", f"/v2/integrations/{iid}/enable").status_code == 200
    assert opsgenie_emu.integrations[iid].enabled is True
    updated = http(opsgenie_emu, "PUT", f"/v2/integrations/{iid}", json={"name": "renamed", "type": "API"})
    assert updated.json()["data"]["name"] == "renamed"
    assert http(opsgenie_emu, "POST", f"/v2/integrations/{iid}/disable").status_code == 200
    assert http(opsgenie_emu, "DELETE", f"/v2/integrations/{iid}").json()["result"] == "Deleted"
    gone = http(opsgenie_emu, "GET", f"/v2/integrations/{iid}")
    assert gone.status_code == 404
    assert set(gone.json()) == {"message", "took", "requestId"}


def test_integration_names_are_not_unique(opsgenie_emu: OpsGenieEmulator) -> None:
    first = create_integration(opsgenie_emu)
    second = create_integration(opsgenie_emu)
    assert first["id"] != second["id"]
    assert first["apiKey"] != second["apiKey"]


def test_integration_validation_errors(opsgenie_emu: OpsGenieEmulator) -> None:
    resp = http(
        opsgenie_emu, "POST", "/v2/integrations", json={"type": "Bogus", "ownerTeam": {"name": "nope"}}
    )
    assert resp.status_code == 422
    body = resp.json()
    assert body["message"] == "Request body is not processable. Please check the errors."
    assert set(body["errors"]) == {"name", "type", "ownerTeam"}
    missing_team = http(opsgenie_emu, "GET", "/v2/integrations", params={"teamName": "nope"})
    assert missing_team.status_code == 404


def test_auth_and_rights(opsgenie_emu: OpsGenieEmulator) -> None:
    assert http(opsgenie_emu, "GET", "/v2/integrations", key="wrong").status_code == 401
    no_header = requests.get(opsgenie_emu.url + "/v2/integrations", timeout=5)
    assert no_header.status_code == 401
    assert no_header.json()["message"] == "Could not authenticate"

    opsgenie_emu.add_api_key("og-read-only", rights=("read",))
    denied = http(opsgenie_emu, "GET", "/v2/integrations", key="og-read-only")
    assert denied.status_code == 403
    assert "configuration" in denied.json()["message"]

    created = create_integration(opsgenie_emu)
    http(opsgenie_emu, "POST", f"/v2/integrations/{created['id']}/enable")
    as_integration = http(opsgenie_emu, "GET", "/v2/integrations", key=created["apiKey"])
    assert as_integration.status_code == 403


def test_team_scoped_key(opsgenie_emu: OpsGenieEmulator) -> None:
    opsgenie_emu.add_team("other-team")
    opsgenie_emu.add_api_key("og-team-key", team=TEAM)
    ok = http(
        opsgenie_emu,
        "POST",
        "/v2/integrations",
        key="og-team-key",
        json={"name": "x", "type": "API", "ownerTeam": {"name": TEAM}},
    )
    assert ok.status_code == 201
    other = http(
        opsgenie_emu,
        "POST",
        "/v2/integrations",
        key="og-team-key",
        json={"name": "x", "type": "API", "ownerTeam": {"name": "other-team"}},
    )
    assert other.status_code == 403


def test_teams(opsgenie_emu: OpsGenieEmulator) -> None:
    team = http(opsgenie_emu, "GET", f"/v2/teams/{TEAM}", params={"identifierType": "name"}).json()["data"]
    assert team == {"id": opsgenie_emu.teams[TEAM].id, "name": TEAM, "description": "", "members": []}
    by_id = http(opsgenie_emu, "GET", f"/v2/teams/{team['id']}").json()["data"]
    assert by_id["name"] == TEAM
    missing = http(opsgenie_emu, "GET", "/v2/teams/nope", params={"identifierType": "name"})
    assert missing.status_code == 404
    assert missing.json()["message"] == "No team exists with name [nope]"


def test_sdk_create_poll_get_close(opsgenie_emu: OpsGenieEmulator) -> None:
    created = create_integration(opsgenie_emu)
    http(opsgenie_emu, "POST", f"/v2/integrations/{created['id']}/enable")
    api = alert_api(opsgenie_emu, key=created["apiKey"])
    payload = opsgenie_sdk.CreateAlertPayload(
        message="bootstrap test alert",
        alias="bootstrap-test-kuvaq",
        description="sent by gitops-bootstrap",
        responders=[{"name": TEAM, "type": "team"}],
        tags=["bootstrap"],
        details={"customer": "kuvaq"},
        priority="P5",
    )
    response = api.create_alert(create_alert_payload=payload)
    assert response.result == "Request will be processed"

    status = api.get_request_status(request_id=response.request_id).data
    assert (status.is_success, status.action, status.alias) == (True, "Create", "bootstrap-test-kuvaq")
    assert status.integration_id == created["id"]

    alert = opsgenie_emu.alerts[0]
    assert alert.api_key == created["apiKey"]  # arrived with the integration's GenieKey
    assert alert.integration_name == "alertmanager-kuvaq"
    assert (alert.priority, alert.tags, alert.details) == ("P5", ["bootstrap"], {"customer": "kuvaq"})
    assert alert.responders == [{"name": TEAM, "type": "team"}]

    fetched = api.get_alert(identifier="bootstrap-test-kuvaq", identifier_type="alias").data
    assert (fetched.id, fetched.status, fetched.message) == (alert.id, "open", "bootstrap test alert")
    assert fetched.responders[0].id == opsgenie_emu.teams[TEAM].id

    closing = api.close_alert(
        identifier="bootstrap-test-kuvaq",
        identifier_type="alias",
        close_alert_payload=opsgenie_sdk.CloseAlertPayload(source="bootstrap", note="test done"),
    )
    closed = api.get_request_status(request_id=closing.request_id).data
    assert (closed.is_success, closed.action) == (True, "Close")
    assert alert.status == "closed"


def test_sdk_retrieve_result_short_polling(opsgenie_emu: OpsGenieEmulator) -> None:
    api = alert_api(opsgenie_emu, key=integration_key(opsgenie_emu))
    response = api.create_alert(create_alert_payload=opsgenie_sdk.CreateAlertPayload(message="hello"))
    assert response.id == opsgenie_emu.alerts[0].id  # the SDK polls /v2/alerts/requests/{id}
    assert opsgenie_emu.alerts[0].integration_name == "alerts-kuvaq"


def test_api_management_keys_cannot_create_or_close_alerts(opsgenie_emu: OpsGenieEmulator) -> None:
    """Source: support.atlassian.com/opsgenie/docs/api-key-management (create, acknowledge, close and
    add-note are blocked for such keys); reading alerts and request status stays allowed."""
    api = alert_api(opsgenie_emu)  # API_KEY: an API-management key with every access right
    for call in (
        lambda: api.create_alert(create_alert_payload=opsgenie_sdk.CreateAlertPayload(message="m")),
        lambda: api.close_alert(identifier="x", identifier_type="alias"),
    ):
        with pytest.raises(opsgenie_sdk.exceptions.AuthenticationException) as refused:
            call()
        assert refused.value.status == 403
    key = integration_key(opsgenie_emu)
    created = alert_api(opsgenie_emu, key=key).create_alert(
        create_alert_payload=opsgenie_sdk.CreateAlertPayload(message="m", alias="x")
    )
    assert api.get_request_status(request_id=created.request_id).data.is_success is True
    assert api.get_alert(identifier="x", identifier_type="alias").data.status == "open"


def test_request_status_lags_like_a_busy_queue(opsgenie_emu: OpsGenieEmulator) -> None:
    opsgenie_emu.request_lag = 1
    api = alert_api(opsgenie_emu, key=integration_key(opsgenie_emu))
    request_id = api.create_alert(
        create_alert_payload=opsgenie_sdk.CreateAlertPayload(message="m")
    ).request_id
    with pytest.raises(opsgenie_sdk.ApiException) as exc:
        api.get_request_status(request_id=request_id)
    assert exc.value.status == 404
    assert api.get_request_status(request_id=request_id).data.is_success is True


def test_closing_an_unknown_alert_fails_asynchronously(opsgenie_emu: OpsGenieEmulator) -> None:
    api = alert_api(opsgenie_emu, key=integration_key(opsgenie_emu))
    closing = api.close_alert(identifier="nope", identifier_type="alias")
    status = api.get_request_status(request_id=closing.request_id).data
    assert (status.is_success, status.status) == (False, "Alert does not exist")


def test_alert_validation_and_disabled_integration(opsgenie_emu: OpsGenieEmulator) -> None:
    key = integration_key(opsgenie_emu)
    resp = http(opsgenie_emu, "POST", "/v2/alerts", key=key, json={"message": "", "priority": "P9"})
    assert resp.status_code == 422
    assert set(resp.json()["errors"]) == {"message", "priority"}
    created = create_integration(opsgenie_emu)  # created disabled
    refused = http(opsgenie_emu, "POST", "/v2/alerts", key=created["apiKey"], json={"message": "m"})
    assert refused.status_code == 401
    with pytest.raises(opsgenie_sdk.exceptions.AuthenticationException):
        alert_api(opsgenie_emu, key=created["apiKey"]).create_alert(
            create_alert_payload=opsgenie_sdk.CreateAlertPayload(message="m")
        )


def test_sdk_retries_429_then_gives_up_with_retry_error(opsgenie_emu: OpsGenieEmulator) -> None:
    opsgenie_emu.faults.add(Fault("ratelimit", path="^/v2/alerts$", times=1, retry_after=0))
    api = alert_api(opsgenie_emu, key=integration_key(opsgenie_emu), retries=2)
    api.create_alert(create_alert_payload=opsgenie_sdk.CreateAlertPayload(message="m"))
    assert len(opsgenie_emu.alerts) == 1

    opsgenie_emu.faults.add(Fault("status", path="^/v2/alerts$", status=503))
    with pytest.raises(tenacity.RetryError):
        api.create_alert(create_alert_payload=opsgenie_sdk.CreateAlertPayload(message="m"))
    assert opsgenie_emu.log.count("POST", "^/v2/alerts$") == 2 + 3


def test_rate_limit_shape(opsgenie_emu: OpsGenieEmulator) -> None:
    opsgenie_emu.faults.add(Fault("ratelimit", times=1, retry_after=1))
    resp = http(opsgenie_emu, "GET", "/v2/integrations")
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "1"
    assert resp.headers["X-RateLimit-State"] == "THROTTLED"
    assert "requestId" in resp.json()


def test_heartbeat_ping(opsgenie_emu: OpsGenieEmulator) -> None:
    opsgenie_emu.add_heartbeat("alertmanager-kuvaq")
    conf = opsgenie_sdk.Configuration()
    conf.host = opsgenie_emu.url
    conf.api_key = {"Authorization": API_KEY}
    conf.retry_count = 0
    heartbeats = opsgenie_sdk.HeartbeatApi(api_client=opsgenie_sdk.ApiClient(configuration=conf))
    assert heartbeats.ping(name="alertmanager-kuvaq").result == "PONG - Heartbeat received"
    assert opsgenie_emu.heartbeats["alertmanager-kuvaq"] == 1
    with pytest.raises(opsgenie_sdk.ApiException):
        heartbeats.ping(name="nope")


# What Alertmanager 0.25's opsgenie notifier sends (notify/opsgenie/opsgenie.go).
ALERTMANAGER_CREATE = {
    "alias": "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b",
    "message": "[FIRING:1] Watchdog (kuvaq)",
    "description": "Alerts Firing:\nLabels:\n - alertname = Watchdog\n",
    "details": {"alertname": "Watchdog", "severity": "none"},
    "source": "http://alertmanager.kuvaq.example",
    "responders": [{"name": TEAM, "type": "team"}],
    "tags": ["kuvaq", "watchdog"],
    "note": "",
    "priority": "P5",
    "entity": "kuvaq",
}


@pytest.mark.parametrize("prefix", ["", "/jsm/ops/integration"])
def test_accepts_alertmanager_opsgenie_notifier(opsgenie_emu: OpsGenieEmulator, prefix: str) -> None:
    integration = opsgenie_emu.add_integration("alertmanager-kuvaq", "Prometheus", team=TEAM)
    key = integration.api_key
    alias = ALERTMANAGER_CREATE["alias"]
    resp = http(opsgenie_emu, "POST", f"{prefix}/v2/alerts", key=key, json=ALERTMANAGER_CREATE)
    assert resp.status_code == 202
    assert resp.json()["result"] == "Request will be processed"
    alert = opsgenie_emu.alerts[0]
    assert (alert.api_key, alert.integration_id, alert.path) == (key, integration.id, f"{prefix}/v2/alerts")
    assert alert.details == {"alertname": "Watchdog", "severity": "none"}

    update = http(
        opsgenie_emu,
        "PUT",
        f"{prefix}/v2/alerts/{alias}/message",
        key=key,
        params={"identifierType": "alias"},
        json={"message": "[FIRING:2] Watchdog (kuvaq)"},
    )
    assert update.status_code == 202
    assert alert.message == "[FIRING:2] Watchdog (kuvaq)"

    close = http(
        opsgenie_emu,
        "POST",
        f"{prefix}/v2/alerts/{alias}/close",
        key=key,
        params={"identifierType": "alias"},
        json={"source": "http://alertmanager.kuvaq.example"},
    )
    assert close.status_code == 202
    assert alert.status == "closed"
    assert alert.close_requests == [{"source": "http://alertmanager.kuvaq.example", "api_key": key}]


def test_jsm_path_takes_integration_keys_only(opsgenie_emu: OpsGenieEmulator) -> None:
    resp = http(opsgenie_emu, "POST", "/jsm/ops/integration/v2/alerts", json={"message": "m"})
    assert resp.status_code == 401
