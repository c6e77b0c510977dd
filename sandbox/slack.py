"""A stateful Slack Web API emulator speaking Slack's own wire format.

It exists so that the slack-channel step, the Slack client and Alertmanager's
slack notifier can be exercised unpatched over real HTTP. What it guarantees,
because the step's idempotency depends on exactly these Slack behaviours:

- ``POST /api/<method>`` (form-encoded or JSON, token in ``Authorization:
  Bearer`` or a ``token`` field); every answer is HTTP 200 with ``{"ok": …}``
  except rate limits (HTTP 429, ``Retry-After``, ``error: ratelimited``);
- scopes are enforced per method and channel type (``missing_scope`` with
  ``needed``/``provided``, ``x-oauth-scopes``/``x-accepted-oauth-scopes``);
- a channel name is unique across public, private *and archived* channels
  (``name_taken``), while a private channel the bot is not in is invisible to
  ``conversations.list``/``info`` — the trap an adopting step must handle;
- list methods paginate with opaque base64 cursors, ``""`` at the end.

Tokens belong to one bot user, which is what a bot token is, unless seeded as
a user token (``add_token(..., user=…)``), which only ``conversations.unarchive``
treats differently: Slack lets only user tokens unarchive.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sandbox.httpemu import EmulatorServer, Fault, Request, Response

READ_METHODS = frozenset(
    {
        "auth.test",
        "conversations.list",
        "conversations.info",
        "conversations.history",
        "conversations.members",
        "users.list",
        "users.info",
        "users.lookupByEmail",
    }
)

# Accepted scopes per (method, channel kind); any one of them suffices, as in Slack.
Scopes = dict[str, tuple[str, ...]]
_MANAGE: Scopes = {"public": ("channels:manage",), "private": ("groups:write",)}
_READ: Scopes = {"public": ("channels:read",), "private": ("groups:read",)}
_HISTORY: Scopes = {"public": ("channels:history",), "private": ("groups:history",)}
_TOPIC_MAX = 250
_NAME_MAX = 80
_NAME_RE = re.compile(r"^[a-z0-9_-]+$")
T = TypeVar("T")


class SlackError(Exception):
    """Ends a method call with ``{"ok": false, "error": code, **extra}``."""

    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = extra


@dataclass
class Token:
    value: str
    scopes: frozenset[str]
    revoked: bool = False
    user: str | None = None
    """The person a user token (xoxp-) acts for; None for the bot token."""


@dataclass
class User:
    id: str
    name: str
    email: str
    is_bot: bool = False

    def to_json(self, team_id: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "deleted": False,
            "real_name": self.name,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "profile": {"real_name": self.name, "display_name": self.name, "email": self.email},
        }


@dataclass
class ChannelRecord:
    """One channel's state; tests read it through ``channel_by_name``."""

    id: str
    name: str
    is_private: bool
    archived: bool
    creator: str
    created: int
    members: list[str] = field(default_factory=list)
    topic: str = ""
    purpose: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    """Oldest first, as stored; history answers newest first."""

    @property
    def kind(self) -> str:
        return "private" if self.is_private else "public"

    def _text_field(self, value: str) -> dict[str, Any]:
        return {"value": value, "creator": self.creator if value else "", "last_set": 0}

    def to_json(self, viewer: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "name_normalized": self.name,
            "is_channel": True,
            "is_group": False,
            "is_im": False,
            "is_mpim": False,
            "is_private": self.is_private,
            "is_archived": self.archived,
            "is_general": False,
            "is_shared": False,
            "is_ext_shared": False,
            "is_org_shared": False,
            "is_member": viewer in self.members,
            "created": self.created,
            "creator": self.creator,
            "unlinked": 0,
            "topic": self._text_field(self.topic),
            "purpose": self._text_field(self.purpose),
            "previous_names": [],
            "num_members": len(self.members),
        }


@dataclass
class Call:
    """The context one method handler works in."""

    args: dict[str, Any]
    token: Token
    warnings: list[str] = field(default_factory=list)
    accepted: tuple[str, ...] = ()

    def require(self, *scopes: str) -> None:
        """Fail with ``missing_scope`` unless the token holds one of ``scopes``."""
        self.accepted = scopes
        if not any(s in self.token.scopes for s in scopes):
            raise SlackError(
                "missing_scope", needed=",".join(scopes), provided=",".join(sorted(self.token.scopes))
            )

    def text(self, name: str, default: str = "") -> str:
        value = self.args.get(name, default)
        return value if isinstance(value, str) else json.dumps(value)

    def required(self, name: str) -> str:
        value = self.text(name)
        if not value:
            raise SlackError("invalid_arguments", response_metadata={"messages": [_missing(name)]})
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.args.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        return str(value).lower() in ("1", "true")

    def limit(self, default: int, maximum: int) -> int:
        raw = self.args.get("limit")
        if raw in (None, ""):
            return default
        try:
            value = int(str(raw))
        except ValueError:
            raise SlackError(
                "invalid_arguments",
                response_metadata={"messages": ["[ERROR] must be an integer [json-pointer:/limit]"]},
            ) from None
        return max(1, min(value, maximum))

    def structured(self, name: str) -> Any:
        """A JSON-valued argument: native in a JSON body, a JSON string in a form."""
        value = self.args.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value) if value else None
            except json.JSONDecodeError:
                raise SlackError(f"invalid_{name}") from None
        return value


def _missing(name: str) -> str:
    return f"[ERROR] missing required field: {name}"


def _encode_cursor(prefix: str, value: str) -> str:
    return base64.b64encode(f"{prefix}:{value}".encode()).decode()


def _decode_cursor(cursor: str, prefix: str) -> str:
    try:
        kind, _, value = base64.b64decode(cursor, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise SlackError("invalid_cursor") from None
    if kind != prefix or not value:
        raise SlackError("invalid_cursor")
    return value


def _page(
    items: Sequence[T], key: Callable[[T], str], prefix: str, call: Call, limit: int
) -> tuple[list[T], str]:
    """Slice ``items`` at the call's cursor; returns (page, next_cursor)."""
    start = 0
    cursor = call.text("cursor")
    if cursor:
        anchor = _decode_cursor(cursor, prefix)
        keys = [key(i) for i in items]
        if anchor not in keys:
            raise SlackError("invalid_cursor")
        start = keys.index(anchor)
    page = list(items[start : start + limit])
    rest = items[start + limit :]
    return page, (_encode_cursor(prefix, key(rest[0])) if rest else "")


class SlackEmulator(EmulatorServer):
    """Slack Web API on loopback; seed with ``add_token``/``add_user``/``add_channel``."""

    name = "slack-emulator"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        team: str = "Kuvaq",
        team_id: str = "T0KUVAQ01",
        bot_user_id: str = "U0BOT0001",
        bot_id: str = "B0BOT0001",
        bot_name: str = "gitops-bootstrap",
    ) -> None:
        super().__init__(host, port)
        self.team = team
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.bot_name = bot_name
        self.tokens: dict[str, Token] = {}
        self.users: dict[str, User] = {bot_user_id: User(bot_user_id, bot_name, "", is_bot=True)}
        self.channels: dict[str, ChannelRecord] = {}
        self._ids = itertools.count(1)
        self._last_ts = 0.0
        handlers: dict[str, Callable[[Call], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "conversations.create": self._create,
            "conversations.list": self._list,
            "conversations.info": self._info,
            "conversations.invite": self._invite,
            "conversations.join": self._join,
            "conversations.members": self._members,
            "conversations.setTopic": self._set_topic,
            "conversations.setPurpose": self._set_purpose,
            "conversations.archive": self._archive,
            "conversations.unarchive": self._unarchive,
            "conversations.history": self._history,
            "chat.postMessage": self._post_message,
            "users.list": self._users_list,
            "users.info": self._users_info,
            "users.lookupByEmail": self._lookup_by_email,
        }
        for method, handler in handlers.items():
            wrapped = self._method(handler)
            self.route("POST", f"/api/{method}")(wrapped)
            self.route("GET", f"/api/{method}")(wrapped)

    # -- seeding and inspection ------------------------------------------------
    def add_token(self, token: str, scopes: Iterable[str], user: str | None = None) -> None:
        """A bot token, or with ``user`` a user token acting as that (seeded) user."""
        with self.lock:
            self.tokens[token] = Token(token, frozenset(scopes), user=user)

    def revoke_token(self, token: str) -> None:
        with self.lock:
            self.tokens[token].revoked = True

    def add_user(self, id: str, name: str, email: str) -> None:
        with self.lock:
            self.users[id] = User(id, name, email)

    def add_channel(
        self, name: str, is_private: bool = False, archived: bool = False, members: Iterable[str] = ()
    ) -> str:
        with self.lock:
            members = list(members)
            channel = ChannelRecord(
                id=self._new_id("C"),
                name=name,
                is_private=is_private,
                archived=archived,
                creator=members[0] if members else "U0ADMIN01",
                created=int(time.time()),
                members=members,
            )
            self.channels[channel.id] = channel
            return channel.id

    def channel_by_name(self, name: str) -> ChannelRecord | None:
        with self.lock:
            return next((c for c in self.channels.values() if c.name == name), None)

    def messages(self, channel_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.channels[channel_id].messages)

    # -- httpemu hooks ---------------------------------------------------------
    def is_write(self, method: str, path: str) -> bool:
        return path.removeprefix("/api/").rstrip("/") not in READ_METHODS

    def rate_limited(self, rule: Fault) -> Response:
        return Response(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(rule.retry_after)})

    def server_error(self, rule: Fault) -> Response:
        return Response(rule.status, {"ok": False, "error": "fatal_error"})

    def not_found(self, req: Request) -> Response:
        method = req.path.removeprefix("/api/")
        return Response(200, {"ok": False, "error": "unknown_method", "req_method": method})

    # -- plumbing --------------------------------------------------------------
    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08X}"

    def _next_ts(self) -> str:
        # Slack's ts is the message id within a channel: strictly increasing.
        now = max(time.time(), self._last_ts + 0.000001)
        self._last_ts = now
        return f"{now:.6f}"

    def _method(self, handler: Callable[[Call], dict[str, Any]]) -> Callable[[Request], Response]:
        def serve(req: Request) -> Response:
            try:
                args, warnings = _arguments(req)
            except SlackError as err:
                return Response(200, {"ok": False, "error": err.code})
            token_value = _bearer(req) or str(args.pop("token", "") or "")
            args.pop("token", None)
            headers = {"x-accepted-oauth-scopes": ""}
            if not token_value:
                return Response(200, {"ok": False, "error": "not_authed"}, headers)
            token = self.tokens.get(token_value)
            if token is None:
                return Response(200, {"ok": False, "error": "invalid_auth"}, headers)
            if token.revoked:
                return Response(200, {"ok": False, "error": "token_revoked"}, headers)
            call = Call(args, token, warnings)
            try:
                _check_argument_types(args)
                body: dict[str, Any] = {"ok": True, **handler(call)}
            except SlackError as err:
                body = {"ok": False, "error": err.code, **err.extra}
            if call.warnings:
                body["warning"] = ",".join(call.warnings)
                meta = body.setdefault("response_metadata", {})
                meta["warnings"] = list(call.warnings)
            headers = {
                "x-oauth-scopes": ",".join(sorted(token.scopes)),
                "x-accepted-oauth-scopes": ",".join(call.accepted),
            }
            return Response(200, body, headers)

        return serve

    def _channel(self, call: Call, scopes: Scopes | None = None) -> ChannelRecord:
        """The channel named by ``channel`` (id, ``#name`` or name) as the bot can see it."""
        ref = call.required("channel")
        channel = self.channels.get(ref)
        if channel is None:
            name = ref.removeprefix("#")
            channel = next((c for c in self.channels.values() if c.name == name), None)
        if channel is None or (channel.is_private and self.bot_user_id not in channel.members):
            if scopes is not None:
                call.require(*scopes["public"], *scopes["private"])
            raise SlackError("channel_not_found")
        if scopes is not None:
            call.require(*scopes[channel.kind])
        return channel

    def _member_channel(self, call: Call, scopes: Scopes) -> ChannelRecord:
        channel = self._channel(call, scopes)
        if channel.archived:
            raise SlackError("is_archived")
        if self.bot_user_id not in channel.members:
            raise SlackError("not_in_channel")
        return channel

    # -- methods ---------------------------------------------------------------
    def _auth_test(self, call: Call) -> dict[str, Any]:
        return {
            "url": f"https://{self.team.lower()}.slack.com/",
            "team": self.team,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _create(self, call: Call) -> dict[str, Any]:
        private = call.flag("is_private")
        call.require(*_MANAGE["private" if private else "public"])
        name = call.text("name")
        if not name:
            raise SlackError("invalid_name_required")
        if len(name) > _NAME_MAX:
            raise SlackError("invalid_name_maxlength")
        if not _NAME_RE.match(name):
            raise SlackError("invalid_name_specials")
        if not name.strip("-_"):
            raise SlackError("invalid_name_punctuation")
        if any(c.name == name for c in self.channels.values()):
            raise SlackError("name_taken")
        cid = self.add_channel(name, is_private=private, members=[self.bot_user_id])
        return {"channel": self.channels[cid].to_json(self.bot_user_id)}

    def _list(self, call: Call) -> dict[str, Any]:
        types = [t.strip() for t in call.text("types", "public_channel").split(",") if t.strip()]
        unknown = [t for t in types if t not in ("public_channel", "private_channel", "im", "mpim")]
        if unknown:
            raise SlackError("invalid_types")
        if "public_channel" in types:
            call.require(*_READ["public"])
        if "private_channel" in types:
            call.require(*_READ["private"])
        call.accepted = tuple(s for t in types for s in _READ.get(t.split("_")[0], ()))
        exclude_archived = call.flag("exclude_archived")
        visible = [
            c
            for c in self.channels.values()
            if (("private_channel" if c.is_private else "public_channel") in types)
            and (not c.is_private or self.bot_user_id in c.members)
            and not (exclude_archived and c.archived)
        ]
        page, cursor = _page(visible, lambda c: c.id, "team", call, call.limit(100, 1000))
        return {
            "channels": [c.to_json(self.bot_user_id) for c in page],
            "response_metadata": {"next_cursor": cursor},
        }

    def _info(self, call: Call) -> dict[str, Any]:
        return {"channel": self._channel(call, _READ).to_json(self.bot_user_id)}

    def _invite(self, call: Call) -> dict[str, Any]:
        channel = self._member_channel(call, _MANAGE)
        users = [u.strip() for u in call.required("users").split(",") if u.strip()]
        errors: list[dict[str, Any]] = []
        for user in users:
            if user == self.bot_user_id:
                code = "cant_invite_self"
            elif user not in self.users:
                code = "user_not_found"
            elif user in channel.members:
                code = "already_in_channel"
            else:
                continue
            errors.append({"user": user, "ok": False, "error": code})
        failed = {e["user"] for e in errors}
        # Without ``force`` Slack invites nobody when any invite fails.
        if not errors or call.flag("force"):
            channel.members.extend(u for u in dict.fromkeys(users) if u not in failed)
        if errors:
            extra: dict[str, Any] = {"errors": errors} if len(users) > 1 else {}
            raise SlackError(errors[0]["error"], **extra)
        return {"channel": channel.to_json(self.bot_user_id)}

    def _join(self, call: Call) -> dict[str, Any]:
        call.require("channels:join")
        channel = self._channel(call)
        if channel.is_private:
            raise SlackError("method_not_supported_for_channel_type")
        if channel.archived:
            raise SlackError("is_archived")
        if self.bot_user_id in channel.members:
            call.warnings.append("already_in_channel")
        else:
            channel.members.append(self.bot_user_id)
        return {"channel": channel.to_json(self.bot_user_id)}

    def _members(self, call: Call) -> dict[str, Any]:
        channel = self._channel(call, _READ)
        page, cursor = _page(channel.members, lambda m: m, "user", call, call.limit(100, 1000))
        return {"members": page, "response_metadata": {"next_cursor": cursor}}

    def _set_text(self, call: Call, attr: str) -> dict[str, Any]:
        channel = self._member_channel(call, _MANAGE)
        value = call.text(attr)
        if len(value) > _TOPIC_MAX:
            raise SlackError("too_long")
        setattr(channel, attr, value)
        return {"channel": channel.to_json(self.bot_user_id)}

    def _set_topic(self, call: Call) -> dict[str, Any]:
        return self._set_text(call, "topic")

    def _set_purpose(self, call: Call) -> dict[str, Any]:
        return self._set_text(call, "purpose")

    def _archive(self, call: Call) -> dict[str, Any]:
        channel = self._channel(call, _MANAGE)
        if channel.archived:
            raise SlackError("already_archived")
        if self.bot_user_id not in channel.members:
            raise SlackError("not_in_channel")
        channel.archived = True
        return {}

    def _unarchive(self, call: Call) -> dict[str, Any]:
        """Only a user token unarchives (https://docs.slack.dev/reference/methods/conversations.unarchive,
        "Bot tokens (xoxb-...) cannot currently be used to unarchive conversations"); a bot token
        gets ``not_in_channel`` as seen in open-cli-collective/slack-chat-api#29. The calling user
        is added to the conversation (same page). User scopes: channels:write / groups:write."""
        user = call.token.user
        if user is None:
            channel = self._channel(call, _MANAGE)
            if not channel.archived:
                raise SlackError("not_archived")
            raise SlackError("not_in_channel")
        ref = call.required("channel")
        found = self.channels.get(ref) or next(
            (c for c in self.channels.values() if c.name == ref.removeprefix("#")), None
        )
        if found is None or (found.is_private and user not in found.members):
            call.require("channels:write", "groups:write")
            raise SlackError("channel_not_found")
        call.require("groups:write" if found.is_private else "channels:write")
        if not found.archived:
            raise SlackError("not_archived")
        found.archived = False
        if user not in found.members:
            found.members.append(user)
        return {}

    def _post_message(self, call: Call) -> dict[str, Any]:
        call.require("chat:write")
        channel = self._channel(call)
        if channel.archived:
            raise SlackError("is_archived")
        # chat:write.public lets a bot post to public channels it has not joined.
        if self.bot_user_id not in channel.members and not (
            not channel.is_private and "chat:write.public" in call.token.scopes
        ):
            raise SlackError("not_in_channel")
        text = call.text("text")
        attachments = call.structured("attachments")
        blocks = call.structured("blocks")
        if not (text or attachments or blocks):
            raise SlackError("no_text")
        if len(text) > 40000:
            raise SlackError("msg_too_long")
        metadata = call.structured("metadata")
        if metadata is not None and not (isinstance(metadata, dict) and metadata.get("event_type")):
            raise SlackError("invalid_metadata_format")
        message: dict[str, Any] = {
            "type": "message",
            "text": text,
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": "A0BOOTSTRAP",
            "team": self.team_id,
            "ts": self._next_ts(),
        }
        for key, value in (("attachments", attachments), ("blocks", blocks), ("metadata", metadata)):
            if value:
                message[key] = value
        for key in ("username", "icon_emoji", "icon_url"):
            if call.text(key):
                message[key] = call.text(key)
        channel.messages.append(message)
        visible = {k: v for k, v in message.items() if k != "metadata"}
        return {"channel": channel.id, "ts": message["ts"], "message": visible}

    def _history(self, call: Call) -> dict[str, Any]:
        channel = self._channel(call, _HISTORY)
        if self.bot_user_id not in channel.members:
            raise SlackError("not_in_channel")
        newest_first = list(reversed(channel.messages))
        page, cursor = _page(newest_first, lambda m: m["ts"], "next_ts", call, call.limit(100, 999))
        with_meta = call.flag("include_all_metadata")
        messages = [m if with_meta else {k: v for k, v in m.items() if k != "metadata"} for m in page]
        return {
            "messages": messages,
            "has_more": bool(cursor),
            "pin_count": 0,
            "response_metadata": {"next_cursor": cursor},
        }

    def _users_list(self, call: Call) -> dict[str, Any]:
        call.require("users:read")
        page, cursor = _page(list(self.users.values()), lambda u: u.id, "user", call, call.limit(100, 1000))
        return {
            "members": [u.to_json(self.team_id) for u in page],
            "cache_ts": int(time.time()),
            "response_metadata": {"next_cursor": cursor},
        }

    def _users_info(self, call: Call) -> dict[str, Any]:
        call.require("users:read")
        user = self.users.get(call.required("user"))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": user.to_json(self.team_id)}

    def _lookup_by_email(self, call: Call) -> dict[str, Any]:
        call.require("users:read.email")
        email = call.required("email").lower()
        user = next((u for u in self.users.values() if u.email.lower() == email), None)
        if user is None:
            raise SlackError("users_not_found")
        return {"user": user.to_json(self.team_id)}


_BOOLEAN_ARGS = frozenset({"is_private", "exclude_archived", "include_all_metadata", "inclusive", "force"})
_INTEGER_ARGS = frozenset({"limit"})


def _check_argument_types(args: dict[str, Any]) -> None:
    """Argument types as the method pages give them (docs.slack.dev/reference/methods/…: booleans
    ``is_private``, ``exclude_archived``, ``include_all_metadata``; integer ``limit``). A form sends
    ``true``/``false``/``1``/``0``. The error's wording mirrors Slack's ``invalid_arguments``
    ``response_metadata.messages`` form; its exact text is unverified."""
    for name, value in args.items():
        if name in _BOOLEAN_ARGS and not (
            isinstance(value, bool) or str(value).lower() in ("true", "false", "1", "0", "")
        ):
            raise SlackError(
                "invalid_arguments",
                response_metadata={"messages": [f"[ERROR] must be a boolean [json-pointer:/{name}]"]},
            )
        if name in _INTEGER_ARGS and not (
            isinstance(value, int) or str(value).strip().isdigit() or value == ""
        ):
            raise SlackError(
                "invalid_arguments",
                response_metadata={"messages": [f"[ERROR] must be an integer [json-pointer:/{name}]"]},
            )


def _bearer(req: Request) -> str:
    auth = req.header("authorization") or ""
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _arguments(req: Request) -> tuple[dict[str, Any], list[str]]:
    """Method arguments from the query string and a form or JSON body, plus Slack's warnings."""
    args: dict[str, Any] = {k: v[-1] for k, v in req.query.items()}
    warnings: list[str] = []
    ctype = (req.header("content-type") or "").lower()
    if "json" in ctype:
        # Slack answers a JSON body without a charset, but warns about it.
        if "charset" not in ctype:
            warnings.append("missing_charset")
        try:
            data = json.loads(req.body) if req.body else {}
        except json.JSONDecodeError:
            raise SlackError("invalid_json") from None
        if not isinstance(data, dict):
            raise SlackError("json_not_object")
        args.update(data)
    elif req.body:
        parsed = urllib.parse.parse_qs(req.body.decode(), keep_blank_values=True)
        args.update({k: v[-1] for k, v in parsed.items()})
    return args, warnings
