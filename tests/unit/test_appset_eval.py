"""The generator-evaluation helper itself: label-selector and Go template semantics it claims."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures import appset_eval
from tests.fixtures.appset_eval import GoTemplate, TemplateError, Unsupported, selects

LABELS = {"env": "prod", "tier": "web"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (None, True),
        ({}, True),
        ({"matchLabels": {"env": "prod"}}, True),
        ({"matchLabels": {"env": "dev"}}, False),
        ({"matchLabels": {"env": "prod", "missing": "x"}}, False),
        ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["dev", "prod"]}]}, True),
        ({"matchExpressions": [{"key": "nope", "operator": "In", "values": ["x"]}]}, False),
        ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}, False),
        (
            {"matchExpressions": [{"key": "nope", "operator": "NotIn", "values": ["x"]}]},
            True,
        ),  # absent: holds
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "nope", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "nope", "operator": "DoesNotExist"}]}, True),
        ({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, False),
        (
            {
                "matchLabels": {"env": "prod"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}],
            },
            False,
        ),
    ],
)
def test_label_selector_semantics(selector: dict[str, Any] | None, expected: bool) -> None:
    assert selects(selector, LABELS) is expected


@pytest.mark.parametrize(
    "expr",
    [
        {"key": "env", "operator": "In", "values": []},
        {"key": "env", "operator": "Exists", "values": ["x"]},
        {"key": "env", "operator": "Gt", "values": ["1"]},
    ],
)
def test_invalid_selectors_are_refused(expr: dict[str, Any]) -> None:
    with pytest.raises(appset_eval.InvalidSelector):
        selects({"matchExpressions": [expr]}, LABELS)


PARAMS = {"name": "c1", "server": "https://c1", "metadata": {"labels": {"a/b": "x"}, "annotations": {}}}


@pytest.mark.parametrize(
    ("template", "out"),
    [
        ("{{.name}}-app", "c1-app"),
        ("{{ .name }}/{{ .server }}", "c1/https://c1"),
        ('{{ index .metadata.labels "a/b" }}', "x"),
        ('[{{ index .metadata.labels "gone" }}]', "[]"),  # Go: index on a missing key = zero value
        ('{{ if hasKey .metadata.labels "a/b" }}yes{{ else }}no{{ end }}', "yes"),
        ('{{ if not (hasKey .metadata.labels "z") }}none{{ end }}', "none"),
        ('{{ printf "%s-%s" .name "x" }}', "c1-x"),
        ("a  {{- .name -}}  b", "ac1b"),
        ('{{ .name | printf "<%s>" }}', "<c1>"),
        ('{{ if eq .name "c1" "c2" }}match{{ end }}', "match"),
        ('{{ or "" "fallback" }}', "fallback"),  # Go: the deciding operand, not a bool
        ('{{ and "a" "b" }}', "b"),
        (r'{{ printf "%s" "caf\u00e9 \"q\"" }}', 'café "q"'),
    ],
)
def test_go_template_subset(template: str, out: str) -> None:
    assert GoTemplate(template).execute(PARAMS, strict=True) == out


def test_missingkey_error_only_for_field_chains() -> None:
    with pytest.raises(TemplateError, match='no entry for key "missing"'):
        GoTemplate("{{ .missing }}").execute(PARAMS, strict=True)
    with pytest.raises(TemplateError, match='no entry for key "nope"'):
        GoTemplate("{{ .metadata.nope }}").execute(PARAMS, strict=True)
    assert GoTemplate("{{ .missing }}").execute(PARAMS, strict=False) == "<no value>"


def test_fail_raises_with_its_message() -> None:
    with pytest.raises(TemplateError, match="error calling fail: cluster c1 is bad"):
        GoTemplate('{{ fail (printf "cluster %s is bad" .name) }}').execute(PARAMS, strict=True)


@pytest.mark.parametrize(
    "template", ["{{ range .x }}{{ end }}", "{{ toYaml .name }}", "{{ if .name }}", "{{ .name"]
)
def test_outside_the_subset_is_refused_not_guessed(template: str) -> None:
    with pytest.raises(Unsupported):
        GoTemplate(template).execute(PARAMS, strict=True)


def _secret(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"cluster-{name}",
            "labels": {"argocd.argoproj.io/secret-type": "cluster", **labels},
        },
        "stringData": {"name": name, "server": f"https://{name}"},
    }


def _encoded_secret() -> dict[str, Any]:
    """A Secret as the API returns it: ``data`` base64 (name ``data-name``, server ``https://b64``)."""
    return {
        "metadata": {"name": "cluster-b64", "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
        "data": {"name": "ZGF0YS1uYW1l", "server": "aHR0cHM6Ly9iNjQ="},
    }


def test_cluster_generator_params_and_local_cluster() -> None:
    appset = {
        "metadata": {"name": "s", "namespace": "argocd"},
        "spec": {
            "goTemplate": True,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [{"clusters": {}}],
            "template": {
                "metadata": {"name": "{{ .nameNormalized }}-x"},
                "spec": {"project": "{{ .project }}"},
            },
        },
    }
    secrets = [_secret("My_Cluster", {"env": "prod"}), _encoded_secret()]
    result = appset_eval.expand(appset, secrets)
    # An empty selector targets every cluster, the local one (no Secret) included.
    assert sorted(result.applications) == ["My_Cluster", "data-name", "in-cluster"]
    assert result.applications["My_Cluster"][0]["metadata"] == {"name": "my-cluster-x", "namespace": "argocd"}
    appset["spec"]["generators"] = [{"clusters": {"selector": {"matchLabels": {"env": "prod"}}}}]
    assert sorted(appset_eval.expand(appset, secrets).applications) == ["My_Cluster"]
    # Secrets without the cluster type label are not clusters.
    plain = {
        "metadata": {"name": "x", "labels": {"env": "prod"}},
        "stringData": {"name": "x", "server": "https://x"},
    }
    assert sorted(appset_eval.expand(appset, [plain]).applications) == []
