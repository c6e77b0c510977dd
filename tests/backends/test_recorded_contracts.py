"""Contract tests: answers the real services gave (their recorded shapes) against our client and emulators.

The shapes live in tests/fixtures/recorded/*.json, derived from recordings of the
real APIs (PyGithub's tests/ReplayData) and from python-slack-sdk's fixtures.
Two directions, for each endpoint the steps use:

* the emulator, asked the same request, answers with the same status, the same
  key headers and at least the recorded body keys (it may know newer fields);
* our client, fed an answer that has *only* the recorded keys, still works: it
  does not lean on a field the emulator invented.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from bootstrap import errors
from bootstrap.clients import github, slack
from sandbox.github import GitHubEmulator
from sandbox.github_seed import ADMIN_TOKEN
from sandbox.httpemu import Fault, Request, Response
from sandbox.slack import SlackEmulator
from tests.fixtures.slack import BOT_TOKEN

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded"
GITHUB = json.loads((RECORDED / "github.json").read_text())
SLACK = json.loads((RECORDED / "slack.json").read_text())


def public_key() -> str:
    pub = ed25519.Ed25519PrivateKey.generate().public_key()
    return pub.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def same_shape(name: str, recorded: dict[str, Any], resp: requests.Response) -> None:
    assert resp.status_code == recorded["status"], (name, resp.status_code, resp.text)
    for header in recorded["headers"]:
        assert header in {h.lower() for h in resp.headers}, (name, header)
    for header, value in recorded.get("header_values", {}).items():
        assert resp.headers[header] == value, (name, header)
    body = resp.json()
    if "items" in recorded:
        assert body and all(set(recorded["items"]) <= set(item) for item in body), (name, body)
        return
    assert set(recorded["body"]) <= set(body), (name, sorted(body))
    for nested in ("object",):
        if nested in recorded:
            assert set(recorded[nested]) <= set(body[nested]), (name, nested)
    if "tree_items" in recorded:
        assert all(set(recorded["tree_items"]) <= set(e) for e in body["tree"]), name
    if "message_prefix" in recorded:
        assert body["message"].lower().startswith(recorded["message_prefix"]), (name, body["message"])


def test_github_emulator_answers_in_the_recorded_shapes(github_emu: GitHubEmulator) -> None:
    s = requests.Session()
    s.headers["Authorization"] = f"token {ADMIN_TOKEN}"
    repo = f"{github_emu.url}/repos/acme/infra"
    head = s.get(f"{repo}/git/ref/heads/main").json()["object"]["sha"]
    tree = [{"path": "Foobar.txt", "mode": "100644", "type": "blob", "content": "File created\n"}]
    answers = {
        "create_deploy_key": s.post(
            f"{repo}/keys", json={"title": "t", "key": public_key(), "read_only": True}
        ),
        "list_deploy_keys": s.get(f"{repo}/keys"),
        "create_blob": s.post(f"{repo}/git/blobs", json={"content": "Blob\n", "encoding": "utf-8"}),
        "create_tree": s.post(f"{repo}/git/trees", json={"tree": tree}),
        "create_ref": s.post(f"{repo}/git/refs", json={"ref": "refs/heads/recorded", "sha": head}),
        "update_ref": s.patch(f"{repo}/git/refs/heads/recorded", json={"sha": head}),
    }
    github_emu.set_rate_limit(ADMIN_TOKEN, 0, time.time() + 600)
    answers["rate_limit_exhausted"] = s.get(f"{github_emu.url}/user")
    assert set(answers) == {k for k in GITHUB if not k.startswith("_")}, "every recorded shape is checked"
    for name, resp in answers.items():
        same_shape(name, GITHUB[name], resp)


def only(keys: list[str], values: dict[str, Any]) -> dict[str, Any]:
    return {k: values[k] for k in keys}


def test_github_client_works_on_answers_with_only_the_recorded_fields(github_emu: GitHubEmulator) -> None:
    """The emulator's answers carry today's fields; GitHub has sent less. Our client must not care."""
    key = public_key()
    url = f"{github_emu.url}/repos/acme/infra/keys/7"
    values = {"id": 7, "key": key, "read_only": True, "title": "argocd-acme", "url": url, "verified": True}
    created, listed = GITHUB["create_deploy_key"], GITHUB["list_deploy_keys"]

    def create(req: Request) -> Response:
        return Response(created["status"], only(created["body"], values), {"location": url})

    def list_keys(req: Request) -> Response:
        return Response(listed["status"], [only(listed["items"], values | {"read_only": True})])

    github_emu.routes[:0] = [
        ("POST", re.compile(r"^/repos/acme/infra/keys/?$"), create),
        ("GET", re.compile(r"^/repos/acme/infra/keys/?$"), list_keys),
        ("GET", re.compile(r"^/repos/acme/infra/keys/7$"), create),  # the key's own url, as recorded
    ]
    client = github.GitHubClient(github_emu.url, ADMIN_TOKEN, retries=0)
    made = client.add_deploy_key("acme/infra", "argocd-acme", key)
    assert (made.id, made.title, made.read_only) == (7, "argocd-acme", True)
    [seen] = client.list_deploy_keys("acme/infra")
    assert seen.fingerprint == github.fingerprint(key) and seen.read_only is True
    # the recorded list lacks read_only: PyGithub completes the key from its url (one more call)
    assert github_emu.log.count("GET", r"/keys/7$") == 1

    limited = GITHUB["rate_limit_exhausted"]

    def exhausted(req: Request) -> Response:
        # the recorded answer: 403, remaining 0, no reset header, a message in the old wording
        headers = {"x-ratelimit-limit": "60", "x-ratelimit-remaining": "0"}
        return Response(limited["status"], {"message": "API Rate Limit Exceeded for 192.0.2.1"}, headers)

    github_emu.routes[:0] = [("GET", re.compile(r"^/repos/acme/infra/?$"), exhausted)]
    with pytest.raises(errors.RetryableError, match="rate limit"):
        client.check_repo_admin("acme/infra")


def test_slack_emulator_and_client_agree_with_the_sdk_fixture_shapes(slack_emu: SlackEmulator) -> None:
    for n in range(3):
        slack_emu.add_channel(f"c-{n}")
    page = requests.post(
        f"{slack_emu.url}/api/conversations.list",
        headers={"Authorization": f"Bearer {BOT_TOKEN}"},
        data={"limit": "2"},
        timeout=30,
    )
    shape = SLACK["conversations_list_page"]
    body = page.json()
    assert set(shape["body"]) <= set(body) and set(shape["response_metadata"]) <= set(
        body["response_metadata"]
    )
    assert all(set(shape["channel_item"]) <= set(c) for c in body["channels"])
    refused = requests.post(
        f"{slack_emu.url}/api/conversations.unarchive",
        headers={"Authorization": f"Bearer {BOT_TOKEN}"},
        data={"channel": "CNOPE"},
        timeout=30,
    ).json()
    assert set(SLACK["error"]["body"]) <= set(refused) and refused["ok"] is SLACK["error"]["ok"]
    slack_emu.faults.add(Fault("ratelimit", nth=1, retry_after=3))
    limited = requests.post(
        f"{slack_emu.url}/api/auth.test", headers={"Authorization": f"Bearer {BOT_TOKEN}"}, timeout=30
    )
    assert limited.status_code == SLACK["ratelimited"]["status"]
    assert set(SLACK["ratelimited"]["headers"]) <= {h.lower() for h in limited.headers}
    # our client follows the cursor through pages of that shape
    client = slack.SlackClient(BOT_TOKEN, base_url=slack_emu.url + "/api/", backoff=0)
    assert client.find_channel("c-2") is not None
