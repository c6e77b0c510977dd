"""slack-channel: the customer's alert channel, created or adopted, set up once.

The channel name from customer.yaml IS the identity: a re-run (or a run after
a crash) finds the channel by that name among public, private and archived
channels and adopts it, unarchiving it if someone archived it. Each setting
(topic, purpose, membership of the bot and the listed people) is compared
with Slack and changed only when it differs, and the "connected" message
carries a stable marker in its metadata so it is found again instead of
being posted twice. A second run therefore makes no Slack writes at all.

Rollback archives the channel: Slack bots cannot delete channels, and an
archived channel keeps its history (and its name: creating it again fails with
``name_taken``). Slack does not let bot tokens unarchive
(https://docs.slack.dev/reference/methods/conversations.unarchive), so the
next run unarchives with ``slack.user_token`` when one is configured, and
otherwise stops once (WaitingForHuman, exit 3) saying what a person must do;
it never retries on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bootstrap.errors import PermanentError, WaitingForHuman
from bootstrap.step import Action, Change, Context, Need, Outputs, Plan, Step, StepId

if TYPE_CHECKING:
    from bootstrap.clients.slack import Channel, SlackClient
    from bootstrap.config import CustomerConfig

MESSAGE_EVENT = "gitops_bootstrap_connected"
"""Slack message-metadata event type of the "connected" message."""


def marker(customer: str) -> str:
    """What identifies this customer's "connected" message in the channel's history."""
    return f"gitops-bootstrap/{customer}/connected"


@dataclass(frozen=True)
class Create:
    """Create the channel (every later operation then names the new channel)."""

    name: str
    private: bool


@dataclass(frozen=True)
class Unarchive:
    channel_id: str


@dataclass(frozen=True)
class Join:
    """Add the bot: only members may set the topic, invite or post."""

    channel_id: str


@dataclass(frozen=True)
class SetTopic:
    value: str


@dataclass(frozen=True)
class SetPurpose:
    value: str


@dataclass(frozen=True)
class Invite:
    users: tuple[str, ...]


@dataclass(frozen=True)
class Post:
    """The "connected" message, found again by its marker."""

    marker: str


@dataclass(frozen=True)
class Archive:
    channel_id: str
    is_member: bool


class SlackChannel(Step):
    id = StepId("slack-channel")
    title = "Slack channel for alerts"
    reads = (
        "customer.name",
        "slack.channel",
        "slack.user_token",
        "slack.private",
        "slack.topic",
        "slack.purpose",
        "slack.invite",
    )

    def checks(self, config: CustomerConfig) -> tuple[Need, ...]:
        # conversations.list (public and private), create/setTopic/invite, join, history, postMessage
        kind = (
            ("groups:write", "groups:history")
            if config.slack.private
            else (
                "channels:manage",
                "channels:join",
                "channels:history",
            )
        )
        return (Need("slack", config.slack.channel, ("channels:read", "groups:read", *kind, "chat:write")),)

    def plan(self, ctx: Context) -> Plan:
        sl = ctx.config.slack
        slack = ctx.services.slack
        target = f"slack channel #{sl.channel}"
        channel = slack.find_channel(sl.channel)
        if channel is None:
            kind = "private" if sl.private else "public"
            changes = [
                Change(
                    Action.CREATE,
                    target,
                    f"create {kind} channel #{sl.channel}",
                    payload=Create(sl.channel, sl.private),
                )
            ]
            changes += _settings(ctx, target, topic="", purpose="")
            if sl.invite:
                changes.append(_invite(target, list(sl.invite)))
            changes.append(_message(ctx, target))
            return Plan(tuple(changes))

        notes: list[str] = []
        if channel.is_private != sl.private:
            notes.append(
                f"#{sl.channel} exists as a {'private' if channel.is_private else 'public'} channel while "
                f"slack.private is {str(sl.private).lower()}; Slack cannot convert it, so it is adopted as is"
            )
        changes = []
        if channel.is_archived:
            how = (
                "with slack.user_token" if sl.user_token is not None else "by a person (no slack.user_token)"
            )
            changes.append(
                Change(
                    Action.UPDATE,
                    target,
                    f"unarchive #{sl.channel} ({channel.id}) {how}: it exists but was archived",
                    payload=Unarchive(channel.id),
                )
            )
            if sl.user_token is None:
                notes.append(_unarchive_help(sl.channel, channel.id))
        if not channel.is_member:
            # Only members may set the topic, invite or post; a listed channel without the bot is public.
            join = Change(Action.UPDATE, target, "add the bot to the channel", payload=Join(channel.id))
            changes.append(join)
        changes += _settings(ctx, target, topic=channel.topic, purpose=channel.purpose)
        missing = _missing_members(slack, channel, list(sl.invite))
        if missing:
            changes.append(_invite(target, missing))
        # A bot outside the channel cannot read its history; it was not there to post the message either.
        if not channel.is_member or slack.find_message(channel.id, marker(ctx.config.customer.name)) is None:
            changes.append(_message(ctx, target))
        outputs = {"channel_id": channel.id, "channel_name": channel.name}
        return Plan(tuple(changes), tuple(notes), outputs)

    def apply(self, ctx: Context, plan: Plan) -> Outputs:
        """Perform the plan's operations in order, and nothing else."""
        sl = ctx.config.slack
        slack = ctx.services.slack
        channel_id = plan.outputs.get("channel_id")
        for change in plan.changes:
            op = change.payload
            if isinstance(op, Create):
                ctx.intend(f"create Slack channel #{op.name}")
                channel_id = slack.create_channel(op.name, op.private).id
                continue
            assert isinstance(channel_id, str), "every change but create names the channel"
            ctx.intend(f"{change.summary} on #{sl.channel} ({channel_id})")
            match op:
                case Unarchive():
                    _unarchive(ctx, channel_id)
                case Join():
                    slack.join(channel_id)
                case SetTopic(value=value):
                    slack.set_topic(channel_id, value)
                case SetPurpose(value=value):
                    slack.set_purpose(channel_id, value)
                case Invite(users=users):
                    slack.invite(channel_id, list(users))
                case Post(marker=found_by):
                    slack.post_message(
                        channel_id,
                        _message_text(ctx),
                        metadata={"event_type": MESSAGE_EVENT, "event_payload": {"marker": found_by}},
                    )
                case _:
                    raise TypeError(f"slack-channel cannot apply {op!r}")
        assert isinstance(channel_id, str)
        return {"channel_id": channel_id, "channel_name": sl.channel}

    def verify(self, ctx: Context) -> None:
        sl = ctx.config.slack
        slack = ctx.services.slack
        channel = slack.find_channel(sl.channel)
        again = "run `bootstrap run` again to fix it"
        if channel is None:
            raise PermanentError(
                f"Slack channel #{sl.channel} does not exist (or the bot cannot see it); {again}"
            )
        if channel.is_archived:
            raise PermanentError(f"Slack channel #{sl.channel} ({channel.id}) is archived; {again}")
        for name, want, have in (
            ("topic", sl.topic, channel.topic),
            ("purpose", sl.purpose, channel.purpose),
        ):
            if want is not None and want != have:
                raise PermanentError(
                    f"Slack channel #{sl.channel}: the {name} is {have!r}, expected {want!r}; {again}"
                )
        missing = _missing_members(slack, channel, list(sl.invite))
        if missing:
            raise PermanentError(
                f"Slack channel #{sl.channel}: {', '.join(missing)} not members (slack.invite); {again}"
            )

    def plan_destroy(self, ctx: Context) -> Plan:
        name = ctx.config.slack.channel
        channel = ctx.services.slack.find_channel(name)
        if channel is None or channel.is_archived:
            return Plan()
        summary = f"archive #{name} ({channel.id}); Slack keeps its history and a later run can unarchive it"
        return Plan(
            (
                Change(
                    Action.DELETE,
                    f"slack channel #{name}",
                    summary,
                    payload=Archive(channel.id, channel.is_member),
                ),
            )
        )

    def destroy(self, ctx: Context, plan: Plan) -> None:
        slack = ctx.services.slack
        for change in plan.changes:
            op = change.payload
            if not isinstance(op, Archive):
                raise TypeError(f"slack-channel cannot destroy with {op!r}")
            ctx.intend(f"archive Slack channel {change.target} ({op.channel_id})")
            if not op.is_member:
                slack.join(op.channel_id)  # Slack only lets members archive a channel
            slack.archive(op.channel_id)


def _unarchive(ctx: Context, channel_id: str) -> None:
    """Unarchive with the user token, or stop for a person: a bot token cannot unarchive."""
    sl = ctx.config.slack
    if sl.user_token is None:
        raise WaitingForHuman(_unarchive_help(sl.channel, channel_id))
    from bootstrap.clients.slack import UnarchiveRefused  # lazy: light commands never load slack_sdk

    token = ctx.secrets.resolve(sl.user_token, "slack.user_token")
    try:
        ctx.services.slack.unarchive(channel_id, token)
    except UnarchiveRefused as refused:
        raise WaitingForHuman(
            f"Slack refused to unarchive #{sl.channel} ({channel_id}) with slack.user_token "
            f"({refused.code}): it must be a user token (xoxp-…), not a bot token, of a person who may "
            "manage the channel. " + _unarchive_help(sl.channel, channel_id)
        ) from None


def _unarchive_help(channel: str, channel_id: str) -> str:
    return (
        f"Slack channel #{channel} ({channel_id}) is archived, and Slack does not let bot tokens "
        "unarchive (conversations.unarchive). Either unarchive it in Slack (open the channel → "
        "channel details → Unarchive), or set slack.user_token to a user token (xoxp-…) with the "
        "User Token Scope channels:write (groups:write for a private channel); then run again."
    )


def _settings(ctx: Context, target: str, topic: str, purpose: str) -> list[Change]:
    sl = ctx.config.slack
    out = []
    for name, want, have in (("topic", sl.topic, topic), ("purpose", sl.purpose, purpose)):
        if want is not None and want != have:
            out.append(
                Change(
                    Action.UPDATE,
                    target,
                    f"set the {name}",
                    diff=f"-{name}: {have}\n+{name}: {want}" if have else f"+{name}: {want}",
                    payload=SetTopic(want) if name == "topic" else SetPurpose(want),
                )
            )
    return out


def _invite(target: str, users: list[str]) -> Change:
    return Change(Action.UPDATE, target, f"invite {', '.join(users)}", payload=Invite(tuple(users)))


def _message(ctx: Context, target: str) -> Change:
    return Change(
        Action.CREATE,
        target + " message",
        'post the "bootstrap connected" message',
        payload=Post(marker(ctx.config.customer.name)),
    )


def _missing_members(slack: SlackClient, channel: Channel, wanted: list[str]) -> list[str]:
    if not wanted:
        return []
    members = slack.members(channel.id)
    return [u for u in wanted if u not in members]


def _message_text(ctx: Context) -> str:
    customer = ctx.config.customer.display_name or ctx.config.customer.name
    return (
        f":white_check_mark: gitops-bootstrap connected this channel to Alertmanager for {customer}. "
        "Firing and resolved alerts will be posted here."
    )
