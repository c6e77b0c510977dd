"""The Slack adapter the slack-channel step uses (over slack_sdk's WebClient).

What it guarantees:

- every call is retried a bounded number of times on 429 (honouring
  ``Retry-After`` up to ``max_retry_after``), 5xx and connection errors; what
  still fails surfaces as ``RetryableError`` (with the delay Slack asked for);
- Slack error codes become the tool's errors with a next step for the person at
  the terminal: a missing scope names the scope and says to reinstall the app,
  a bad token names ``slack.token``; ``name_taken`` is ``ChannelNameTaken`` so
  the step can explain the invisible-private-channel case;
- the token never appears in a message (slack_sdk's own messages are not used);
- results are frozen dataclasses, so steps never handle raw Slack JSON.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import (
    BackoffRetryIntervalCalculator,
    ConnectionErrorRetryHandler,
    HttpRequest,
    HttpResponse,
    RateLimitErrorRetryHandler,
    RetryHandler,
    RetryState,
)
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler
from slack_sdk.http_retry.jitter import Jitter

from bootstrap import errors
from bootstrap.clients import budget

PAGE_SIZE = 200
MAX_PAGES = 100
"""Bounds a listing at 20 000 channels/members so a cursor loop cannot run forever."""
HISTORY_PAGES = 5
"""How far back ``find_message`` looks (5 pages of 200 messages)."""

_AUTH_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive", "no_permission"}
)
_TRANSIENT_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})
_BENIGN_INVITE_ERRORS = frozenset({"already_in_channel", "cant_invite_self"})
_USER_INVITE_ERRORS = _BENIGN_INVITE_ERRORS | {
    "user_not_found",
    "no_user",
    "cant_invite",
    "user_is_bot",
    "user_is_restricted",
    "user_is_ultra_restricted",
    "ura_max_channels",
}


@dataclass(frozen=True)
class BotIdentity:
    user_id: str
    bot_id: str
    team: str
    team_id: str
    url: str


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    is_private: bool
    is_archived: bool
    is_member: bool
    topic: str
    purpose: str


class ChannelNameTaken(errors.PermanentError):
    """A channel of that name exists but the bot cannot see it (a private channel it is not in)."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"Slack says a channel named #{name} already exists, but the bot cannot see it: it is most "
            f"likely a private channel the bot is not a member of. Invite the bot to #{name} "
            "(/invite @<bot>) and run again, or choose another slack.channel."
        )
        self.name = name


UNARCHIVE_DOC = "https://docs.slack.dev/reference/methods/conversations.unarchive"
_BOT_UNARCHIVE_ERRORS = frozenset(
    {"not_in_channel", "not_authorized", "method_not_supported_for_channel_type"}
)
"""What Slack answers when a token may not unarchive: the docs say bot tokens cannot (their
"bug alert"), and a bot token was seen to get ``not_in_channel`` (open-cli-collective/slack-chat-api#29)."""


class UnarchiveRefused(errors.PermanentError):
    """Slack refused to unarchive with the token given (a bot token, or a user outside the channel)."""

    def __init__(self, channel_id: str, code: str) -> None:
        super().__init__(f"Slack refused to unarchive {channel_id} ({code})")
        self.code = code


class _RateLimitHandler(RateLimitErrorRetryHandler):
    """Retries a 429 after exactly Retry-After (plus small jitter), but only if that is short.

    A long Retry-After is handed to the engine as ``RetryableError(delay)``
    rather than blocking the run inside the SDK.
    """

    def __init__(self, max_retry_count: int, max_retry_after: float, jitter: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_retry_after = max_retry_after
        self.jitter = jitter

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return (
            response is not None
            and response.status_code == 429
            and _retry_after(response) <= self.max_retry_after
        )

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        assert response is not None  # _can_retry only accepts responses
        state.next_attempt_requested = True
        time.sleep(_retry_after(response) + random.uniform(0, self.jitter))
        state.increment_current_attempt()


class _ServerErrorHandler(ServerErrorRetryHandler):
    """slack_sdk's handler only retries 500 and 503; 502 and 504 are just as transient."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and response.status_code >= 500


class _NoJitter(Jitter):
    def recalculate(self, duration: float) -> float:
        return duration


def _retry_after(response: HttpResponse) -> float:
    for key, values in response.headers.items():
        if key.lower() == "retry-after" and values:
            try:
                return float(values[0])
            except ValueError:
                return 1.0
    return 1.0


@budget.metered("slack")
class SlackClient:
    """Typed Slack operations for one bot token."""

    def __init__(
        self,
        token: str,
        base_url: str | None = None,
        *,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_retry_after: float = 30.0,
        timeout: int = 30,
    ) -> None:
        """``backoff`` is the base of the exponential wait between 5xx/connection retries and
        the jitter added to Retry-After; tests set it to 0."""
        interval = BackoffRetryIntervalCalculator(backoff_factor=backoff, jitter=_NoJitter())
        handlers: list[RetryHandler] = [
            _RateLimitHandler(max_retries, max_retry_after, backoff),
            _ServerErrorHandler(max_retry_count=max_retries, interval_calculator=interval),
            ConnectionErrorRetryHandler(max_retry_count=max_retries, interval_calculator=interval),
        ]
        kwargs: dict[str, Any] = {"token": token, "timeout": timeout, "retry_handlers": handlers}
        if base_url is not None:
            kwargs["base_url"] = str(base_url).rstrip("/") + "/"
        self._web = WebClient(**kwargs)
        self._options: dict[str, Any] = {
            "base_url": base_url,
            "max_retries": max_retries,
            "backoff": backoff,
            "max_retry_after": max_retry_after,
            "timeout": timeout,
        }

    def __repr__(self) -> str:
        return f"SlackClient(base_url={self._web.base_url!r})"

    # -- identity and channels -------------------------------------------------
    def auth_test(self) -> BotIdentity:
        data = self._call("auth.test")
        return BotIdentity(
            user_id=data["user_id"],
            bot_id=data.get("bot_id") or "",
            team=data.get("team") or "",
            team_id=data.get("team_id") or "",
            url=data.get("url") or "",
        )

    def scopes(self) -> frozenset[str]:
        """The scopes Slack reports for this token: the ``x-oauth-scopes`` header of auth.test.

        Slack sends that header with Web API responses to list the token's scopes
        (https://api.slack.com/legacy/oauth-scopes, "Working with scopes";
        https://api.slack.com/methods/auth.test); auth.test needs no scope itself.
        """
        try:
            response = self._web.api_call("auth.test")
        except SlackApiError as exc:
            raise _SlackFailure("auth.test", exc).error from None
        except OSError as exc:
            raise errors.RetryableError(
                f"Slack auth.test: cannot reach Slack ({type(exc).__name__})"
            ) from None
        headers = {k.lower(): v for k, v in (response.headers or {}).items()}
        raw = headers.get("x-oauth-scopes", "")
        value = raw[0] if isinstance(raw, list) else str(raw)
        return frozenset(s.strip() for s in value.split(",") if s.strip())

    def find_channel(self, name: str) -> Channel | None:
        """The channel called ``name`` among public, private (the bot is in) and archived ones."""
        for page in self._pages(
            "conversations.list", types="public_channel,private_channel", exclude_archived=False
        ):
            for raw in page.get("channels", []):
                if raw.get("name") == name:
                    return _channel(raw)
        return None

    def create_channel(self, name: str, private: bool) -> Channel:
        try:
            data = self._request("conversations.create", name=name, is_private=private)
        except _SlackFailure as failure:
            if failure.code == "name_taken":
                raise ChannelNameTaken(name) from None
            raise failure.error from None
        return _channel(data["channel"])

    def archive(self, channel_id: str) -> None:
        self._call("conversations.archive", benign={"already_archived"}, channel=channel_id)

    def unarchive(self, channel_id: str, user_token: str) -> None:
        """Unarchive with a *user* token (xoxp-): Slack does not let bot tokens unarchive.

        Raises ``UnarchiveRefused`` when Slack refuses the token for this (e.g. it is a bot
        token), and AuthError naming slack.user_token when a scope is missing.
        """
        user = SlackClient(user_token, **self._options)
        try:
            user._request("conversations.unarchive", channel=channel_id)
        except _SlackFailure as failure:
            if failure.code == "not_archived":
                return
            if failure.code in _BOT_UNARCHIVE_ERRORS:
                raise UnarchiveRefused(channel_id, failure.code) from None
            if failure.code == "missing_scope":
                raise errors.AuthError(
                    f"slack.user_token lacks the scope {failure.data.get('needed') or '?'} needed by "
                    "conversations.unarchive: add channels:write (groups:write for a private channel) "
                    "under OAuth & Permissions → User Token Scopes, reinstall the app and update the "
                    "secret slack.user_token points to."
                ) from None
            if failure.code in _AUTH_ERRORS:
                raise errors.AuthError(
                    f"Slack rejected slack.user_token ({failure.code}): it must be a current user "
                    "token (xoxp-…)."
                ) from None
            raise failure.error from None

    def set_topic(self, channel_id: str, topic: str) -> None:
        self._call("conversations.setTopic", channel=channel_id, topic=topic)

    def set_purpose(self, channel_id: str, purpose: str) -> None:
        self._call("conversations.setPurpose", channel=channel_id, purpose=purpose)

    def join(self, channel_id: str) -> None:
        self._call("conversations.join", channel=channel_id)

    # -- membership ------------------------------------------------------------
    def invite(self, channel_id: str, user_ids: Iterable[str]) -> None:
        """Make every user a member; users already in the channel are fine.

        Slack invites nobody when one of several invites fails, listing each
        failure in ``errors``; so a call that failed only on users already in
        the channel is repeated once for the others.
        """
        pending = list(dict.fromkeys(user_ids))
        for _ in range(2):
            if not pending:
                return
            try:
                self._request("conversations.invite", channel=channel_id, users=",".join(pending))
                return
            except _SlackFailure as failure:
                per_user = failure.data.get("errors") or (
                    [{"user": pending[0], "error": failure.code}]
                    if len(pending) == 1 and failure.code in _USER_INVITE_ERRORS
                    else []
                )
                if not per_user:
                    raise failure.error from None
                failed = {str(e.get("user")): str(e.get("error")) for e in per_user}
                hard = {u: e for u, e in failed.items() if e not in _BENIGN_INVITE_ERRORS}
                if hard:
                    listed = ", ".join(f"{u} ({e})" for u, e in sorted(hard.items()))
                    raise errors.PermanentError(
                        f"Slack could not invite {listed} to channel {channel_id}: "
                        "check the member ids in customer.yaml (slack.members)."
                    ) from None
                pending = [u for u in pending if u not in failed]
        if pending:
            raise errors.RetryableError(f"Slack kept refusing to invite {', '.join(pending)} to {channel_id}")

    def members(self, channel_id: str) -> set[str]:
        return {
            m for page in self._pages("conversations.members", channel=channel_id) for m in page["members"]
        }

    # -- messages --------------------------------------------------------------
    def find_message(self, channel_id: str, marker: str) -> str | None:
        """The ts of the newest message whose text or metadata payload carries ``marker``.

        Looks back at most ``HISTORY_PAGES`` pages: an old marker buried deeper
        counts as absent, which at worst posts the message once more.
        """
        pages = self._pages(
            "conversations.history", max_pages=HISTORY_PAGES, channel=channel_id, include_all_metadata=True
        )
        for page in pages:
            for message in page.get("messages", []):
                payload = (message.get("metadata") or {}).get("event_payload") or {}
                if marker in (message.get("text") or "") or marker in map(str, payload.values()):
                    return str(message["ts"])
        return None

    def post_message(self, channel_id: str, text: str, metadata: Mapping[str, Any] | None = None) -> str:
        """Post as the bot; ``metadata`` is Slack message metadata (``event_type``, ``event_payload``)."""
        args: dict[str, Any] = {"channel": channel_id, "text": text}
        if metadata is not None:
            args["metadata"] = dict(metadata)
        return str(self._call("chat.postMessage", json=True, **args)["ts"])

    # -- plumbing --------------------------------------------------------------
    def _request(self, method: str, *, json: bool = False, **args: Any) -> dict[str, Any]:
        args = {k: v for k, v in args.items() if v is not None}
        try:
            if json:
                response = self._web.api_call(method, json=args)
            else:
                response = self._web.api_call(method, params=args)
        except SlackApiError as exc:
            raise _SlackFailure(method, exc) from None
        except OSError as exc:  # URLError, connection reset, timeout: after the SDK's retries
            raise errors.RetryableError(
                f"Slack {method}: cannot reach Slack ({type(exc).__name__})"
            ) from None
        data: dict[str, Any] = response.data  # type: ignore[assignment]
        return data

    def _call(
        self, method: str, *, benign: Iterable[str] = (), json: bool = False, **args: Any
    ) -> dict[str, Any]:
        """One call with Slack errors mapped to the tool's; ``benign`` codes count as success."""
        try:
            return self._request(method, json=json, **args)
        except _SlackFailure as failure:
            if failure.code in set(benign):
                return failure.data
            raise failure.error from None

    def _pages(self, method: str, *, max_pages: int = MAX_PAGES, **args: Any) -> Iterator[dict[str, Any]]:
        cursor = ""
        for _ in range(max_pages):
            page = self._call(method, limit=PAGE_SIZE, cursor=cursor or None, **args)
            yield page
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or ""
            if not cursor:
                return
        if max_pages == MAX_PAGES:
            raise errors.PermanentError(f"Slack {method} returned more than {MAX_PAGES} pages; giving up")


class _SlackFailure(Exception):
    """A Slack error response, kept raw until the caller has had a chance to accept it."""

    def __init__(self, method: str, exc: SlackApiError) -> None:
        super().__init__(method)
        self.method = method
        self.status = int(exc.response.status_code)
        raw = exc.response.data
        self.data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        self.code = str(self.data.get("error") or f"http_{self.status}")
        self.headers: Mapping[str, Any] = exc.response.headers or {}

    @property
    def error(self) -> errors.StepError:
        """The tool's error for this failure, with what to do next."""
        method, code = self.method, self.code
        if self.status == 429 or code == "ratelimited":
            delay = _header_seconds(self.headers, "retry-after")
            return errors.RetryableError(f"Slack rate-limited {method}; retry in {delay:g}s", delay=delay)
        if self.status >= 500 or code in _TRANSIENT_ERRORS:
            return errors.RetryableError(f"Slack {method} failed with a server error ({code})")
        if code == "missing_scope":
            needed = self.data.get("needed") or "?"
            return errors.AuthError(
                f"The Slack token lacks the scope {needed} needed by {method}: add it under OAuth & "
                "Permissions → Bot Token Scopes of the Slack app, reinstall the app to the workspace "
                "and update slack.token if Slack issued a new one."
            )
        if code in _AUTH_ERRORS:
            return errors.AuthError(
                f"Slack rejected the bot token ({code}) on {method}: check slack.token "
                "(a bot token, xoxb-…, of an app installed in the workspace)."
            )
        return errors.PermanentError(f"Slack {method} failed: {code}")

    def __str__(self) -> str:
        return str(self.error)


def _header_seconds(headers: Mapping[str, Any], name: str) -> float:
    for key, value in headers.items():
        if key.lower() == name:
            raw = value[0] if isinstance(value, list) else value
            try:
                return float(raw)
            except (TypeError, ValueError):
                break
    return 1.0


def _channel(raw: Mapping[str, Any]) -> Channel:
    return Channel(
        id=raw["id"],
        name=raw["name"],
        is_private=bool(raw.get("is_private")),
        is_archived=bool(raw.get("is_archived")),
        is_member=bool(raw.get("is_member")),
        topic=(raw.get("topic") or {}).get("value", ""),
        purpose=(raw.get("purpose") or {}).get("value", ""),
    )
