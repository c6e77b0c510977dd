"""slack-channel against the Slack emulator, through slack_sdk over real HTTP."""

from __future__ import annotations

import json

import pytest

from bootstrap.reporting import StepResult
from bootstrap.step import Action, Plan
from sandbox import customer as sandbox_customer
from sandbox import seed
from sandbox.httpemu import Fault
from steps import slack_channel
from steps.slack_channel import MESSAGE_EVENT, SlackChannel, marker
from tests.fixtures.world import World
from tests.unit.recording import RecordingReporter

CHANNEL = "alerts-kuvaq"
PEOPLE = list(sandbox_customer.SLACK_USERS)


_OP = {
    slack_channel.Create: "create",
    slack_channel.Unarchive: "unarchive",
    slack_channel.Join: "join",
    slack_channel.SetTopic: "topic",
    slack_channel.SetPurpose: "purpose",
    slack_channel.Invite: "invite",
    slack_channel.Post: "message",
}


def ops(plan: Plan) -> list[str]:
    """The plan's operations, one word each."""
    return [_OP[type(c.payload)] for c in plan.changes]


def result(world: World, dry_run: bool = False) -> tuple[StepResult, RecordingReporter]:
    summary, reporter, _ = world.run(steps=(SlackChannel,), dry_run=dry_run)
    return summary.results[0], reporter


def test_creates_channel_then_second_run_writes_nothing(world: World) -> None:
    planned, _ = result(world, dry_run=True)
    assert planned.status == "changed"
    assert planned.plan is not None
    assert ops(planned.plan) == ["create", "topic", "purpose", "invite", "message"]
    assert world.slack.log.writes == []

    done, _ = result(world)
    assert done.status == "done", done.message
    channel = world.slack.channel_by_name(CHANNEL)
    assert channel is not None and not channel.archived and not channel.is_private
    assert done.outputs == {"channel_id": channel.id, "channel_name": CHANNEL}
    assert channel.topic == "Alerts for kuvaq"
    assert channel.purpose.startswith("Alertmanager notifications")
    assert set(PEOPLE) | {world.slack.bot_user_id} <= set(channel.members)
    assert [m["metadata"]["event_type"] for m in channel.messages] == [MESSAGE_EVENT]

    again, _ = result(world, dry_run=True)
    assert again.plan is not None and again.plan.empty
    world.reset_logs()
    rerun, reporter = result(world)
    assert rerun.status == "up-to-date"
    assert reporter.of("step_skipped") == [("step_skipped", "slack-channel", "up to date")]
    assert world.writes() == 0


def test_archived_channel_without_a_user_token_waits_for_a_person(world: World) -> None:
    """Bot tokens cannot unarchive (docs.slack.dev conversations.unarchive): exit 3, once, no loop."""
    channel_id = world.slack.add_channel(CHANNEL, archived=True, members=[world.slack.bot_user_id, PEOPLE[0]])
    planned, _ = result(world, dry_run=True)
    assert planned.plan is not None and "by a person" in planned.plan.changes[0].summary
    assert any("slack.user_token" in note for note in planned.plan.notes)

    for _ in range(2):  # stays put run after run: no retry loop, no Slack write, no new channel
        world.reset_logs()
        summary, _, _ = world.run(steps=(SlackChannel,))
        waiting = summary.results[0]
        assert summary.exit_code() == 3 and waiting.status == "waiting"
        message = waiting.message or ""
        assert channel_id in message and "Unarchive" in message and "slack.user_token" in message
        assert world.slack.log.writes == [] and world.slack.log.count(path="unarchive") == 0
    channel = world.slack.channel_by_name(CHANNEL)
    assert channel is not None and channel.archived and len(world.slack.channels) == 1

    # a person unarchives it in Slack: the next run adopts the channel
    channel.archived = False
    done, _ = result(world)
    assert done.status == "done", done.message and done.outputs["channel_id"] == channel_id


def test_archived_channel_is_unarchived_with_the_user_token(world: World) -> None:
    channel_id = world.slack.add_channel(CHANNEL, archived=True, members=[world.slack.bot_user_id, PEOPLE[0]])
    world.slack.add_token("xoxp-person", ["channels:write", "groups:write"], user=PEOPLE[0])
    world.env["SLACK_USER_TOKEN"] = "xoxp-person"
    doc = world.document()
    doc["slack"]["user_token"] = "env:SLACK_USER_TOKEN"
    world.customer(doc)

    planned, _ = result(world, dry_run=True)
    assert planned.plan is not None
    assert (
        "unarchive" in planned.plan.changes[0].summary
        and "slack.user_token" in planned.plan.changes[0].summary
    )
    assert "create" not in ops(planned.plan)
    assert [o for o in ops(planned.plan) if o == "invite"] == ["invite"]
    assert ops(planned.plan)[-1] == "message"

    done, _ = result(world)
    assert done.status == "done", done.message
    channel = world.slack.channel_by_name(CHANNEL)
    assert channel is not None and channel.id == channel_id and not channel.archived
    assert len(world.slack.channels) == 1
    assert done.outputs["channel_id"] == channel_id


def test_a_bot_token_given_as_user_token_waits_for_a_person(world: World) -> None:
    world.slack.add_channel(CHANNEL, archived=True, members=[world.slack.bot_user_id])
    doc = world.document()
    doc["slack"]["user_token"] = "env:SLACK_BOT_TOKEN"  # the mistake: the bot's own token
    world.customer(doc)
    summary, _, _ = world.run(steps=(SlackChannel,))
    assert summary.exit_code() == 3
    assert "not_in_channel" in (summary.results[0].message or "")
    assert "xoxp" in (summary.results[0].message or "")


def test_adopts_public_channel_without_bot_and_keeps_existing_message(world: World) -> None:
    """A channel made by hand (bot not in it) is joined; a marker message from a crashed run is kept."""
    channel_id = world.slack.add_channel(CHANNEL, members=PEOPLE)
    planned, _ = result(world, dry_run=True)
    assert planned.plan is not None
    assert ops(planned.plan) == ["join", "topic", "purpose", "message"]

    # Simulate a crash right after the message was posted: the bot is in, the message is there.
    world.slack.channels[channel_id].members.append(world.slack.bot_user_id)
    world.slack.channels[channel_id].messages.append(
        {
            "type": "message",
            "text": "connected",
            "ts": "1.000001",
            "user": world.slack.bot_user_id,
            "metadata": {"event_type": MESSAGE_EVENT, "event_payload": {"marker": marker("kuvaq")}},
        }
    )
    done, _ = result(world)
    assert done.status == "done", done.message
    assert len(world.slack.messages(channel_id)) == 1
    assert world.slack.log.count("POST", "chat.postMessage") == 0


def test_drift_is_repaired_without_a_second_message(world: World) -> None:
    result(world)
    channel = world.slack.channel_by_name(CHANNEL)
    assert channel is not None
    channel.topic = "changed by hand"
    channel.members.remove(PEOPLE[1])

    planned, _ = result(world, dry_run=True)
    assert planned.plan is not None
    assert ops(planned.plan) == ["topic", "invite"]
    assert "changed by hand" in planned.plan.changes[0].diff

    repaired, _ = result(world)
    assert repaired.status == "done", repaired.message
    assert channel.topic == "Alerts for kuvaq" and PEOPLE[1] in channel.members
    assert len(channel.messages) == 1


def test_rate_limit_storm_is_ridden_out(world: World) -> None:
    world.slack.faults.add(Fault("ratelimit", times=6, retry_after=0))
    done, _ = result(world)
    assert done.status == "done", done.message
    assert world.slack.log.count(None, "conversations") > 6
    channel = world.slack.channel_by_name(CHANNEL)
    assert channel is not None and len(channel.messages) == 1


def test_missing_scope_fails_naming_the_scope(world: World) -> None:
    scopes = [s for s in seed.BOT_SCOPES if s != "channels:manage"]
    world.slack.add_token(sandbox_customer.SLACK_TOKEN, scopes)
    failed, _ = result(world)
    assert failed.status == "failed"
    assert failed.message is not None and "channels:manage" in failed.message
    assert world.state()["steps"]["slack-channel"]["status"] == "failed"


def test_invisible_private_channel_explains_what_to_do(world: World) -> None:
    world.slack.add_channel(CHANNEL, is_private=True, members=PEOPLE)
    failed, _ = result(world)
    assert failed.status == "failed"
    assert failed.message is not None and "private channel" in failed.message


def test_token_never_leaves_the_process(world: World) -> None:
    summary, reporter, _ = world.run(steps=(SlackChannel,), dry_run=True)
    summary2, reporter2, _ = world.run(steps=(SlackChannel,))
    token = sandbox_customer.SLACK_TOKEN
    shown = json.dumps([summary.to_json(), summary2.to_json()], default=str)
    shown += repr(reporter.events) + repr(reporter2.events)
    assert token not in shown
    assert token not in (world.dir / ".bootstrap" / "state.json").read_text()


def test_destroy_archives_the_channel(world: World) -> None:
    result(world)
    ctx = world.session().context
    step = SlackChannel()
    plan = step.plan_destroy(ctx)
    assert [c.action for c in plan.changes] == [Action.DELETE]
    step.destroy(ctx, plan)
    channel = world.slack.channel_by_name(CHANNEL)
    assert channel is not None and channel.archived
    assert step.plan_destroy(ctx).empty


@pytest.mark.parametrize("scope", seed.BOT_SCOPES)
def test_a_bot_token_without_a_scope_it_needs_stops_naming_that_scope(world: World, scope: str) -> None:
    """Slack answers missing_scope with needed/provided (docs.slack.dev, each method's "scopes"); the
    step fails once (exit 1), names the scope and where to add it, and writes nothing after it."""
    token = world.slack.tokens[sandbox_customer.SLACK_TOKEN]
    token.scopes = frozenset(seed.BOT_SCOPES) - {scope}
    summary, _, _ = world.run(steps=(SlackChannel,))
    outcome = summary.results[0]
    if scope in PUBLIC_CHANNEL_SCOPES:
        assert summary.exit_code() == 1 and outcome.status == "failed", (scope, outcome.message)
        assert f"lacks the scope {scope}" in (outcome.message or "") and "Bot Token Scopes" in (
            outcome.message or ""
        )
    else:  # not used for a public channel the bot creates
        assert outcome.status == "done", (scope, outcome.message)


PUBLIC_CHANNEL_SCOPES = {"channels:read", "groups:read", "channels:manage", "chat:write"}
"""What a run that creates a public channel uses: listing asks for private channels too (groups:read)."""


_METHOD = {
    slack_channel.Create: "conversations.create",
    slack_channel.Unarchive: "conversations.unarchive",
    slack_channel.Join: "conversations.join",
    slack_channel.SetTopic: "conversations.setTopic",
    slack_channel.SetPurpose: "conversations.setPurpose",
    slack_channel.Invite: "conversations.invite",
    slack_channel.Post: "chat.postMessage",
}
"""The Slack Web API method each planned operation is (https://docs.slack.dev/reference/methods)."""


@pytest.mark.parametrize(
    ("exists", "bot_in", "topic_drift", "people_missing"),
    [
        (False, False, False, 0),
        (True, False, False, 2),
        (True, True, True, 1),
        (True, True, False, 0),
    ],
)
def test_apply_performs_exactly_the_planned_operations(
    world: World, exists: bool, bot_in: bool, topic_drift: bool, people_missing: int
) -> None:
    """Whatever the starting state, apply's Slack writes are the plan's operations, in order, and no more."""
    if exists:
        members = PEOPLE[people_missing:] + ([world.slack.bot_user_id] if bot_in else [])
        channel_id = world.slack.add_channel(CHANNEL, members=members)
        if topic_drift:
            world.slack.channels[channel_id].topic = "changed by hand"
    sess = world.session()
    step = SlackChannel()
    plan = step.plan(sess.context)
    world.reset_logs()
    step.apply(sess.context, plan)
    written = [c.path.rsplit("/", 1)[-1] for c in world.slack.log.writes]
    assert written == [_METHOD[type(c.payload)] for c in plan.changes]
    assert step.plan(sess.context).empty
