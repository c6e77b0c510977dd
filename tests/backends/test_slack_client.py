"""The Slack client against the Slack emulator: typed results, error mapping, bounded retries."""

from __future__ import annotations

import pytest

from bootstrap import errors
from bootstrap.clients import slack
from sandbox.httpemu import Fault
from sandbox.slack import SlackEmulator
from tests.fixtures.slack import BOT_TOKEN


def make(emu: SlackEmulator, token: str = BOT_TOKEN) -> slack.SlackClient:
    return slack.SlackClient(token, base_url=emu.url + "/api/", backoff=0)


def test_auth_test(slack_emu: SlackEmulator) -> None:
    ident = make(slack_emu).auth_test()
    assert ident == slack.BotIdentity(
        user_id=slack_emu.bot_user_id,
        bot_id=slack_emu.bot_id,
        team="Kuvaq",
        team_id=slack_emu.team_id,
        url="https://kuvaq.slack.com/",
    )


def test_find_channel_follows_cursors_and_sees_archived_and_member_private(slack_emu: SlackEmulator) -> None:
    for n in range(250):
        slack_emu.add_channel(f"filler-{n:03d}")
    archived = slack_emu.add_channel("alerts-old", archived=True)
    private = slack_emu.add_channel("alerts-private", is_private=True, members=[slack_emu.bot_user_id])
    slack_emu.add_channel("alerts-hidden", is_private=True, members=["U0001"])
    client = make(slack_emu)

    found = client.find_channel("alerts-old")
    assert found is not None and found.id == archived and found.is_archived
    assert slack_emu.log.count(path="conversations.list") == 2  # 253 channels, 200 per page
    mine = client.find_channel("alerts-private")
    assert mine is not None and (mine.id, mine.is_private, mine.is_member) == (private, True, True)
    assert client.find_channel("alerts-hidden") is None
    assert client.find_channel("nope") is None
    assert slack_emu.log.writes == []


def test_create_channel_and_name_taken(slack_emu: SlackEmulator) -> None:
    client = make(slack_emu)
    channel = client.create_channel("alerts-kuvaq", private=False)
    assert (channel.name, channel.is_private, channel.is_member) == ("alerts-kuvaq", False, True)
    slack_emu.add_channel("hidden", is_private=True, members=["U0001"])
    with pytest.raises(slack.ChannelNameTaken) as exc:
        client.create_channel("hidden", private=True)
    assert exc.value.name == "hidden"
    assert "invite the bot" in str(exc.value).lower()
    with pytest.raises(errors.PermanentError, match="invalid_name_specials"):
        client.create_channel("Bad Name", private=False)


def test_topic_purpose_archive_roundtrip_is_idempotent(slack_emu: SlackEmulator) -> None:
    client = make(slack_emu)
    cid = client.create_channel("alerts-kuvaq", private=True).id
    client.set_topic(cid, "Alerts for kuvaq")
    client.set_purpose(cid, "Alertmanager notifications")
    client.archive(cid)
    client.archive(cid)
    found = client.find_channel("alerts-kuvaq")
    assert found is not None and found.is_archived
    with pytest.raises(slack.UnarchiveRefused) as refused:  # bot tokens cannot unarchive
        client.unarchive(cid, BOT_TOKEN)
    assert refused.value.code == "not_in_channel"
    slack_emu.add_user("U0001", "alice", "alice@kuvaq.example")
    slack_emu.channels[cid].members.append("U0001")
    slack_emu.add_token("xoxp-alice", ["groups:write"], user="U0001")
    client.unarchive(cid, "xoxp-alice")
    client.unarchive(cid, "xoxp-alice")  # not_archived counts as done
    found = client.find_channel("alerts-kuvaq")
    assert found is not None
    assert (found.is_archived, found.topic, found.purpose) == (
        False,
        "Alerts for kuvaq",
        "Alertmanager notifications",
    )


def test_invite_handles_partial_failures(slack_emu: SlackEmulator) -> None:
    client = make(slack_emu)
    cid = client.create_channel("alerts-kuvaq", private=False).id
    client.invite(cid, ["U0001"])
    client.invite(cid, ["U0001"])  # already in: fine
    client.invite(cid, [slack_emu.bot_user_id])  # the bot itself: fine
    slack_emu.add_user("U0003", "carol", "carol@kuvaq.example")
    slack_emu.log.clear()
    client.invite(cid, ["U0001", "U0002", "U0003", slack_emu.bot_user_id])
    assert client.members(cid) == {slack_emu.bot_user_id, "U0001", "U0002", "U0003"}
    assert slack_emu.log.count(path="conversations.invite") == 2  # all-or-nothing, then the rest
    client.invite(cid, [])

    with pytest.raises(errors.PermanentError, match=r"U9999 \(user_not_found\)") as exc:
        client.invite(cid, ["U0001", "U9999"])
    assert not isinstance(exc.value, errors.RetryableError)


def test_invite_channel_level_errors_are_not_blamed_on_users(slack_emu: SlackEmulator) -> None:
    foreign = slack_emu.add_channel("foreign", members=["U0001"])
    with pytest.raises(errors.PermanentError, match=r"conversations\.invite failed: not_in_channel"):
        make(slack_emu).invite(foreign, ["U0002"])


def test_join_and_members_pagination(slack_emu: SlackEmulator) -> None:
    people = [f"U{n:06d}" for n in range(450)]
    cid = slack_emu.add_channel("big", members=people)
    client = make(slack_emu)
    client.join(cid)
    client.join(cid)
    assert client.members(cid) == {*people, slack_emu.bot_user_id}
    assert slack_emu.log.count(path="conversations.members") == 3


def test_post_and_find_message(slack_emu: SlackEmulator) -> None:
    client = make(slack_emu)
    cid = client.create_channel("alerts-kuvaq", private=False).id
    assert client.find_message(cid, "bootstrap:kuvaq") is None
    ts = client.post_message(
        cid,
        "Alerts for kuvaq are connected.",
        metadata={"event_type": "bootstrap_connected", "event_payload": {"marker": "bootstrap:kuvaq"}},
    )
    for n in range(3):
        client.post_message(cid, f"chatter {n}")
    assert client.find_message(cid, "bootstrap:kuvaq") == ts
    assert client.find_message(cid, "chatter 1") is not None
    assert slack_emu.messages(cid)[0]["metadata"]["event_payload"] == {"marker": "bootstrap:kuvaq"}


def test_missing_scope_names_the_scope(slack_emu: SlackEmulator) -> None:
    slack_emu.add_token("xoxb-narrow", ["channels:read", "groups:read"])
    with pytest.raises(errors.AuthError) as exc:
        make(slack_emu, "xoxb-narrow").create_channel("alerts-kuvaq", private=False)
    message = str(exc.value)
    assert "channels:manage" in message
    assert "reinstall" in message
    assert "xoxb-narrow" not in message


@pytest.mark.parametrize("case", ["unknown", "revoked"])
def test_bad_token_is_an_auth_error_naming_the_setting(slack_emu: SlackEmulator, case: str) -> None:
    token = "xoxb-secret-value-123"
    if case == "revoked":
        slack_emu.add_token(token, ["chat:write"])
        slack_emu.revoke_token(token)
    client = make(slack_emu, token)
    with pytest.raises(errors.AuthError) as exc:
        client.auth_test()
    assert "slack.token" in str(exc.value)
    assert token not in str(exc.value)
    assert token not in repr(client)


def test_recovers_from_a_short_429_storm(slack_emu: SlackEmulator) -> None:
    slack_emu.faults.add(Fault("ratelimit", path="conversations.create", times=3, retry_after=0))
    channel = make(slack_emu).create_channel("alerts-kuvaq", private=False)
    assert channel.name == "alerts-kuvaq"
    assert slack_emu.log.count(path="conversations.create") == 4


def test_endless_429_becomes_retryable_with_the_delay(slack_emu: SlackEmulator) -> None:
    slack_emu.faults.add(Fault("ratelimit", path="auth.test", retry_after=0))
    with pytest.raises(errors.RetryableError) as exc:
        make(slack_emu).auth_test()
    assert exc.value.delay == 0
    assert slack_emu.log.count(path="auth.test") == 4  # 1 + 3 retries

    slack_emu.faults.clear()
    slack_emu.log.clear()
    slack_emu.faults.add(Fault("ratelimit", path="auth.test", retry_after=120))
    with pytest.raises(errors.RetryableError) as exc:
        make(slack_emu).auth_test()
    assert exc.value.delay == 120  # too long to wait inside the SDK: handed to the engine
    assert slack_emu.log.count(path="auth.test") == 1


def test_recovers_from_5xx_and_resets(slack_emu: SlackEmulator) -> None:
    slack_emu.faults.add(Fault("status", path="auth.test", status=502, times=2))
    slack_emu.faults.add(Fault("reset", path="conversations.list", times=1))
    client = make(slack_emu)
    assert client.auth_test().user_id == slack_emu.bot_user_id
    assert client.find_channel("nope") is None


def test_persistent_5xx_and_unreachable_are_retryable(slack_emu: SlackEmulator) -> None:
    slack_emu.faults.add(Fault("status", path="auth.test", status=500))
    with pytest.raises(errors.RetryableError, match="server error"):
        make(slack_emu).auth_test()
    assert slack_emu.log.count(path="auth.test") == 4

    url = slack_emu.url
    slack_emu.stop()
    with pytest.raises(errors.RetryableError, match="cannot reach Slack") as exc:
        slack.SlackClient(BOT_TOKEN, base_url=url + "/api/", backoff=0).auth_test()
    assert BOT_TOKEN not in str(exc.value)


def test_unarchive_names_the_user_token_on_a_missing_scope(slack_emu: SlackEmulator) -> None:
    cid = slack_emu.add_channel("alerts-kuvaq", archived=True, members=[slack_emu.bot_user_id])
    slack_emu.add_token("xoxp-readonly", ["channels:read"], user="U0001")
    with pytest.raises(errors.AuthError, match=r"slack.user_token lacks the scope channels:write") as exc:
        make(slack_emu).unarchive(cid, "xoxp-readonly")
    assert "xoxp-readonly" not in str(exc.value)
    with pytest.raises(errors.AuthError, match=r"slack\.user_token"):
        make(slack_emu).unarchive(cid, "xoxp-unknown")
