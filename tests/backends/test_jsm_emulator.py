"""The JSM Ops emulator's wire format (raw HTTP), as its fidelity table (sandbox/jsm.py) claims it."""

from __future__ import annotations

import pytest
import requests

from sandbox.jsm import JsmEmulator
from tests.fixtures.jsm import EMAIL, TEAM, TOKEN


@pytest.fixture
def emu(jsm_emu: JsmEmulator) -> JsmEmulator:
    jsm_emu.add_user(EMAIL, TOKEN)
    jsm_emu.add_team(TEAM)
    return jsm_emu


def api(emu: JsmEmulator, path: str) -> str:
    return f"{emu.url}/jsm/ops/api/{emu.cloud_id}/v1{path}"


def test_tenant_info_needs_no_credentials(emu: JsmEmulator) -> None:
    assert requests.get(f"{emu.url}/_edge/tenant_info", timeout=10).json() == {"cloudId": emu.cloud_id}


def test_basic_auth_and_cloud_id_are_enforced(emu: JsmEmulator) -> None:
    assert requests.get(api(emu, "/integrations"), timeout=10).status_code == 401
    assert requests.get(api(emu, "/integrations"), auth=(EMAIL, "wrong"), timeout=10).status_code == 401
    other = f"{emu.url}/jsm/ops/api/not-the-cloud/v1/integrations"
    assert requests.get(other, auth=(EMAIL, TOKEN), timeout=10).status_code == 404
    body = requests.get(api(emu, "/integrations"), timeout=10).json()
    assert set(body) == {"errorMessages", "errors"}


def test_offset_size_pages_with_relative_links_next(emu: JsmEmulator) -> None:
    for _ in range(3):
        emu.add_integration("alertmanager-kuvaq", TEAM)
    page = requests.get(api(emu, "/integrations"), params={"size": 2}, auth=(EMAIL, TOKEN), timeout=10).json()
    assert len(page["values"]) == 2 and page["links"]["next"] == "/v1/integrations?offset=2&size=2"
    last = requests.get(api(emu, page["links"]["next"][3:]), auth=(EMAIL, TOKEN), timeout=10).json()
    assert len(last["values"]) == 1 and last["links"] == {}
    assert {"id", "name", "type", "enabled", "teamId"} <= set(page["values"][0])


def test_create_returns_the_key_once_and_validates(emu: JsmEmulator) -> None:
    team_id = emu.add_team(TEAM)
    bad = requests.post(api(emu, "/integrations"), json={"name": ""}, auth=(EMAIL, TOKEN), timeout=10)
    assert bad.status_code == 400 and {"name", "type"} <= set(bad.json()["errors"])
    body = {"name": "alertmanager-kuvaq", "type": "API", "teamId": team_id}
    created = requests.post(api(emu, "/integrations"), json=body, auth=(EMAIL, TOKEN), timeout=10).json()
    assert created["apiKey"] and created["enabled"] is False
    fetched = requests.get(api(emu, f"/integrations/{created['id']}"), auth=(EMAIL, TOKEN), timeout=10).json()
    assert "apiKey" not in fetched


def test_heartbeat_ping_by_name_and_ingestion_with_genie_key(emu: JsmEmulator) -> None:
    team_id = emu.add_team(TEAM)
    hb = {"name": "kuvaq-alertmanager", "interval": 10, "intervalUnit": "minutes", "enabled": True}
    created = requests.post(
        api(emu, f"/teams/{team_id}/heartbeats"), json=hb, auth=(EMAIL, TOKEN), timeout=10
    )
    assert created.status_code == 201 and created.json()["status"] == "Unknown"
    ping = api(emu, f"/teams/{team_id}/heartbeats/ping")
    for send in (requests.get, requests.post):
        assert (
            send(ping, params={"name": "kuvaq-alertmanager"}, auth=(EMAIL, TOKEN), timeout=10).status_code
            == 202
        )
    listed = requests.get(api(emu, f"/teams/{team_id}/heartbeats"), auth=(EMAIL, TOKEN), timeout=10).json()
    assert listed["values"][0]["status"] == "Responsive"

    integration = emu.add_integration("alertmanager-kuvaq", TEAM)
    url = f"{emu.url}/jsm/ops/integration/v2/alerts"
    headers = {"Authorization": f"GenieKey {integration.api_key}"}
    accepted = requests.post(url, json={"message": "m", "alias": "a"}, headers=headers, timeout=10)
    assert accepted.status_code == 202 and {"result", "took", "requestId"} <= set(accepted.json())
    assert requests.post(url, json={"message": "m"}, auth=(EMAIL, TOKEN), timeout=10).status_code == 401
