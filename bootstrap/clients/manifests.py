"""Fetching pinned install manifests (Argo CD's install.yaml) with a checksum and a cache.

Guarantees: the text returned is exactly what ``sha256`` pins, when a pin is
given (a mismatch is a PermanentError naming the config field and both
digests, never "close enough"); a manifest is downloaded once per URL and pin
and then read from the cache directory, so re-runs and plans work offline and
do not depend on GitHub's raw host; the cache is written atomically, so an
interrupted download never poisons it.

The parsed documents are cached too (``documents``): parsing Argo CD's ~2 MB
manifest costs ~0.5 s of CPU even with libyaml, and every process that plans
argocd-install (each run, each no-op re-run, each ``plan``) needed it; the same
documents read back as JSON cost ~15 ms.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.errors import PermanentError, RetryableError

TIMEOUT = 30.0
MAX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Manifest:
    url: str
    text: str
    sha256: str
    cached: bool
    """True when the text came from the cache (no download)."""


def fetch(
    url: str, pin: str | None, cache_dir: Path, url_field: str, pin_field: str, store: bool = True
) -> Manifest:
    """The manifest at ``url`` (http, https or file), verified against ``pin`` when given.

    ``store=False`` reads the cache but never writes it (the preflight writes nothing).
    """
    key = hashlib.sha256(f"{url}\n{pin or ''}".encode()).hexdigest()[:32]
    cached = cache_dir / f"{key}.yaml"
    if cached.is_file():
        text = cached.read_text(encoding="utf-8")
        digest = hashlib.sha256(text.encode()).hexdigest()
        if pin is None or digest == pin:
            return Manifest(url, text, digest, True)
    raw = _download(url, url_field)
    digest = hashlib.sha256(raw).hexdigest()
    if pin is not None and digest != pin:
        raise PermanentError(
            f"{pin_field}: the manifest at {url} has sha256 {digest}, but {pin_field} pins {pin}; "
            f"check {url_field} and the version, then update {pin_field} if the new manifest is intended"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PermanentError(f"{url_field}: {url} is not UTF-8 text") from None
    if not store:
        return Manifest(url, text, digest, False)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".download-")
    with os.fdopen(fd, "wb") as f:
        f.write(raw)
    os.replace(tmp, cached)
    return Manifest(url, text, digest, False)


def documents(manifest: Manifest, cache_dir: Path, url_field: str) -> list[Any]:
    """The manifest's non-empty YAML documents, a fresh copy per call (callers edit them).

    Parsed once per content digest: in this process (a fleet plans many customers on the same
    manifest) and across processes through ``<sha256>.json`` beside the cached text. The key is
    the digest of the text itself, so a cached parse can only belong to identical text; a parse
    that JSON cannot hold (a YAML timestamp, say) is kept for this process only.
    """
    parsed = _parsed(manifest.sha256, manifest.text, cache_dir, url_field, manifest.url)
    docs: list[Any] = pickle.loads(parsed)
    return docs


@functools.lru_cache(maxsize=4)
def _parsed(sha256: str, text: str, cache_dir: Path, url_field: str, url: str) -> bytes:
    """Pickled, so that each caller unpickles its own copy (~15 ms) instead of sharing mutable lists."""
    import yaml

    cached = cache_dir / f"{sha256}.json"
    with contextlib.suppress(OSError, ValueError):
        return pickle.dumps(json.loads(cached.read_text(encoding="utf-8")))
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        docs = [d for d in yaml.load_all(text, Loader=loader) if d]
    except yaml.YAMLError as exc:
        raise PermanentError(f"{url_field}: {url} is not valid YAML: {exc}") from None
    # A cache that cannot be written is no cache: the next process parses again.
    with contextlib.suppress(OSError, TypeError, ValueError):
        encoded = json.dumps(docs, separators=(",", ":"))
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".parse-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(encoded)
        os.replace(tmp, cached)
    return pickle.dumps(docs)


def _download(url: str, field: str) -> bytes:
    # Here, not at the top: urllib.request brings http.client and ssl, and every command that
    # lists the steps (status, validate) imports this module without downloading anything.
    import urllib.error
    import urllib.parse
    import urllib.request

    scheme = urllib.parse.urlsplit(url).scheme
    if scheme == "file":
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        try:
            return path.read_bytes()
        except OSError as exc:
            raise PermanentError(
                f"{field}: cannot read {path}: {exc.strerror or type(exc).__name__}"
            ) from None
    if scheme not in ("http", "https"):
        raise PermanentError(f"{field}: {url} must be an https://, http:// or file:// URL")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
            raw: bytes = resp.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code == 429:
            raise RetryableError(f"{url} answered {exc.code}; run again later") from None
        raise PermanentError(
            f"{field}: {url} answered {exc.code}; check the URL and argocd.version"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise RetryableError(f"could not download {url} ({type(exc).__name__}); check the network") from None
    if len(raw) > MAX_BYTES:
        raise PermanentError(f"{field}: {url} is larger than {MAX_BYTES} bytes; is it really a manifest?")
    return raw
