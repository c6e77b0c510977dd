"""The install manifest: fetched once per URL and pin, parsed once per content (clients/manifests.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from bootstrap.clients import manifests
from bootstrap.errors import PermanentError

TEXT = "---\nkind: Namespace\nmetadata:\n  name: a\n---\n---\nkind: ConfigMap\nmetadata:\n  name: b\n"


def _fetch(tmp_path: Path, text: str = TEXT) -> manifests.Manifest:
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "install.yaml"
    source.write_text(text, encoding="utf-8")
    return manifests.fetch(source.as_uri(), None, tmp_path / "cache", "argocd.install_url", "argocd.sha256")


def test_documents_are_the_non_empty_documents_and_a_fresh_copy_per_call(tmp_path: Path) -> None:
    manifest = _fetch(tmp_path)
    docs = manifests.documents(manifest, tmp_path / "cache", "argocd.install_url")
    assert [d["metadata"]["name"] for d in docs] == ["a", "b"]
    docs[0]["metadata"]["name"] = "edited by a caller"
    again = manifests.documents(manifest, tmp_path / "cache", "argocd.install_url")
    assert again[0]["metadata"]["name"] == "a"


def test_a_new_process_reads_the_parse_kept_beside_the_text(tmp_path: Path) -> None:
    """Another process finds ``<sha256 of the text>.json``: it does not parse the YAML again."""
    manifest = _fetch(tmp_path)
    manifests.documents(manifest, tmp_path / "cache", "argocd.install_url")
    kept = tmp_path / "cache" / f"{hashlib.sha256(TEXT.encode()).hexdigest()}.json"
    assert json.loads(kept.read_text()) == [
        {"kind": "Namespace", "metadata": {"name": "a"}},
        {"kind": "ConfigMap", "metadata": {"name": "b"}},
    ]
    # What a new process sees: no parse in memory, and a kept parse it can tell from a fresh one.
    kept.write_text(json.dumps([{"kind": "Namespace", "metadata": {"name": "from-the-cache"}}]))
    manifests._parsed.cache_clear()
    docs = manifests.documents(manifest, tmp_path / "cache", "argocd.install_url")
    assert docs == [{"kind": "Namespace", "metadata": {"name": "from-the-cache"}}]


def test_a_damaged_kept_parse_is_parsed_again_and_replaced(tmp_path: Path) -> None:
    manifest = _fetch(tmp_path)
    kept = tmp_path / "cache" / f"{manifest.sha256}.json"
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text('[{"kind": "Namespace", "metad')  # an interrupted writer of another tool
    manifests._parsed.cache_clear()
    docs = manifests.documents(manifest, tmp_path / "cache", "argocd.install_url")
    assert [d["metadata"]["name"] for d in docs] == ["a", "b"]
    assert json.loads(kept.read_text())[1]["metadata"]["name"] == "b"


def test_different_text_never_shares_a_parse(tmp_path: Path) -> None:
    one = _fetch(tmp_path / "one")
    other = _fetch(tmp_path / "other", TEXT.replace("name: b", "name: c"))
    cache = tmp_path / "cache"
    assert manifests.documents(one, cache, "argocd.install_url")[1]["metadata"]["name"] == "b"
    assert manifests.documents(other, cache, "argocd.install_url")[1]["metadata"]["name"] == "c"


def test_a_parse_json_cannot_hold_is_kept_in_this_process_only(tmp_path: Path) -> None:
    manifest = _fetch(tmp_path, "kind: ConfigMap\nmetadata:\n  name: a\n  stamp: 2024-01-01\n")
    docs = manifests.documents(manifest, tmp_path / "cache", "argocd.install_url")
    assert str(docs[0]["metadata"]["stamp"]) == "2024-01-01"
    assert not (tmp_path / "cache" / f"{manifest.sha256}.json").exists()


def test_invalid_yaml_names_the_field(tmp_path: Path) -> None:
    manifest = _fetch(tmp_path, "kind: [unclosed\n")
    with pytest.raises(PermanentError, match=r"^argocd\.install_url: .* is not valid YAML"):
        manifests.documents(manifest, tmp_path / "cache", "argocd.install_url")
