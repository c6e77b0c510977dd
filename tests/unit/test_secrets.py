"""Secret references resolve late and every known secret is masked wherever text goes."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.config import SecretRef
from bootstrap.errors import ConfigError
from bootstrap.secrets import MASK, RedactingFilter, Redactor, Secrets

TOKEN = "ghp_0123456789abcdefTOKEN"
PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACBvGk1j6ZPIy0yVj2bc3l1y0Vf1w5kI0ETDTjBjSbAM+wAAAJjtqJ7k7aie\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)


@pytest.fixture
def redactor() -> Redactor:
    return Redactor()


def secrets_for(redactor: Redactor, base: Path, **environ: str) -> Secrets:
    return Secrets(redactor, base, environ=dict(environ))


# -- resolution ----------------------------------------------------------------------


def test_env_reference(redactor: Redactor, tmp_path: Path) -> None:
    secrets = secrets_for(redactor, tmp_path, GITHUB_TOKEN=f"  {TOKEN}\n")
    assert secrets.resolve(SecretRef("env", "GITHUB_TOKEN"), "github.token") == TOKEN
    assert TOKEN in redactor.values


def test_missing_env_names_field_and_variable(redactor: Redactor, tmp_path: Path) -> None:
    secrets = secrets_for(redactor, tmp_path)
    with pytest.raises(ConfigError) as info:
        secrets.resolve(SecretRef("env", "SLACK_BOT_TOKEN"), "slack.token")
    assert info.value.exit_code == 4
    assert "slack.token" in str(info.value)
    assert "environment variable SLACK_BOT_TOKEN is not set" in str(info.value)


def test_empty_value_is_an_error(redactor: Redactor, tmp_path: Path) -> None:
    secrets = secrets_for(redactor, tmp_path, GITHUB_TOKEN="  \n")
    with pytest.raises(
        ConfigError, match=re.escape("github.token: env:GITHUB_TOKEN resolved to an empty value")
    ):
        secrets.resolve(SecretRef("env", "GITHUB_TOKEN"), "github.token")


def test_relative_file_resolves_against_the_customer_dir(
    redactor: Redactor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text(TOKEN + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter
    secrets = secrets_for(redactor, tmp_path)
    assert secrets.resolve(SecretRef("file", "secrets/token"), "github.token") == TOKEN
    assert TOKEN in redactor.values


def test_absolute_file(redactor: Redactor, tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_text(PEM)
    secrets = secrets_for(redactor, tmp_path / "unrelated")
    assert secrets.resolve(SecretRef("file", str(path)), "vault.auth.token") == PEM.strip()


def test_missing_file_names_field_and_path(redactor: Redactor, tmp_path: Path) -> None:
    secrets = secrets_for(redactor, tmp_path)
    with pytest.raises(ConfigError) as info:
        secrets.resolve(SecretRef("file", "nope.txt"), "slack.token")
    assert str(info.value) == f"slack.token: file {tmp_path / 'nope.txt'} does not exist"


@pytest.mark.parametrize("make", ["directory", "not-utf8", "under-a-file"])
def test_unreadable_file_is_a_config_error(redactor: Redactor, tmp_path: Path, make: str) -> None:
    target = tmp_path / "token"
    if make == "directory":
        target.mkdir()
    elif make == "not-utf8":
        target.write_bytes(b"\xff\xfe\x00secret")
    else:
        target.write_text("x")
        target = target / "inner"
    secrets = secrets_for(redactor, tmp_path)
    with pytest.raises(ConfigError, match=re.escape("slack.token: cannot read")):
        secrets.resolve(SecretRef("file", str(target)), "slack.token")


def test_values_are_cached(redactor: Redactor, tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN)
    secrets = secrets_for(redactor, tmp_path)
    ref = SecretRef("file", "token")
    assert secrets.resolve(ref, "github.token") == TOKEN
    path.unlink()
    assert secrets.resolve(ref, "github.token") == TOKEN


def test_vault_reference_without_vault(redactor: Redactor, tmp_path: Path) -> None:
    secrets = secrets_for(redactor, tmp_path)
    with pytest.raises(
        ConfigError, match=re.escape("github.token: vault: references need the vault section")
    ):
        secrets.resolve(SecretRef("vault", "secret/a/b#token"), "github.token")


def test_process_environment_is_the_default(
    redactor: Redactor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOOTSTRAP_UNIT_TOKEN", TOKEN)
    secrets = Secrets(redactor, tmp_path)
    assert secrets.resolve(SecretRef("env", "BOOTSTRAP_UNIT_TOKEN"), "github.token") == TOKEN
    assert os.environ["BOOTSTRAP_UNIT_TOKEN"] == TOKEN


def test_generated_values_are_registered(redactor: Redactor, tmp_path: Path) -> None:
    secrets = secrets_for(redactor, tmp_path)
    assert secrets.generated("pw-Generated-42") == "pw-Generated-42"
    assert redactor.redact("password is pw-Generated-42.") == f"password is {MASK}."


# -- redaction ---------------------------------------------------------------------------


def test_redact_text(redactor: Redactor) -> None:
    redactor.register(TOKEN)
    assert redactor.redact(f"401 for token {TOKEN}, retry {TOKEN}") == f"401 for token {MASK}, retry {MASK}"
    assert redactor.redact("nothing secret") == "nothing secret"


def test_longest_secret_is_masked_whole(redactor: Redactor) -> None:
    redactor.register("abcd")
    redactor.register("abcdefgh-longer")
    assert redactor.redact("x abcdefgh-longer y abcd") == f"x {MASK} y {MASK}"


def test_redact_objects(redactor: Redactor) -> None:
    redactor.register(TOKEN)
    data = {
        "a": TOKEN,
        "nested": [{"b": f"Bearer {TOKEN}"}, (TOKEN, 1)],
        f"key-{TOKEN}": True,
        7: None,
    }
    assert redactor.redact_obj(data) == {
        "a": MASK,
        "nested": [{"b": f"Bearer {MASK}"}, [MASK, 1]],
        f"key-{MASK}": True,
        7: None,
    }


def test_multi_line_key_is_masked_whole_and_line_by_line(redactor: Redactor) -> None:
    redactor.register(PEM)
    assert redactor.redact(f"key:\n{PEM}done") == f"key:\n{MASK}done"
    body = PEM.splitlines()[1]
    # A single line of the key (e.g. a wrapped or re-indented copy) is masked too.
    assert body not in redactor.redact(f"  {body}\n")
    assert redactor.redact_obj({"k": PEM.replace("\n", "\r\n")})["k"].count(MASK) >= 2


@pytest.mark.parametrize("value", ["", "a", "ab", "abc"])
def test_short_values_are_not_registered(redactor: Redactor, value: str) -> None:
    assert redactor.register(value) == value
    assert value not in redactor.values
    assert redactor.redact("a cab abc") == "a cab abc"


def test_short_secret_resolves_but_is_not_registered(redactor: Redactor, tmp_path: Path) -> None:
    secrets = secrets_for(redactor, tmp_path, PIN="123")
    assert secrets.resolve(SecretRef("env", "PIN"), "x") == "123"
    assert list(redactor.values) == []


# -- logging ---------------------------------------------------------------------------------


@pytest.fixture
def logger(redactor: Redactor, caplog: pytest.LogCaptureFixture) -> Iterator[logging.Logger]:
    redactor.register(TOKEN)
    flt = RedactingFilter(redactor)
    caplog.handler.addFilter(flt)
    caplog.set_level(logging.DEBUG)
    # Other tests' libraries may have raised urllib3's level; this test sets its own.
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool.unit")
    # A library's child logger: the filter sits on the handler, so propagated records pass it too.
    yield logging.getLogger("urllib3.connectionpool.unit")
    caplog.handler.removeFilter(flt)


def test_log_filter_masks_message_and_args(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    logger.debug("POST /repos body=%s", {"token": TOKEN})
    logger.warning(f"header Authorization: token {TOKEN}")
    assert TOKEN not in caplog.text
    assert caplog.text.count(MASK) == 2


def test_log_filter_masks_tracebacks(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    try:
        raise RuntimeError(f"bad credentials {TOKEN}")
    except RuntimeError:
        logger.exception("request failed")
    assert "RuntimeError: bad credentials" in caplog.text
    assert TOKEN not in caplog.text


def test_log_filter_through_a_formatter(redactor: Redactor) -> None:
    redactor.register(TOKEN)
    records: list[str] = []

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = ListHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter(redactor))
    log = logging.getLogger("bootstrap.unit.formatter")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.error("token=%s", TOKEN)
        try:
            raise ValueError(TOKEN)
        except ValueError:
            log.exception("boom", stack_info=True)
    finally:
        log.removeHandler(handler)
    assert records[0] == f"ERROR token={MASK}"
    assert all(TOKEN not in r for r in records)
    assert "ValueError" in records[1] and "Stack (most recent call last)" in records[1]
