"""The OpsGenie client against the OpsGenie emulator: typed results, error mapping, bounded retries."""

from __future__ import annotations

import pytest

from bootstrap import errors
from bootstrap.clients import opsgenie
from sandbox.httpemu import Fault
from sandbox.opsgenie import OpsGenieEmulator
from tests.fixtures.opsgenie import API_KEY, TEAM

NAME = "alertmanager-kuvaq"


def make(emu: OpsGenieEmulator, key: str = API_KEY) -> opsgenie.OpsGenieClient:
    return opsgenie.OpsGenieClient(emu.url, key, backoff=0)


def test_urls() -> None:
    assert opsgenie.api_url_for("opsgenie", "us") == "https://api.opsgenie.com"
    assert opsgenie.api_url_for("opsgenie", "eu") == "https://api.eu.opsgenie.com"
    assert opsgenie.alertmanager_api_url("opsgenie", "eu") == "https://api.eu.opsgenie.com/"
    assert opsgenie.alertmanager_api_url("jsm", "us") == "https://api.atlassian.com/jsm/ops/integration/"


def test_create_find_enable_delete(opsgenie_emu: OpsGenieEmulator) -> None:
    client = make(opsgenie_emu)
    assert client.find_integrations(NAME, "API", TEAM) == []
    created = client.create_integration(NAME, "API", TEAM)
    assert created.api_key == opsgenie_emu.integrations[created.id].api_key
    assert created.enabled is False
    assert created.api_key not in repr(created)
    assert created.api_key not in str(created)

    client.create_integration("someone-else", "API", TEAM)
    client.create_integration(NAME, "Prometheus", TEAM)
    team_id = opsgenie_emu.teams[TEAM].id
    assert client.find_integrations(NAME, "API", TEAM) == [
        opsgenie.Integration(created.id, NAME, "API", False, team_id)
    ]
    client.enable_integration(created.id)
    fetched = client.get_integration(created.id)
    assert fetched is not None and fetched.enabled and fetched.team_id == team_id

    client.delete_integration(created.id)
    client.delete_integration(created.id)  # already gone: fine
    assert client.get_integration(created.id) is None


def test_unknown_team_names_alerting_team(opsgenie_emu: OpsGenieEmulator) -> None:
    client = make(opsgenie_emu)
    with pytest.raises(errors.PermanentError, match=r"alerting\.team"):
        client.find_integrations(NAME, "API", "no-such-team")
    with pytest.raises(errors.PermanentError, match=r"alerting\.team"):
        client.create_integration(NAME, "API", "no-such-team")


def test_bad_key_and_missing_rights_are_auth_errors(opsgenie_emu: OpsGenieEmulator) -> None:
    secret = "og-wrong-key-5f2a"
    with pytest.raises(errors.AuthError) as exc:
        make(opsgenie_emu, secret).find_integrations(NAME, "API", TEAM)
    assert "alerting.api_key" in str(exc.value)
    assert secret not in str(exc.value)
    assert secret not in repr(make(opsgenie_emu, secret))

    opsgenie_emu.add_api_key("og-read-only", rights=("read",))
    with pytest.raises(errors.AuthError, match="Configuration access") as exc:
        make(opsgenie_emu, "og-read-only").create_integration(NAME, "API", TEAM)
    assert "og-read-only" not in str(exc.value)

    created = make(opsgenie_emu).create_integration(NAME, "API", TEAM)
    make(opsgenie_emu).enable_integration(created.id)
    with pytest.raises(errors.AuthError, match="integration's key"):
        make(opsgenie_emu, created.api_key).find_integrations(NAME, "API", TEAM)


def test_validation_error_is_permanent(opsgenie_emu: OpsGenieEmulator) -> None:
    with pytest.raises(errors.PermanentError, match=r"422.*type") as exc:
        make(opsgenie_emu).create_integration(NAME, "Bogus", TEAM)
    assert not isinstance(exc.value, errors.RetryableError)


def test_recovers_from_429_storm_and_5xx(opsgenie_emu: OpsGenieEmulator) -> None:
    opsgenie_emu.faults.add(Fault("ratelimit", path="/v2/integrations", times=3, retry_after=0))
    created = make(opsgenie_emu).create_integration(NAME, "API", TEAM)  # 429 is safe to repeat
    assert len(opsgenie_emu.integrations) == 1
    opsgenie_emu.faults.add(Fault("status", path="/enable", status=503, times=2))
    make(opsgenie_emu).enable_integration(created.id)
    opsgenie_emu.faults.add(Fault("reset", method="GET", times=1))
    assert make(opsgenie_emu).get_integration(created.id) is not None


def test_persistent_429_is_retryable_with_delay(opsgenie_emu: OpsGenieEmulator) -> None:
    opsgenie_emu.faults.add(Fault("ratelimit", path="/v2/integrations", retry_after=0))
    with pytest.raises(errors.RetryableError) as exc:
        make(opsgenie_emu).find_integrations(NAME, "API", TEAM)
    assert exc.value.delay == 0
    assert opsgenie_emu.log.count("GET", "/v2/integrations") == 4

    opsgenie_emu.faults.clear()
    opsgenie_emu.log.clear()
    opsgenie_emu.faults.add(Fault("ratelimit", path="/v2/integrations", retry_after=300))
    with pytest.raises(errors.RetryableError) as exc:
        make(opsgenie_emu).find_integrations(NAME, "API", TEAM)
    assert exc.value.delay == 300  # too long to wait here: handed to the engine
    assert opsgenie_emu.log.count("GET", "/v2/integrations") == 1


def test_create_is_not_repeated_after_a_5xx(opsgenie_emu: OpsGenieEmulator) -> None:
    opsgenie_emu.faults.add(Fault("status", method="POST", path="^/v2/integrations$", status=502, times=1))
    with pytest.raises(errors.RetryableError, match="server error 502"):
        make(opsgenie_emu).create_integration(NAME, "API", TEAM)
    assert opsgenie_emu.log.count("POST", "^/v2/integrations$") == 1


def test_unreachable_is_retryable(opsgenie_emu: OpsGenieEmulator) -> None:
    url = opsgenie_emu.url
    opsgenie_emu.stop()
    with pytest.raises(errors.RetryableError, match="cannot reach OpsGenie") as exc:
        opsgenie.OpsGenieClient(url, API_KEY, backoff=0, retries=1).find_integrations(NAME, "API", TEAM)
    assert API_KEY not in str(exc.value)


def test_test_alert_roundtrip_with_the_integration_key(opsgenie_emu: OpsGenieEmulator) -> None:
    client = make(opsgenie_emu)
    created = client.create_integration(NAME, "API", TEAM)
    client.enable_integration(created.id)
    opsgenie_emu.request_lag = 1  # the first status poll finds the request still queued
    request_id = client.send_test_alert(created.api_key, "bootstrap-test-kuvaq", "bootstrap test alert")
    assert client.alert_request_succeeded(request_id) is False
    assert client.alert_request_succeeded(request_id) is True
    alert = opsgenie_emu.alerts[0]
    assert (alert.api_key, alert.integration_id, alert.alias) == (
        created.api_key,
        created.id,
        "bootstrap-test-kuvaq",
    )
    client.close_alert(created.api_key, "bootstrap-test-kuvaq")
    assert alert.status == "closed" and alert.close_requests[0]["api_key"] == created.api_key


def test_an_api_management_key_cannot_send_or_close_alerts(opsgenie_emu: OpsGenieEmulator) -> None:
    """support.atlassian.com/opsgenie/docs/api-key-management: such keys are blocked for alert actions."""
    client = make(opsgenie_emu)
    created = client.create_integration(NAME, "API", TEAM)
    client.enable_integration(created.id)
    with pytest.raises(errors.AuthError, match="integration") as sent:
        client.send_test_alert(API_KEY, "a", "m")
    assert API_KEY not in str(sent.value)
    client.send_test_alert(created.api_key, "a", "m")
    with pytest.raises(errors.AuthError):
        client.close_alert(API_KEY, "a")
    assert opsgenie_emu.alerts[0].status == "open"
    client.close_alert(created.api_key, "a")
    assert opsgenie_emu.alerts[0].status == "closed"


def test_test_alert_through_the_jsm_path(opsgenie_emu: OpsGenieEmulator) -> None:
    integration = opsgenie_emu.add_integration("jsm-alertmanager", team=TEAM)
    client = opsgenie.OpsGenieClient(
        opsgenie_emu.url + "/jsm/ops/integration", integration.api_key, backoff=0
    )
    request_id = client.send_test_alert(integration.api_key, "bootstrap-test-kuvaq", "hello")
    assert client.alert_request_succeeded(request_id) is True
    assert opsgenie_emu.alerts[0].path == "/jsm/ops/integration/v2/alerts"


def test_test_alert_errors(opsgenie_emu: OpsGenieEmulator) -> None:
    client = make(opsgenie_emu)
    created = client.create_integration(NAME, "API", TEAM)  # still disabled
    with pytest.raises(errors.AuthError, match="enabled") as exc:
        client.send_test_alert(created.api_key, "a", "m")
    assert created.api_key not in str(exc.value)

    client.enable_integration(created.id)
    opsgenie_emu.faults.add(Fault("ratelimit", path="^/v2/alerts$", retry_after=0))
    with pytest.raises(errors.RetryableError, match="rate-limited") as limited:
        client.send_test_alert(created.api_key, "a", "m")
    assert limited.value.delay == 0
    assert opsgenie_emu.log.count("POST", "^/v2/alerts$") == 1 + 4  # the disabled try + 1 + 3 retries

    opsgenie_emu.faults.clear()
    opsgenie_emu.faults.add(Fault("status", path="^/v2/alerts$", status=500, times=2))
    assert client.send_test_alert(created.api_key, "a", "m")  # recovered inside the SDK's bounded retry


def test_team_scoped_api_keys_reach_only_their_team(opsgenie_emu: OpsGenieEmulator) -> None:
    """Keys restricted to a team manage only that team's integrations
    (support.atlassian.com/opsgenie/docs/api-key-management); another team's are refused."""
    opsgenie_emu.add_team("other-team")
    opsgenie_emu.add_api_key("og-team-key", team=TEAM)
    own = make(opsgenie_emu, "og-team-key").create_integration(NAME, "API", TEAM)
    assert [i.id for i in make(opsgenie_emu, "og-team-key").find_integrations(NAME, "API", TEAM)] == [own.id]
    with pytest.raises(errors.AuthError, match="another team") as exc:
        make(opsgenie_emu, "og-team-key").create_integration(NAME, "API", "other-team")
    assert "og-team-key" not in str(exc.value)


def test_heartbeat_create_find_ping_delete(opsgenie_emu: OpsGenieEmulator) -> None:
    """Heartbeat API through opsgenie-sdk; the ping webhook uses an integration's key, as the docs allow."""
    import requests

    client = make(opsgenie_emu)
    assert client.find_heartbeat("kuvaq-alertmanager", TEAM) is None
    created = client.create_heartbeat("kuvaq-alertmanager", TEAM, 10)
    assert created.enabled and not created.pinged
    assert opsgenie_emu.heartbeat_settings["kuvaq-alertmanager"]["ownerTeam"] == {"name": TEAM}
    integration = client.create_integration(NAME, "API", TEAM)
    client.enable_integration(integration.id)
    hook = client.heartbeat_webhook("kuvaq-alertmanager", TEAM, integration.api_key)
    auth = hook["http_config"]["authorization"]
    headers = {"Authorization": f"{auth['type']} {auth['credentials']}"}
    assert requests.post(hook["url"], headers=headers, timeout=10).status_code == 202
    found = client.find_heartbeat("kuvaq-alertmanager", TEAM)
    assert found is not None and found.pinged and not found.expired and found.interval_minutes == 10
    client.delete_heartbeat("kuvaq-alertmanager", TEAM)
    client.delete_heartbeat("kuvaq-alertmanager", TEAM)  # gone already: fine
    assert client.find_heartbeat("kuvaq-alertmanager", TEAM) is None
