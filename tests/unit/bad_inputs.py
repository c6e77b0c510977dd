"""A corpus of malformed and hostile customer files, shared by the unit and reliability suites.

Each case is the example customer file with one thing broken (or a file that is
not a customer file at all). Loading any of them must raise ``ConfigError``
(exit 4) whose message names the file and, where there is one, the field, and
never echoes a secret. ``mentions`` is the field path (or phrase) the message
must contain; ``secret`` is a value that must not appear in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXAMPLE_PATH = Path(__file__).resolve().parents[2] / "inventory" / "example" / "customer.yaml"
EXAMPLE_ENV = {
    "GITHUB_TOKEN": "ghp_example",
    "KIT_TOKEN": "github_pat_example",
    "SLACK_BOT_TOKEN": "xoxb-example",
    "OPSGENIE_API_KEY": "og-example",
    "JSM_API_TOKEN": "atlassian-example",
    "VAULT_TOKEN": "hvs.example",
}
"""What the example's env: references need to resolve (validate checks them)."""
EXAMPLE = EXAMPLE_PATH.read_text(encoding="utf-8")


@dataclass(frozen=True)
class BadInput:
    id: str
    content: bytes
    mentions: str = ""
    secret: str | None = None


def _edit(old: str, new: str) -> bytes:
    """The example with ``old`` replaced (it must be there: a changed example fails loudly)."""
    if EXAMPLE.count(old) != 1:
        raise AssertionError(f"bad_inputs: {old!r} is not exactly once in {EXAMPLE_PATH}")
    return EXAMPLE.replace(old, new).encode()


def _append(text: str) -> bytes:
    return (EXAMPLE + text).encode()


_NAME = "  name: kuvaq "
_BILLION_LAUGHS = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
)

BAD_INPUTS: list[BadInput] = [
    # -- not a customer file at all
    BadInput("empty-file", b""),
    BadInput("only-comments", b"# nothing here\n# at all\n"),
    BadInput("list-at-top-level", b"- apiVersion: bootstrap.gitops.dev/v1\n- customer: {}\n"),
    BadInput("scalar-at-top-level", b"just a string\n"),
    BadInput("null-document", b"~\n"),
    BadInput("two-documents", _append("---\ncustomer: {}\n")),
    BadInput("not-utf8-latin1", _edit("Kuvaq Oy", "Kuvaq @@").replace(b"@@", "\u00d6y".encode("latin-1"))),
    BadInput("utf16-file", EXAMPLE.encode("utf-16")),
    BadInput("nul-byte", _edit("Kuvaq Oy", "Kuvaq\x00Oy")),
    BadInput("raw-control-character", _edit("Kuvaq Oy", "Kuvaq\x1b[2JOy")),
    BadInput("tab-indentation", _edit(_NAME, "\tname: kuvaq ")),
    BadInput("oversized-file", _append("# " + "x" * (300 * 1024) + "\n")),
    BadInput("deeply-nested-flow", _append("deep: " + "[" * 600 + "]" * 600 + "\n")),
    BadInput("deeply-nested-mapping", _append("deep: " + "{a: " * 600 + "1" + "}" * 600 + "\n")),
    BadInput("yaml-bomb-aliases", _BILLION_LAUGHS.encode()),
    BadInput("anchor-and-alias", _edit("  cloud: aws ", "  cloud: &c aws ") + b"extra: *c\n"),
    BadInput("python-object-tag", _edit("Kuvaq Oy", "!!python/object/apply:os.system ['id']")),
    BadInput("unbalanced-flow", _edit("[cert-manager, external-dns]", "[cert-manager, external-dns")),
    BadInput("complex-mapping-key", _edit("kit:\n", "kit:\n  ? [a, b]\n  : 1\n"), "kit"),
    BadInput(
        "integer-too-long", _edit("  version: v3.3.0", "  version: v3.3.0\n  wait_timeout: " + "9" * 5000)
    ),
    BadInput("impossible-date", _edit("Kuvaq Oy", "2024-13-45")),
    # -- envelope
    BadInput(
        "unknown-apiversion", _edit("apiVersion: bootstrap.gitops.dev/v1", "apiVersion: v2"), "apiVersion"
    ),
    BadInput(
        "apiversion-is-a-list", _edit("apiVersion: bootstrap.gitops.dev/v1", "apiVersion: [1]"), "apiVersion"
    ),
    BadInput("apiversion-missing", _edit("apiVersion: bootstrap.gitops.dev/v1", ""), "apiVersion"),
    BadInput("unknown-top-level-field", _append("extra: 1\n"), "extra"),
    BadInput("missing-section", _edit("slack:\n  token:", "slac:\n  token:"), "slack"),
    BadInput("section-is-null", _edit("customer:\n", "customer: ~\nold_customer:\n"), "customer"),
    BadInput("duplicate-key", _edit("  cloud: aws ", "  cloud: aws\n  cloud: gcp "), "kit.cloud"),
    # -- hostile names (path traversal, option injection, control characters, huge strings)
    BadInput("name-path-traversal", _edit(_NAME, "  name: ../../etc "), "customer.name"),
    BadInput("name-uppercase", _edit(_NAME, "  name: Kuvaq "), "customer.name"),
    BadInput("name-huge", _edit(_NAME, "  name: " + "a" * 100_000 + " "), "customer.name"),
    BadInput("name-control-character", _edit(_NAME, '  name: "kuvaq\\a" '), "customer.name"),
    BadInput("name-nul-escape", _edit(_NAME, '  name: "kuv\\0aq" '), "customer.name"),
    BadInput("name-is-a-bool", _edit(_NAME, "  name: true "), "customer.name"),
    BadInput("name-is-a-mapping", _edit(_NAME, "  name: {a: 1} "), "customer.name"),
    BadInput(
        "domain-not-a-domain", _edit("domain: kuvaq.example.com", "domain: localhost"), "customer.domain"
    ),
    BadInput("display-name-huge", _edit("Kuvaq Oy", "K" * 5000), "customer.display_name"),
    BadInput("github-path-traversal", _edit("  path: argocd", "  path: ../../etc"), "github.path"),
    BadInput("github-path-absolute", _edit("  path: argocd", "  path: /etc/passwd"), "github.path"),
    BadInput("github-path-inner-dotdot", _edit("  path: argocd", "  path: argocd/../../etc"), "github.path"),
    BadInput("kit-version-traversal", _edit("  version: v1.4 ", "  version: ../../etc "), "kit.version"),
    BadInput(
        "kit-version-inner-dotdot", _edit("  version: v1.4 ", "  version: v1.4/../../etc "), "kit.version"
    ),
    BadInput("kit-version-double-dot", _edit("  version: v1.4 ", "  version: v1..4 "), "kit.version"),
    BadInput(
        "kit-version-option-injection",
        _edit("  version: v1.4 ", "  version: --upload-pack=x "),
        "kit.version",
    ),
    BadInput("kit-version-huge", _edit("  version: v1.4 ", "  version: v" + "1" * 5000 + " "), "kit.version"),
    BadInput("kit-repo-dotdot", _edit("repo: acme-sre/kit-core", "repo: acme-sre/.."), "kit.repo"),
    BadInput(
        "infra-repo-traversal",
        _edit("infra_repo: kuvaq/infra", "infra_repo: ../etc/passwd"),
        "github.infra_repo",
    ),
    BadInput("branch-newline", _edit("  branch: main", '  branch: "main\\nevil"'), "github.branch"),
    BadInput("vault-prefix-traversal", _edit("  prefix: bootstrap", "  prefix: ../sys"), "vault.prefix"),
    BadInput("vault-mount-traversal", _edit("  mount: secret", "  mount: secret/../sys"), "vault.mount"),
    BadInput(
        "api-url-file-scheme",
        _edit("  org: kuvaq", "  org: kuvaq\n  api_url: file:///etc/passwd"),
        "github.api_url",
    ),
    BadInput(
        "vault-url-javascript",
        _edit("url: https://vault.acme-sre.example", "url: javascript:alert(1)"),
        "vault.url",
    ),
    BadInput(
        "namespace-uppercase",
        _edit("  version: v3.3.0", "  version: v3.3.0\n  namespace: Kube-System"),
        "argocd.namespace",
    ),
    BadInput(
        "admin-team-policy-injection",
        _edit("admin_team: sre", 'admin_team: "sre\\np, role:readonly, *, *, */*, allow"'),
        "argocd.sso.admin_team",
    ),
    BadInput("slack-channel-hash", _edit("channel: alerts-kuvaq", "channel: '#Alerts'"), "slack.channel"),
    BadInput("slack-invite-bad-id", _edit("invite: [U024BE7LH]", "invite: [bob]"), "slack.invite[0]"),
    BadInput("topic-huge", _edit("topic: Alerts for Kuvaq production", "topic: " + "t" * 300), "slack.topic"),
    # -- wrong types and values
    BadInput("cloud-unknown", _edit("  cloud: aws ", "  cloud: azure "), "kit.cloud"),
    BadInput("addons-is-a-string", _edit("[cert-manager, external-dns]", "cert-manager"), "kit.addons"),
    BadInput(
        "addon-bad-name",
        _edit("[cert-manager, external-dns]", "[cert-manager, External_DNS]"),
        "kit.addons[1]",
    ),
    BadInput(
        "addons-duplicate", _edit("[cert-manager, external-dns]", "[cert-manager, cert-manager]"), "kit"
    ),
    BadInput("values-is-a-list", _edit("  values:  ", "  values: []\n  old_values:  "), "kit.values"),
    BadInput("user-admin", _edit("name: deployer", "name: admin"), "argocd.users[0]"),
    BadInput("users-duplicate", _edit("  sso:\n", "    - name: deployer\n  sso:\n"), "argocd"),
    BadInput("users-is-a-mapping", _edit("  users:\n", "  users: {a: 1}\n  old_users:\n"), "argocd.users"),
    BadInput(
        "wait-timeout-text",
        _edit("  version: v3.3.0", "  version: v3.3.0\n  wait_timeout: soon"),
        "argocd.wait_timeout",
    ),
    BadInput(
        "wait-timeout-negative",
        _edit("  version: v3.3.0", "  version: v3.3.0\n  wait_timeout: -1"),
        "argocd.wait_timeout",
    ),
    BadInput("sha256-not-hex", _edit("sha256: null", "sha256: xyz"), "argocd.sha256"),
    BadInput("priority-unknown", _edit("priority: P2", "priority: P9"), "alerting.priority"),
    BadInput(
        "responder-type-unknown",
        _edit("    - type: team", "    - type: robot"),
        "alerting.responders[0].type",
    ),
    BadInput("unknown-nested-field", _edit("  cloud: aws ", "  cloud: aws\n  colour: blue "), "kit.colour"),
    # -- secrets: a literal value is refused and never echoed
    BadInput(
        "literal-github-token",
        _edit("token: env:GITHUB_TOKEN", "token: ghp_LiteralSecret0123456789"),
        "github.token",
        "ghp_LiteralSecret0123456789",
    ),
    BadInput(
        "literal-slack-token",
        _edit("token: env:SLACK_BOT_TOKEN", "token: xoxb-1111-2222-LiteralSlackSecret"),
        "slack.token",
        "LiteralSlackSecret",
    ),
    BadInput(
        "env-ref-with-secret-pasted",
        _edit("api_key: env:OPSGENIE_API_KEY", "api_key: 'env: og-LiteralKey-9f8e7d'"),
        "alerting.api_key",
        "og-LiteralKey-9f8e7d",
    ),
    BadInput(
        "vault-ref-malformed",
        _edit("api_key: env:OPSGENIE_API_KEY", "api_key: 'vault:og-LiteralKey-1a2b3c'"),
        "alerting.api_key",
        "og-LiteralKey-1a2b3c",
    ),
    BadInput(
        "literal-vault-token",
        _edit("token: env:VAULT_TOKEN", "token: hvs.LiteralVaultToken42"),
        "vault.auth.token",
        "hvs.LiteralVaultToken42",
    ),
    BadInput("vault-auth-method-unknown", _edit("method: token", "method: ldap"), "vault.auth"),
    BadInput(
        "vault-token-from-vault", _edit("token: env:VAULT_TOKEN", "token: vault:secret/root#token"), "vault"
    ),
    BadInput(
        "approle-without-secret-id",
        _edit("    method: token\n    token: env:VAULT_TOKEN", "    method: approle\n    role_id: r-1"),
        "vault.auth.secret_id",
    ),
    BadInput("secret-ref-is-a-number", _edit("token: env:SLACK_BOT_TOKEN", "token: 12345678"), "slack.token"),
    BadInput(
        "secret-ref-control-character",
        _edit("token: env:SLACK_BOT_TOKEN", 'token: "file:a\\x07b"'),
        "slack.token",
    ),
]
