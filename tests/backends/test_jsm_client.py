"""The JSM Ops adapter against the JSM emulator over real HTTP.

Besides the happy paths, each belief the fidelity table (sandbox/jsm.py) marks
unverified is flipped here to show what the tool does if it is wrong.
"""

from __future__ import annotations

import pytest
import requests

from bootstrap import errors
from bootstrap.clients import budget, jsm
from sandbox.httpemu import Fault
from sandbox.jsm import JsmEmulator
from tests.fixtures.jsm import EMAIL, TEAM, TOKEN

NAME = "alertmanager-kuvaq"


@pytest.fixture
def emu(jsm_emu: JsmEmulator) -> JsmEmulator:
    jsm_emu.add_user(EMAIL, TOKEN)
    jsm_emu.add_team(TEAM)
    return jsm_emu


def make(emu: JsmEmulator, email: str = EMAIL, token: str = TOKEN) -> jsm.JsmClient:
    return jsm.JsmClient(emu.url, email, token, api_url=emu.url, backoff=0)


def test_site_and_ingestion_urls() -> None:
    assert jsm.site_url("kuvaq") == "https://kuvaq.atlassian.net"
    assert jsm.site_url("kuvaq.atlassian.net") == "https://kuvaq.atlassian.net"
    assert jsm.site_url("http://127.0.0.1:9/") == "http://127.0.0.1:9"
    assert jsm.ingestion_url() == "https://api.atlassian.com/jsm/ops/integration/"


def test_cloud_id_comes_from_tenant_info_once(emu: JsmEmulator) -> None:
    client = make(emu)
    assert client.cloud_id() == emu.cloud_id
    client.team_id(TEAM)
    client.find_integrations(NAME, "API", TEAM)
    assert emu.log.count("GET", "/_edge/tenant_info") == 1
    assert all(f"/jsm/ops/api/{emu.cloud_id}/v1/" in c.path for c in emu.log.calls[1:])


def test_create_find_enable_delete(emu: JsmEmulator) -> None:
    client = make(emu)
    assert client.find_integrations(NAME, "API", TEAM) == []
    created = client.create_integration(NAME, "API", TEAM)
    assert created.api_key == emu.integrations[created.id].api_key
    assert created.api_key not in repr(created)
    client.create_integration("someone-else", "API", TEAM)
    found = client.find_integrations(NAME, "API", TEAM)
    assert [i.id for i in found] == [created.id] and not found[0].enabled
    client.enable_integration(created.id)
    assert emu.integrations[created.id].enabled
    client.delete_integration(created.id)
    client.delete_integration(created.id)  # gone already: fine
    assert client.get_integration(created.id) is None


def test_lists_follow_links_next_across_pages(emu: JsmEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsm, "PAGE_SIZE", 2)
    for _ in range(5):
        emu.add_integration(NAME, TEAM, enabled=True)
    client = make(emu)
    assert len(client.find_integrations(NAME, "API", TEAM)) == 5
    assert emu.log.count("GET", r"/v1/integrations$") == 3


def test_unknown_team_names_alerting_team_and_the_teams_seen(emu: JsmEmulator) -> None:
    with pytest.raises(errors.PermanentError, match=r"alerting\.team.*teams seen: kuvaq-sre"):
        make(emu).find_integrations(NAME, "API", "no-such-team")


def test_bad_token_names_the_fields_and_where_to_make_one(emu: JsmEmulator) -> None:
    secret = "ATATT-wrong-token-4411"
    with pytest.raises(errors.AuthError) as caught:
        make(emu, token=secret).find_integrations(NAME, "API", TEAM)
    assert "alerting.jsm.api_token" in str(caught.value) and "id.atlassian.com" in str(caught.value)
    assert secret not in str(caught.value)


def test_missing_role_names_the_scope(emu: JsmEmulator) -> None:
    emu.add_user("viewer@kuvaq.example", "viewer-token", admin=False)
    client = make(emu, email="viewer@kuvaq.example", token="viewer-token")
    assert client.find_integrations(NAME, "API", TEAM) == []
    with pytest.raises(errors.AuthError, match="write:ops-config:jira-service-management"):
        client.create_integration(NAME, "API", TEAM)


def test_429_honours_retry_after_and_5xx_is_bounded(emu: JsmEmulator) -> None:
    client = make(emu)
    client.cloud_id()
    emu.faults.add(Fault("ratelimit", path="/v1/teams", times=1, retry_after=0))
    assert client.team_id(TEAM)
    emu.faults.add(Fault("status", path="/v1/integrations", status=503))
    with pytest.raises(errors.RetryableError, match="server error 503"):
        client.find_integrations(NAME, "API", TEAM)
    assert emu.log.count("GET", "/v1/integrations") == 4  # 1 + 3 retries


def test_create_is_not_repeated_after_a_5xx(emu: JsmEmulator) -> None:
    client = make(emu)
    client.team_id(TEAM)
    emu.faults.add(Fault("status", method="POST", path="/v1/integrations", status=502))
    with pytest.raises(errors.RetryableError):
        client.create_integration(NAME, "API", TEAM)
    assert emu.log.count("POST", "/v1/integrations") == 1


def test_a_long_retry_after_is_not_slept_through(emu: JsmEmulator) -> None:
    client = make(emu)
    emu.faults.add(Fault("ratelimit", path="/_edge", retry_after=3600))
    with pytest.raises(errors.RetryableError) as caught:
        client.cloud_id()
    assert caught.value.delay == 3600


def test_heartbeat_create_find_ping_status_delete(emu: JsmEmulator) -> None:
    client = make(emu)
    created = client.create_heartbeat("kuvaq-alertmanager", TEAM, 10)
    assert created.enabled and created.interval_minutes == 10 and not created.pinged
    url = client.heartbeat_url("kuvaq-alertmanager", TEAM)
    assert requests.post(url, auth=(EMAIL, TOKEN), timeout=10).status_code == 202
    found = client.find_heartbeat("kuvaq-alertmanager", TEAM)
    assert found is not None and found.pinged and not found.expired
    record = emu.heartbeat("kuvaq-alertmanager")
    assert record is not None
    emu.clock = lambda: record.created + 3600
    expired = client.find_heartbeat("kuvaq-alertmanager", TEAM)
    assert expired is not None and expired.expired
    client.delete_heartbeat("kuvaq-alertmanager", TEAM)
    client.delete_heartbeat("kuvaq-alertmanager", TEAM)
    assert client.find_heartbeat("kuvaq-alertmanager", TEAM) is None


def test_test_alert_with_the_integration_key(emu: JsmEmulator) -> None:
    client = make(emu)
    created = client.create_integration(NAME, "API", TEAM)
    with pytest.raises(errors.AuthError, match="disabled"):
        client.send_test_alert(created.api_key, "probe", "hello")
    client.enable_integration(created.id)
    client.send_test_alert(created.api_key, "probe", "hello")
    client.close_test_alert(created.api_key, "probe")
    assert [(a.alias, a.status, a.integration_id) for a in emu.alerts] == [("probe", "closed", created.id)]
    with pytest.raises(errors.AuthError, match="integration key"):
        client.send_test_alert("not-a-key", "probe", "hello")


def test_calls_draw_on_the_jsm_budget(emu: JsmEmulator) -> None:
    before = budget.budget("jsm")
    make(emu).cloud_id()
    assert budget.budget("jsm") is before and budget.DEFAULT_RATES["jsm"] > 0


# -- beliefs marked unverified, flipped --------------------------------------------
def test_if_patch_with_enabled_alone_is_ignored_enable_says_so(emu: JsmEmulator) -> None:
    emu.partial_patch_ignored = True
    client = make(emu)
    created = client.create_integration(NAME, "API", TEAM)
    with pytest.raises(errors.PermanentError, match=r"did not enable.*Operations → Integrations"):
        client.enable_integration(created.id)


def test_if_new_integrations_start_enabled_nothing_breaks(emu: JsmEmulator) -> None:
    emu.created_enabled = True
    client = make(emu)
    created = client.create_integration(NAME, "API", TEAM)
    assert created.enabled
    client.enable_integration(created.id)


def test_if_error_bodies_have_another_shape_messages_still_say_what_to_do(emu: JsmEmulator) -> None:
    emu.rate_limited = lambda rule: __import__("sandbox.httpemu").httpemu.Response(  # type: ignore[method-assign]
        401, raw=b"<html>nope</html>", headers={"Content-Type": "text/html"}
    )
    emu.faults.add(Fault("ratelimit", path="/v1/teams"))
    with pytest.raises(errors.AuthError, match=r"alerting\.jsm\.email"):
        make(emu).team_id(TEAM)


def test_if_the_team_list_has_other_field_names_the_error_names_alerting_team(emu: JsmEmulator) -> None:
    emu.teams.clear()  # what the adapter sees if teamName were called something else: no match
    with pytest.raises(errors.PermanentError, match=r"alerting\.team"):
        make(emu).team_id(TEAM)


def test_if_tenant_info_has_no_cloud_id_the_site_is_named(emu: JsmEmulator) -> None:
    emu.routes = [r for r in emu.routes if "tenant_info" not in r[1].pattern]
    with pytest.raises(errors.PermanentError, match=r"alerting\.jsm\.site"):
        make(emu).cloud_id()
