"""customer.yaml: models, loader hardening, error messages and the JSON Schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from bootstrap import config
from bootstrap.config import AppRoleAuth, SecretRef, TokenAuth
from bootstrap.errors import ConfigError
from tests.unit.bad_inputs import BAD_INPUTS, EXAMPLE, EXAMPLE_PATH, BadInput


def edited(old: str, new: str) -> str:
    assert EXAMPLE.count(old) == 1, old
    return EXAMPLE.replace(old, new)


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        config.parse_text(text)
    assert info.value.exit_code == 4
    return str(info.value)


def line_of(needle: str) -> int:
    """1-based line of the example that contains ``needle``."""
    return next(i for i, line in enumerate(EXAMPLE.splitlines(), 1) if needle in line)


# -- the example -----------------------------------------------------------------


def test_example_validates() -> None:
    cfg = config.load(EXAMPLE_PATH)
    assert cfg.customer.name == "kuvaq"
    assert cfg.kit.addons == ("cert-manager", "external-dns")
    assert cfg.github.token == SecretRef("env", "GITHUB_TOKEN")
    assert isinstance(cfg.vault.auth, TokenAuth)
    assert cfg.argocd.users[0].name == "deployer"
    assert cfg.vault_path("deploy-key") == "bootstrap/kuvaq/deploy-key"


def test_config_is_frozen() -> None:
    cfg = config.parse_text(EXAMPLE)
    with pytest.raises(ValueError):
        cfg.customer.name = "other"


# -- error messages: dotted path and line ----------------------------------------


def test_error_names_dotted_path_and_line() -> None:
    message = error_of(edited("  cloud: aws ", "  cloud: azure "))
    assert f"kit.cloud: Input should be 'aws' or 'gcp' (line {line_of('cloud: aws')})" in message
    assert message.startswith("customer.yaml is not valid (1 problem)")


def test_error_in_a_list_item_names_index_and_its_line() -> None:
    message = error_of(edited("[cert-manager, external-dns]", "[cert-manager, External_DNS]"))
    assert "kit.addons[1]: invalid value" in message
    assert f"(line {line_of('addons:')})" in message


def test_every_problem_is_listed() -> None:
    text = edited("  cloud: aws ", "  cloud: azure ").replace("priority: P2", "priority: P9")
    message = error_of(text)
    assert "2 problems" in message
    assert "kit.cloud" in message and "alerting.priority" in message


def test_unknown_field() -> None:
    message = error_of(edited("  cloud: aws ", "  cloud: aws\n  colour: blue "))
    assert "kit.colour: unknown field" in message
    assert f"(line {line_of('cloud: aws') + 1})" in message


def test_missing_field_points_at_its_parent() -> None:
    message = error_of(edited("  channel: alerts-kuvaq\n", ""))
    assert f"slack.channel: required field is missing (line {line_of('slack:')})" in message


def test_missing_section() -> None:
    start = EXAMPLE.index("\nalerting:")
    end = EXAMPLE.index("\nvault:")
    message = error_of(EXAMPLE[:start] + EXAMPLE[end:])
    assert "alerting: required field is missing" in message


def test_pattern_errors_explain_the_expected_form() -> None:
    message = error_of(edited("  name: kuvaq ", "  name: Kuvaq_Oy "))
    assert "customer.name: invalid value: lowercase letters, digits and '-'" in message
    assert "Kuvaq_Oy" not in message


# -- secrets in the file -----------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "literal", "field"),
    [
        ("token: env:GITHUB_TOKEN", "ghp_Zx9LiteralToken0123456789abcdef", "github.token"),
        ("token: env:SLACK_BOT_TOKEN", "xoxb-0000-1111-LiteralSlackValue", "slack.token"),
        ("api_key: env:OPSGENIE_API_KEY", "0b6e3c8a-literal-opsgenie-key", "alerting.api_key"),
        ("token: env:VAULT_TOKEN", "hvs.LiteralVaultTokenValue", "vault.auth.token"),
    ],
)
def test_literal_secret_is_rejected_without_echoing_it(old: str, literal: str, field: str) -> None:
    message = error_of(edited(old, old.split(":")[0] + ": " + literal))
    assert f"{field}: a literal secret is not allowed here" in message
    assert literal not in message


@pytest.mark.parametrize("value", ["'env: pasted-secret-value'", "'vault:pasted-secret-value'"])
def test_malformed_reference_is_not_echoed(value: str) -> None:
    message = error_of(edited("token: env:GITHUB_TOKEN", f"token: {value}"))
    assert "github.token:" in message
    assert "pasted-secret-value" not in message


@pytest.mark.parametrize(
    ("raw", "kind", "target"),
    [
        ("env:GITHUB_TOKEN", "env", "GITHUB_TOKEN"),
        ("  env:_X1  ", "env", "_X1"),
        ("file:secrets/token.txt", "file", "secrets/token.txt"),
        ("file:~/tokens/gh", "file", "~/tokens/gh"),
        ("file:/abs/path with space", "file", "/abs/path with space"),
        ("vault:secret/bootstrap/kuvaq/github#token", "vault", "secret/bootstrap/kuvaq/github#token"),
    ],
)
def test_reference_parsing(raw: str, kind: str, target: str) -> None:
    ref = SecretRef.parse(raw)
    assert (ref.kind, ref.target) == (kind, target)
    assert str(ref) == f"{kind}:{target}"


@pytest.mark.parametrize(
    "raw",
    [
        "ghp_abcdef",
        "env:",
        "env:1ABC",
        "env:A-B",
        "vault:secret",
        "vault:secret#key",
        "vault:secret/path",
        "vault:secret/path#",
        "file:",
        "file:a\x07b",
        "ENV:FOO",
        "https://example.com/token",
    ],
)
def test_invalid_references(raw: str) -> None:
    with pytest.raises(ValueError):
        SecretRef.parse(raw)


def test_reference_serialises_as_the_reference() -> None:
    cfg = config.parse_text(EXAMPLE)
    dumped = cfg.model_dump(mode="json", by_alias=True)
    assert dumped["github"]["token"] == "env:GITHUB_TOKEN"
    assert dumped["apiVersion"] == config.API_VERSION


# -- vault.auth: a discriminated union ----------------------------------------------

_TOKEN_AUTH = "    method: token\n    token: env:VAULT_TOKEN\n"


def test_approle_auth_parses() -> None:
    cfg = config.parse_text(
        edited(_TOKEN_AUTH, "    method: approle\n    role_id: r-123\n    secret_id: file:approle.secret\n")
    )
    assert isinstance(cfg.vault.auth, AppRoleAuth)
    assert cfg.vault.auth.secret_id == SecretRef("file", "approle.secret")


def test_token_auth_missing_token_path_has_no_union_tag() -> None:
    message = error_of(edited(_TOKEN_AUTH, "    method: token\n"))
    assert f"vault.auth.token: required field is missing (line {line_of('auth:')})" in message
    assert "token.token" not in message


def test_approle_missing_secret_id_path_has_no_union_tag() -> None:
    message = error_of(edited(_TOKEN_AUTH, "    method: approle\n    role_id: r-123\n"))
    assert "vault.auth.secret_id: required field is missing" in message
    assert "approle" not in message.split("vault.auth")[1].split(":")[0]


def test_approle_literal_secret_id_names_the_field_and_its_line() -> None:
    message = error_of(
        edited(_TOKEN_AUTH, "    method: approle\n    role_id: r-1\n    secret_id: s3cr3t-value\n")
    )
    assert "vault.auth.secret_id: a literal secret is not allowed here" in message
    assert message.endswith(f"(line {line_of('auth:') + 3})")
    assert "s3cr3t-value" not in message


def test_unknown_auth_method() -> None:
    message = error_of(edited("    method: token\n", "    method: ldap\n"))
    assert "vault.auth:" in message and "'token', 'approle'" in message


def test_vault_credential_cannot_come_from_vault() -> None:
    message = error_of(edited("token: env:VAULT_TOKEN", "token: vault:secret/root#token"))
    assert "vault: the Vault credential cannot itself come from Vault" in message


# -- list rules ----------------------------------------------------------------------


def test_duplicate_addons() -> None:
    message = error_of(edited("[cert-manager, external-dns]", "[cert-manager, external-dns, cert-manager]"))
    assert "kit: addons listed twice: cert-manager" in message


def test_duplicate_users() -> None:
    message = error_of(edited("  sso:\n", "    - name: deployer\n  sso:\n"))
    assert "argocd: users listed twice: deployer" in message


def test_admin_user_is_refused() -> None:
    message = error_of(edited("name: deployer", "name: admin"))
    assert "argocd.users[0]: 'admin' is managed by the tool" in message


# -- loader hardening ------------------------------------------------------------------


def test_aliases_are_refused() -> None:
    message = error_of(
        "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b]\n"
    )
    assert "anchors and aliases are not allowed" in message
    assert "(line 1" in message


def test_anchor_without_alias_is_refused() -> None:
    message = error_of(edited("  cloud: aws ", "  cloud: &c aws "))
    assert "anchors and aliases are not allowed" in message
    assert f"(line {line_of('cloud: aws')}" in message


def test_duplicate_keys_are_refused() -> None:
    message = error_of(edited("  cloud: aws ", "  cloud: gcp\n  cloud: aws "))
    assert f"kit.cloud: key given twice (line {line_of('cloud: aws') + 1})" in message


def test_non_scalar_keys_are_refused() -> None:
    message = error_of(edited("kit:\n", "kit:\n  ? [a, b]\n  : 1\n"))
    assert "kit: keys must be plain names" in message


def test_unknown_apiversion() -> None:
    message = error_of(edited("apiVersion: bootstrap.gitops.dev/v1", "apiVersion: bootstrap.gitops.dev/v9"))
    assert "apiVersion 'bootstrap.gitops.dev/v9' is not supported (line 4)" in message
    assert config.API_VERSION in message


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "hello\n", "42\n", "~\n"])
def test_wrong_top_level_type(text: str) -> None:
    assert "expected a mapping with apiVersion, customer, kit" in error_of(text)


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "customer.yaml"
    path.write_bytes(EXAMPLE.replace("Kuvaq Oy", "Kuvaq @@").encode().replace(b"@@", b"\xd6y"))
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert str(info.value) == f"{path}: not UTF-8 text (bad byte at line {line_of('Kuvaq Oy')})"


def test_nul_bytes(tmp_path: Path) -> None:
    path = tmp_path / "customer.yaml"
    path.write_bytes(EXAMPLE.encode() + b"\x00")
    with pytest.raises(ConfigError, match="contains NUL bytes"):
        config.load(path)


def test_oversized_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "customer.yaml"
    path.write_bytes(EXAMPLE.encode() + b"#" * config.MAX_FILE_BYTES)
    with pytest.raises(
        ConfigError, match=f"too large for a customer file \\(limit {config.MAX_FILE_BYTES}\\)"
    ):
        config.load(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        config.load(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        config.load(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(tmp_path / "file" / "customer.yaml")


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    assert "nesting too deep" in error_of(EXAMPLE + "deep: " + "[" * 600 + "]" * 600 + "\n")


def test_yaml_syntax_error_names_line_and_column() -> None:
    message = error_of(edited("  name: kuvaq ", "\tname: kuvaq "))
    assert re.search(rf"not valid YAML \(line {line_of('name: kuvaq')}, column 1\)", message)


# -- the bad-input corpus ------------------------------------------------------------------


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c.id for c in BAD_INPUTS])
def test_bad_input_corpus(case: BadInput, tmp_path: Path) -> None:
    path = tmp_path / "customer.yaml"
    path.write_bytes(case.content)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    message = str(info.value)
    assert info.value.exit_code == 4
    assert str(path) in message
    assert case.mentions in message
    if case.secret is not None:
        assert case.secret not in message
    assert len(message) < 4000, "an error message must not echo a huge value"


def test_bad_input_corpus_is_big_enough() -> None:
    assert len(BAD_INPUTS) >= 40
    assert len({c.id for c in BAD_INPUTS}) == len(BAD_INPUTS)


# -- JSON Schema ------------------------------------------------------------------------------


def test_schema_is_json_with_every_section() -> None:
    schema = json.loads(config.schema_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == {
        "apiVersion",
        "customer",
        "kit",
        "github",
        "cluster",
        "argocd",
        "slack",
        "alerting",
        "vault",
        "hub",
    }
    assert {"customer", "kit", "github", "slack", "alerting", "vault"} <= set(schema["required"])
    assert schema["additionalProperties"] is False
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("GitHub", "token"),
        ("Slack", "token"),
        ("Alerting", "api_key"),
        ("JsmAccess", "api_token"),
        ("TokenAuth", "token"),
    ],
)
def test_schema_secret_fields_have_the_reference_pattern(section: str, field: str) -> None:
    prop = config.json_schema()["$defs"][section]["properties"][field]
    prop = next((p for p in prop.get("anyOf", []) if "pattern" in p), prop)  # optional: {ref} | null
    pattern = re.compile(prop["pattern"])
    assert pattern.match("env:GITHUB_TOKEN")
    assert pattern.match("vault:secret/a/b#key")
    assert not pattern.match("ghp_literal")


def test_example_is_valid_against_the_schema() -> None:
    data = yaml.safe_load(EXAMPLE)
    jsonschema.Draft202012Validator(config.json_schema()).validate(data)


def test_alerting_credentials_follow_the_provider() -> None:
    from sandbox import customer as sandbox_customer

    ep = sandbox_customer.Endpoints("http://g", "http://s", "http://o", "http://v", "k", "file:///m")
    doc = sandbox_customer.document(ep)
    del doc["alerting"]["api_key"]
    with pytest.raises(ConfigError, match=r"alerting: .*provider opsgenie needs api_key"):
        config.parse_text(yaml.safe_dump(doc))
    doc["alerting"]["provider"] = "jsm"
    with pytest.raises(ConfigError, match=r"alerting: .*provider jsm needs jsm"):
        config.parse_text(yaml.safe_dump(doc))
    doc["alerting"]["jsm"] = {"site": "kuvaq", "email": "sre@kuvaq.example", "api_token": "env:JSM_API_TOKEN"}
    loaded = config.parse_text(yaml.safe_dump(doc))
    assert loaded.alerting.jsm is not None and loaded.alerting.api_key is None
    doc["alerting"]["jsm"]["api_token"] = "ATATT3xLiteralToken"
    with pytest.raises(ConfigError, match=r"alerting\.jsm\.api_token: a literal secret is not allowed"):
        config.parse_text(yaml.safe_dump(doc))
    doc["alerting"]["jsm"] = {"site": "Not A Site", "email": "x@y.z", "api_token": "env:T"}
    with pytest.raises(ConfigError, match=r"alerting\.jsm\.site: invalid value: the Atlassian site name"):
        config.parse_text(yaml.safe_dump(doc))
