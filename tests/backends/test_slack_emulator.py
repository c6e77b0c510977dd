"""Realism tests: the Slack emulator driven by the real slack_sdk (and by the
exact JSON Alertmanager's slack notifier posts)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import RateLimitErrorRetryHandler

from sandbox.httpemu import Fault
from sandbox.slack import SlackEmulator
from tests.fixtures.slack import BOT_TOKEN


def client(emu: SlackEmulator, token: str = BOT_TOKEN, **kwargs: Any) -> WebClient:
    return WebClient(token=token, base_url=emu.url + "/api/", **kwargs)


def error_of(exc: pytest.ExceptionInfo[SlackApiError]) -> dict[str, Any]:
    data: dict[str, Any] = exc.value.response.data
    return data


def test_auth_test_identifies_the_bot_and_reports_scopes(slack_emu: SlackEmulator) -> None:
    resp = client(slack_emu).auth_test()
    assert resp["user_id"] == slack_emu.bot_user_id
    assert resp["bot_id"] == slack_emu.bot_id
    assert resp["team"] == "Kuvaq"
    assert resp["url"] == "https://kuvaq.slack.com/"
    assert "chat:write" in resp.headers["x-oauth-scopes"].split(",")


def test_bad_credentials(slack_emu: SlackEmulator) -> None:
    with pytest.raises(SlackApiError) as exc:
        client(slack_emu, token="xoxb-unknown").auth_test()
    assert exc.value.response.status_code == 200
    assert error_of(exc) == {"ok": False, "error": "invalid_auth"}

    with pytest.raises(SlackApiError) as exc:
        WebClient(base_url=slack_emu.url + "/api/").auth_test()
    assert error_of(exc)["error"] == "not_authed"

    slack_emu.add_token("xoxb-old", ["chat:write"])
    slack_emu.revoke_token("xoxb-old")
    with pytest.raises(SlackApiError) as exc:
        client(slack_emu, token="xoxb-old").auth_test()
    assert error_of(exc)["error"] == "token_revoked"


def test_missing_scope_names_needed_and_provided(slack_emu: SlackEmulator) -> None:
    slack_emu.add_token("xoxb-readonly", ["channels:read"])
    with pytest.raises(SlackApiError) as exc:
        client(slack_emu, token="xoxb-readonly").conversations_create(name="alerts-kuvaq")
    data = error_of(exc)
    assert data["error"] == "missing_scope"
    assert data["needed"] == "channels:manage"
    assert data["provided"] == "channels:read"
    assert exc.value.response.headers["x-accepted-oauth-scopes"] == "channels:manage"

    with pytest.raises(SlackApiError) as exc:
        client(slack_emu, token="xoxb-readonly").conversations_create(name="alerts-kuvaq", is_private=True)
    assert error_of(exc)["needed"] == "groups:write"

    with pytest.raises(SlackApiError) as exc:
        client(slack_emu, token="xoxb-readonly").conversations_list(types="public_channel,private_channel")
    assert error_of(exc)["needed"] == "groups:read"


def test_create_channel_and_name_rules(slack_emu: SlackEmulator) -> None:
    web = client(slack_emu)
    channel = web.conversations_create(name="alerts-kuvaq")["channel"]
    assert channel["id"].startswith("C")
    assert channel["name"] == "alerts-kuvaq"
    assert channel["is_member"] is True
    assert channel["is_private"] is False
    assert slack_emu.channel_by_name("alerts-kuvaq") is not None

    for name, code in [
        ("", "invalid_name_required"),
        ("Alerts", "invalid_name_specials"),
        ("alerts kuvaq", "invalid_name_specials"),
        ("a" * 81, "invalid_name_maxlength"),
        ("alerts-kuvaq", "name_taken"),
    ]:
        with pytest.raises(SlackApiError) as exc:
            web.conversations_create(name=name)
        assert error_of(exc)["error"] == code, name
    web.conversations_create(name="a" * 80)


def test_name_taken_covers_archived_and_invisible_private_channels(slack_emu: SlackEmulator) -> None:
    slack_emu.add_channel("old-alerts", archived=True, members=["U0001"])
    slack_emu.add_channel("secret", is_private=True, members=["U0001"])
    web = client(slack_emu)
    listed = {c["name"] for c in web.conversations_list(types="public_channel,private_channel")["channels"]}
    assert listed == {"old-alerts"}
    for name in ("old-alerts", "secret"):
        with pytest.raises(SlackApiError) as exc:
            web.conversations_create(name=name, is_private=True)
        assert error_of(exc)["error"] == "name_taken"
    secret = slack_emu.channel_by_name("secret")
    assert secret is not None
    with pytest.raises(SlackApiError) as exc:
        web.conversations_info(channel=secret.id)
    assert error_of(exc)["error"] == "channel_not_found"

    slack_emu.add_channel("visible-private", is_private=True, members=[slack_emu.bot_user_id])
    listed = {c["name"] for c in web.conversations_list(types="private_channel")["channels"]}
    assert listed == {"visible-private"}
    active = web.conversations_list(types="public_channel", exclude_archived=True)["channels"]
    assert active == []


def test_cursor_pagination_through_sdk_iteration(slack_emu: SlackEmulator) -> None:
    names = [f"chan-{n}" for n in range(7)]
    for name in names:
        slack_emu.add_channel(name)
    # The SDK's iterator yields the same response object, refreshed per page: copy each page's data.
    pages = [dict(page.data) for page in client(slack_emu).conversations_list(limit=3)]
    assert [len(p["channels"]) for p in pages] == [3, 3, 1]
    assert [c["name"] for p in pages for c in p["channels"]] == names
    first_cursor = pages[0]["response_metadata"]["next_cursor"]
    assert base64.b64decode(first_cursor).decode().startswith("team:")
    assert pages[-1]["response_metadata"]["next_cursor"] == ""

    with pytest.raises(SlackApiError) as exc:
        client(slack_emu).conversations_list(cursor="not-a-cursor")
    assert error_of(exc)["error"] == "invalid_cursor"


def test_invite_errors_and_partial_failures(slack_emu: SlackEmulator) -> None:
    web = client(slack_emu)
    cid = web.conversations_create(name="alerts-kuvaq")["channel"]["id"]
    assert web.conversations_invite(channel=cid, users="U0001")["channel"]["num_members"] == 2

    for users, code in [("U0001", "already_in_channel"), ("U9999", "user_not_found")]:
        with pytest.raises(SlackApiError) as exc:
            web.conversations_invite(channel=cid, users=users)
        assert error_of(exc)["error"] == code
        assert "errors" not in error_of(exc)
    with pytest.raises(SlackApiError) as exc:
        web.conversations_invite(channel=cid, users=slack_emu.bot_user_id)
    assert error_of(exc)["error"] == "cant_invite_self"

    # Several users: one failure invites nobody, and each failure is listed.
    with pytest.raises(SlackApiError) as exc:
        web.conversations_invite(channel=cid, users=["U0001", "U0002", "U9999"])
    data = error_of(exc)
    assert data["error"] == "already_in_channel"
    assert data["errors"] == [
        {"user": "U0001", "ok": False, "error": "already_in_channel"},
        {"user": "U9999", "ok": False, "error": "user_not_found"},
    ]
    assert set(web.conversations_members(channel=cid)["members"]) == {slack_emu.bot_user_id, "U0001"}

    with pytest.raises(SlackApiError):
        web.conversations_invite(channel=cid, users=["U0001", "U0002"], force=True)
    assert "U0002" in web.conversations_members(channel=cid)["members"]


def test_invite_needs_membership_and_an_active_channel(slack_emu: SlackEmulator) -> None:
    web = client(slack_emu)
    foreign = slack_emu.add_channel("foreign", members=["U0001"])
    with pytest.raises(SlackApiError) as exc:
        web.conversations_invite(channel=foreign, users="U0002")
    assert error_of(exc)["error"] == "not_in_channel"
    archived = slack_emu.add_channel("archived", archived=True, members=[slack_emu.bot_user_id])
    with pytest.raises(SlackApiError) as exc:
        web.conversations_invite(channel=archived, users="U0002")
    assert error_of(exc)["error"] == "is_archived"


def test_join_topic_purpose_archive(slack_emu: SlackEmulator) -> None:
    web = client(slack_emu)
    cid = slack_emu.add_channel("ops", members=["U0001"])
    assert web.conversations_join(channel=cid)["channel"]["is_member"] is True
    again = web.conversations_join(channel=cid)
    assert again["response_metadata"]["warnings"] == ["already_in_channel"]

    private = slack_emu.add_channel("priv", is_private=True, members=[slack_emu.bot_user_id])
    with pytest.raises(SlackApiError) as exc:
        web.conversations_join(channel=private)
    assert error_of(exc)["error"] == "method_not_supported_for_channel_type"

    assert web.conversations_setTopic(channel=cid, topic="Alerts for kuvaq")["channel"]["topic"]["value"] == (
        "Alerts for kuvaq"
    )
    web.conversations_setPurpose(channel=cid, purpose="Alertmanager → Slack")
    info = web.conversations_info(channel=cid)["channel"]
    assert (info["topic"]["value"], info["purpose"]["value"]) == ("Alerts for kuvaq", "Alertmanager → Slack")
    with pytest.raises(SlackApiError) as exc:
        web.conversations_setTopic(channel=cid, topic="x" * 251)
    assert error_of(exc)["error"] == "too_long"

    web.conversations_archive(channel=cid)
    with pytest.raises(SlackApiError) as exc:
        web.conversations_archive(channel=cid)
    assert error_of(exc)["error"] == "already_archived"
    with pytest.raises(SlackApiError) as exc:  # docs.slack.dev conversations.unarchive: not with xoxb-
        web.conversations_unarchive(channel=cid)
    assert error_of(exc)["error"] == "not_in_channel"
    slack_emu.add_token("xoxp-person", ["channels:write"], user="U0002")
    person = WebClient(token="xoxp-person", base_url=slack_emu.url + "/api/")
    person.conversations_unarchive(channel=cid)
    assert "U0002" in slack_emu.channels[cid].members  # the calling user is added (same page)
    with pytest.raises(SlackApiError) as exc:
        person.conversations_unarchive(channel=cid)
    assert error_of(exc)["error"] == "not_archived"


def test_post_message_and_history(slack_emu: SlackEmulator) -> None:
    web = client(slack_emu)
    cid = web.conversations_create(name="alerts-kuvaq")["channel"]["id"]
    metadata = {"event_type": "bootstrap_connected", "event_payload": {"customer": "kuvaq"}}
    posted = [web.chat_postMessage(channel=cid, text=f"message {n}", metadata=metadata) for n in range(5)]
    assert posted[0]["channel"] == cid
    assert posted[0]["message"]["bot_id"] == slack_emu.bot_id
    stored = slack_emu.messages(cid)
    assert [m["text"] for m in stored] == [f"message {n}" for n in range(5)]
    assert stored[0]["metadata"] == metadata
    assert stored[0]["ts"] == posted[0]["ts"]

    pages = [dict(p.data) for p in web.conversations_history(channel=cid, limit=2, include_all_metadata=True)]
    texts = [m["text"] for p in pages for m in p["messages"]]
    assert texts == [f"message {n}" for n in reversed(range(5))]
    assert pages[0]["has_more"] is True and pages[-1]["has_more"] is False
    assert pages[0]["messages"][0]["metadata"] == metadata
    assert "metadata" not in web.conversations_history(channel=cid)["messages"][0]


def test_post_message_errors(slack_emu: SlackEmulator) -> None:
    web = client(slack_emu)
    foreign = slack_emu.add_channel("foreign", members=["U0001"])
    archived = slack_emu.add_channel("archived", archived=True, members=[slack_emu.bot_user_id])
    hidden = slack_emu.add_channel("hidden", is_private=True, members=["U0001"])
    for channel, code in [
        (foreign, "not_in_channel"),
        (archived, "is_archived"),
        (hidden, "channel_not_found"),
        ("C0NOPE", "channel_not_found"),
    ]:
        with pytest.raises(SlackApiError) as exc:
            web.chat_postMessage(channel=channel, text="hello")
        assert error_of(exc)["error"] == code
    member = slack_emu.add_channel("member", members=[slack_emu.bot_user_id])
    with pytest.raises(SlackApiError) as exc, pytest.warns(UserWarning, match="top-level `text`"):
        web.chat_postMessage(channel=member, text="")
    assert error_of(exc)["error"] == "no_text"


def test_users(slack_emu: SlackEmulator) -> None:
    web = client(slack_emu)
    ids = [u["id"] for page in web.users_list(limit=2) for u in page["members"]]
    assert len(ids) == 3
    assert ids == [slack_emu.bot_user_id, "U0001", "U0002"]
    assert web.users_lookupByEmail(email="bob@kuvaq.example")["user"]["id"] == "U0002"
    with pytest.raises(SlackApiError) as exc:
        web.users_lookupByEmail(email="nobody@kuvaq.example")
    assert error_of(exc)["error"] == "users_not_found"


def test_rate_limit_shape_and_sdk_retry_handler(slack_emu: SlackEmulator) -> None:
    slack_emu.faults.add(Fault("ratelimit", path="conversations.list", times=1, retry_after=0))
    with pytest.raises(SlackApiError) as exc:
        client(slack_emu).conversations_list()
    assert exc.value.response.status_code == 429
    assert exc.value.response.headers["Retry-After"] == "0"
    assert error_of(exc) == {"ok": False, "error": "ratelimited"}

    slack_emu.faults.add(Fault("ratelimit", path="conversations.list", times=1, retry_after=0))
    web = client(slack_emu, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)])
    assert web.conversations_list()["ok"] is True
    assert slack_emu.log.count(path="conversations.list") == 3


def test_reads_are_not_writes_in_the_call_log(slack_emu: SlackEmulator) -> None:
    web = client(slack_emu)
    web.auth_test()
    web.conversations_list()
    assert slack_emu.log.writes == []
    web.conversations_create(name="alerts-kuvaq")
    assert [c.path for c in slack_emu.log.writes] == ["/api/conversations.create"]


def test_unknown_method(slack_emu: SlackEmulator) -> None:
    with pytest.raises(SlackApiError) as exc:
        client(slack_emu).api_call("conversations.frobnicate")
    assert error_of(exc)["error"] == "unknown_method"


def test_accepts_alertmanager_slack_notifier_body(slack_emu: SlackEmulator) -> None:
    cid = client(slack_emu).conversations_create(name="alerts-kuvaq")["channel"]["id"]
    # What Alertmanager 0.25 posts when api_url is chat.postMessage and a bot token is configured.
    body = {
        "channel": "#alerts-kuvaq",
        "username": "Alertmanager",
        "icon_emoji": ":fire:",
        "link_names": False,
        "attachments": [
            {
                "title": "[FIRING:1] Watchdog",
                "title_link": "http://alertmanager.kuvaq.example/#/alerts?receiver=slack",
                "text": "This is an alert meant to ensure that the entire alerting pipeline is functional.",
                "fallback": "[FIRING:1] Watchdog | http://alertmanager.kuvaq.example",
                "color": "danger",
                "mrkdwn_in": ["fallback", "pretext", "text"],
            }
        ],
    }
    resp = requests.post(
        slack_emu.url + "/api/chat.postMessage",
        data=json.dumps(body),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {BOT_TOKEN}"},
        timeout=5,
    )
    assert resp.status_code == 200
    data = resp.json()
    assert data["ok"] is True
    assert data["channel"] == cid
    assert data["response_metadata"]["warnings"] == ["missing_charset"]
    message = slack_emu.messages(cid)[0]
    assert message["attachments"][0]["title"] == "[FIRING:1] Watchdog"
    assert (message["username"], message["icon_emoji"]) == ("Alertmanager", ":fire:")


def test_argument_types_per_method_docs(slack_emu: SlackEmulator) -> None:
    """Booleans and integers as the method pages type them; what slack_sdk sends passes."""
    auth = {"Authorization": f"Bearer {BOT_TOKEN}"}
    for method, data, field in [
        ("conversations.create", {"name": "x-1", "is_private": "maybe"}, "is_private"),
        ("conversations.list", {"exclude_archived": "yes"}, "exclude_archived"),
        ("conversations.list", {"limit": "ten"}, "limit"),
    ]:
        body = requests.post(f"{slack_emu.url}/api/{method}", headers=auth, data=data, timeout=30).json()
        assert body["ok"] is False and body["error"] == "invalid_arguments", body
        assert f"[json-pointer:/{field}]" in body["response_metadata"]["messages"][0]
    web = client(slack_emu)
    assert web.conversations_create(name="typed", is_private=True)["channel"]["is_private"] is True
    assert web.conversations_list(exclude_archived=False, limit=5)["ok"] is True
    assert slack_emu.channel_by_name("x-1") is None
