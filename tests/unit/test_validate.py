"""`bootstrap validate`: offline, every problem of every file at once, each with its field and line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bootstrap import config, secrets
from bootstrap.config import SecretRef
from tests.unit.bad_inputs import EXAMPLE_ENV as ENV

EXAMPLE = Path(__file__).resolve().parents[2] / "inventory" / "example" / "customer.yaml"


def validate(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ENV}
    return subprocess.run(
        [sys.executable, "-m", "bootstrap", "validate", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def broken(tmp_path: Path) -> Path:
    """A file with four unrelated mistakes: two schema errors and two references that do not resolve."""
    text = EXAMPLE.read_text()
    text = text.replace("  cloud: aws", "  cloud: azure", 1)
    text = text.replace("  channel: ", "  chanel: ", 1)
    text = text.replace("token: env:GITHUB_TOKEN", "token: file:secrets/github-token", 1)
    path = tmp_path / "customer.yaml"
    path.write_text(text)
    return path


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_every_problem_in_one_go_with_field_and_line(tmp_path: Path) -> None:
    path = broken(tmp_path)
    env = {k: v for k, v in ENV.items() if k != "SLACK_BOT_TOKEN"}
    result = validate(str(path), cwd=tmp_path, env=env)
    assert result.returncode == 4
    assert result.stderr.startswith(f"error: {path} is not valid (5 problems):")
    for expected in (
        f"kit.cloud: Input should be 'aws' or 'gcp' (line {line_of(path, 'cloud: azure')})",
        f"slack.chanel: unknown field (check the spelling; `bootstrap schema` lists the fields) "
        f"(line {line_of(path, 'chanel:')})",
        f"slack.channel: required field is missing (line {line_of(path, 'slack:')})",
        f"github.token: file {tmp_path}/secrets/github-token does not exist "
        f"(line {line_of(path, 'file:secrets')})",
        "slack.token: environment variable SLACK_BOT_TOKEN is not set",
    ):
        assert expected in result.stderr, result.stderr
    assert "`bootstrap check`" in result.stderr  # says what offline cannot see
    assert result.stdout == ""


def test_json_lists_the_problems_of_several_files(tmp_path: Path) -> None:
    bad = broken(tmp_path)
    good_dir = tmp_path / "good"
    good_dir.mkdir()
    good = good_dir / "customer.yaml"
    good.write_text(EXAMPLE.read_text())
    result = validate(str(good), str(bad), "-o", "json", cwd=tmp_path, env=ENV)
    assert result.returncode == 4
    problems = json.loads(result.stdout)
    assert {p["file"] for p in problems} == {str(bad)}
    assert {p["field"] for p in problems} == {"kit.cloud", "slack.chanel", "slack.channel", "github.token"}
    assert all(isinstance(p["line"], int) and p["message"] for p in problems)
    ok = validate(str(good), "-o", "json", cwd=tmp_path, env=ENV)
    assert ok.returncode == 0 and json.loads(ok.stdout) == []


def test_secret_files_must_be_private_readable_and_non_empty(tmp_path: Path) -> None:
    target = tmp_path / "token"
    ref = SecretRef("file", "token")
    assert "does not exist" in (secrets.offline_problem(ref, tmp_path, {}) or "")
    target.write_text("s3cret-value\n")
    target.chmod(0o644)
    assert "readable by every user" in (secrets.offline_problem(ref, tmp_path, {}) or "")
    target.chmod(0o600)
    assert secrets.offline_problem(ref, tmp_path, {}) is None
    target.write_text("  \n")
    assert "is empty" in (secrets.offline_problem(ref, tmp_path, {}) or "")
    (tmp_path / "dir").mkdir()
    assert "not a regular file" in (secrets.offline_problem(SecretRef("file", "dir"), tmp_path, {}) or "")
    env = SecretRef("env", "X")
    assert "not set" in (secrets.offline_problem(env, tmp_path, {}) or "")
    assert "is empty" in (secrets.offline_problem(env, tmp_path, {"X": " "}) or "")
    assert secrets.offline_problem(SecretRef("vault", "secret/a/b#c"), tmp_path, {}) is None


def test_secret_fields_are_found_from_the_models() -> None:
    dotted = {".".join(map(str, loc)) for loc in config.SECRET_FIELDS}
    assert dotted == {
        "kit.credentials.token",
        "github.token",
        "slack.user_token",
        "slack.token",
        "alerting.api_key",
        "alerting.jsm.api_token",
        "argocd.sso.client_secret",
        "vault.auth.token",
        "vault.auth.secret_id",
    }


def test_a_config_knows_the_line_of_each_field() -> None:
    cfg = config.load(EXAMPLE)
    assert cfg.line("kit.addons[1]") == line_of(EXAMPLE, "addons: [cert-manager, external-dns]")
    assert cfg.located("kit.version", "no such branch") == (
        f"kit.version: no such branch (line {line_of(EXAMPLE, 'version: v1.4')})"
    )
    assert [f for f, _ in cfg.references()] == [
        "kit.credentials.token",
        "github.token",
        "slack.token",
        "alerting.api_key",
        "alerting.jsm.api_token",
        "vault.auth.token",
    ]
