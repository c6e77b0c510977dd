"""Running the cluster playbooks through ansible-runner without leaking secrets.

What this adapter guarantees, and why:

* every run gets a **fresh private data dir** (mode 0700) that is removed
  afterwards: ansible-runner saves ``env/cmdline`` and silently reuses it, so a
  reused dir would turn a real run into a check run (REFERENCE.md §8);
* secret values travel in their own vars file (0600) inside that dir, never in
  ``extravars`` (which runner writes to ``env/extravars``) nor on a command line;
* module payloads are piped (``ANSIBLE_PIPELINING``) and temp files go inside the
  private dir, so no module arguments are left in ``~/.ansible/tmp``;
* job events are kept in memory only (runner writes none of them, nor stdout,
  to the artifacts dir), and every string taken from them is masked against
  the secret values (raw and base64) before it reaches a result or an error;
* a run killed outright (SIGKILL, power loss) leaves no secret behind for long:
  the secret vars file and runner's ``artifacts/*/command`` (which records the
  whole process environment, tokens included) are deleted as soon as the
  playbook has started, i.e. once ansible-playbook has read them, and the next
  playbook run removes the private dirs of runs whose process is gone.

Playbooks report what they did in a last ``debug`` task whose name starts with
``Report`` and whose ``msg`` is a list of ``{kind, namespace, name, action,
changed, failed, msg, secret, changed_keys, diff}`` (see playbooks/apply.yml).
"""

from __future__ import annotations

import base64
import difflib
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

import playbooks
from bootstrap.errors import AuthError, PermanentError, RetryableError

MASK = "********"
PRIVATE_PREFIX = "bootstrap-ansible-"
SECRET_VARS_FILE = "env/secret-vars.json"
"""Where, inside the private data dir, the secret vars live during a run (the only place they do)."""

INVENTORY: dict[str, Any] = {
    "all": {
        "hosts": {
            # Playbooks talk to the cluster API from the controller (kubernetes.core), so no SSH is
            # involved, and the interpreter is the one running ansible-playbook (where the kubernetes
            # client lives).
            "localhost": {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            }
        }
    }
}
"""The inventory every playbook runs against: the controller itself."""

_NOISE = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation")
_UNREACHABLE = ("Connection refused", "Max retries exceeded", "NewConnectionError", "timed out")


@dataclass(frozen=True)
class ObjectChange:
    """One object a playbook created, updated or deleted (or would, in check mode)."""

    kind: str
    namespace: str
    name: str
    action: str
    diff: str = ""


@dataclass(frozen=True)
class PlaybookResult:
    changed: bool
    changes: list[ObjectChange] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


class TextRedactor(Protocol):
    """What this adapter needs of bootstrap.secrets.Redactor (clients do not import the layer above)."""

    def redact(self, text: str) -> str: ...


class Masker:
    """Replaces every secret value (and its base64 form) in strings and JSON-like data."""

    def __init__(self, secrets: list[str], redactor: TextRedactor | None = None) -> None:
        forms = {s for s in secrets if s}
        forms |= {base64.b64encode(s.encode()).decode() for s in secrets if s}
        self._forms = sorted(forms, key=len, reverse=True)
        self._redactor = redactor

    def text(self, value: str) -> str:
        for form in self._forms:
            value = value.replace(form, MASK)
        return self._redactor.redact(value) if self._redactor else value

    def data(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value


class AnsibleRunner:
    """Runs one playbook per call; see the module docstring for the guarantees.

    ``tmp_root`` is where private data dirs are made (a tmpfs is a good choice);
    ``progress`` receives one line per task/item as the run goes; ``redactor``
    (the run's registry) masks every other known secret on top of ``secret_vars``.
    """

    def __init__(
        self,
        tmp_root: Path | None = None,
        progress: Callable[[str], None] | None = None,
        redactor: TextRedactor | None = None,
    ) -> None:
        self.tmp_root = tmp_root
        self.progress = progress or (lambda _msg: None)
        self.redactor = redactor

    def run_playbook(
        self,
        playbook: Path,
        extravars: dict[str, Any],
        secret_vars: dict[str, str],
        kubeconfig: str | None,
        context: str | None,
        check: bool = False,
        diff: bool = True,
    ) -> PlaybookResult:
        import ansible_runner

        masker = Masker(list(secret_vars.values()), self.redactor)
        events: list[dict[str, Any]] = []
        sweep_stale(Path(self.tmp_root or tempfile.gettempdir()))
        private = Path(tempfile.mkdtemp(prefix=f"{PRIVATE_PREFIX}{os.getpid()}-", dir=self.tmp_root))
        try:
            os.chmod(private, 0o700)
            secret_file = private / SECRET_VARS_FILE
            secret_file.parent.mkdir(mode=0o700)
            fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(secret_vars, f)
            (private / "tmp").mkdir(mode=0o700)
            cmdline = (
                ["-e", f"@{secret_file}"] + (["--check"] if check else []) + (["--diff"] if diff else [])
            )

            def on_event(event: dict[str, Any]) -> bool:
                if event.get("event") == "playbook_on_start":
                    _forget_inputs(private)
                masked = masker.data(event)
                events.append(masked)
                line = _progress_line(masked)
                if line:
                    self.progress(line)
                return False  # keep events in memory only; nothing about them on disk

            runner = ansible_runner.run(
                private_data_dir=str(private),
                playbook=str(Path(playbook).resolve()),
                inventory=INVENTORY,
                extravars=extravars,
                cmdline=" ".join(shlex.quote(c) for c in cmdline),
                envvars=_environment(private, kubeconfig, context),
                settings={"suppress_output_file": True, "suppress_ansible_output": True},
                quiet=True,
                event_handler=on_event,
            )
            status, rc = runner.status, runner.rc
        finally:
            shutil.rmtree(private, ignore_errors=True)
        return _result(Path(playbook).name, status, rc, _stats(events), events, kubeconfig, context)

    def apply(
        self,
        manifests: list[dict[str, Any]],
        field_manager: str,
        secret_vars: dict[str, str],
        kubeconfig: str | None,
        context: str | None,
        check: bool = False,
    ) -> PlaybookResult:
        """Server-side apply ``manifests`` through playbooks/apply.yml (Secrets are no_log)."""
        extravars = {"manifests": manifests, "field_manager": field_manager}
        playbook = playbooks.path("apply.yml")
        return self.run_playbook(playbook, extravars, secret_vars, kubeconfig, context, check)

    def delete(
        self,
        objects: list[dict[str, str]],
        kubeconfig: str | None,
        context: str | None,
        check: bool = False,
    ) -> PlaybookResult:
        """Delete ``[{apiVersion, kind, namespace, name}]`` through playbooks/delete.yml."""
        return self.run_playbook(
            playbooks.path("delete.yml"), {"objects": objects}, {}, kubeconfig, context, check
        )


def sweep_stale(root: Path) -> None:
    """Remove private data dirs left by runs whose process is gone (killed before their cleanup)."""
    for path in root.glob(f"{PRIVATE_PREFIX}*-*"):
        pid = path.name.removeprefix(PRIVATE_PREFIX).split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forget_inputs(private: Path) -> None:
    """Delete what ansible-playbook has read by now and must not outlive a killed run."""
    (private / SECRET_VARS_FILE).unlink(missing_ok=True)
    for command in (private / "artifacts").glob("*/command"):
        command.unlink(missing_ok=True)


def ansible_playbook_dir() -> Path:
    """The directory holding ``ansible-playbook``: PATH first, else next to this interpreter."""
    found = shutil.which("ansible-playbook")
    if found:
        return Path(found).parent
    candidate = Path(sys.executable).parent / "ansible-playbook"
    if candidate.exists():
        return candidate.parent
    raise PermanentError(
        "ansible-playbook not found on PATH nor next to the Python interpreter; install the `ansible` package"
    )


def _environment(private: Path, kubeconfig: str | None, context: str | None) -> dict[str, str]:
    tmp = str(private / "tmp")
    env = {
        "PATH": f"{ansible_playbook_dir()}{os.pathsep}{os.environ.get('PATH', '')}",
        # kubernetes.core caches discovery in TMPDIR: a fresh one per run never serves stale CRDs.
        "TMPDIR": tmp,
        "ANSIBLE_LOCAL_TEMP": tmp,
        "ANSIBLE_REMOTE_TEMP": tmp,
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
    }
    if kubeconfig:
        env["K8S_AUTH_KUBECONFIG"] = str(kubeconfig)
    if context:
        env["K8S_AUTH_CONTEXT"] = context
    return env


def _progress_line(event: dict[str, Any]) -> str | None:
    data = event.get("event_data") or {}
    res = data.get("res") or {}
    label = res.get("_ansible_item_label") if isinstance(res, dict) else None
    kind = event.get("event", "")
    if kind == "runner_on_start":
        return f"{data.get('task', '')} …"
    if kind.startswith("runner_item_on_"):
        return f"{data.get('task', '')}: {label or '(hidden)'} {kind.rsplit('_', 1)[-1]}"
    return None


def _result(
    playbook: str,
    status: str,
    rc: int,
    stats: dict[str, Any],
    events: list[dict[str, Any]],
    kubeconfig: str | None,
    context: str | None,
) -> PlaybookResult:
    report = _report(events)
    failed = [r for r in report if r.get("failed")]
    if failed:
        raise _object_error(failed[0], len(failed), kubeconfig, context)
    if status != "successful" or rc != 0:
        raise _task_error(playbook, status, events)
    changes = [
        ObjectChange(r["kind"], r["namespace"], r["name"], r["action"], _render_diff(r))
        for r in report
        if r.get("changed")
    ]
    return PlaybookResult(changed=bool(changes) or bool(stats.get("changed")), changes=changes, stats=stats)


def _stats(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Ansible's play recap, from the in-memory events (runner.stats reads them from disk)."""
    for event in events:
        if event.get("event") == "playbook_on_stats":
            data = event.get("event_data") or {}
            keys = ("ok", "changed", "failures", "dark", "skipped", "ignored", "rescued", "processed")
            return {k: data.get(k) or {} for k in keys}
    return {}


def _report(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for event in events:
        data = event.get("event_data") or {}
        if event.get("event") == "runner_on_ok" and str(data.get("task", "")).startswith("Report"):
            msg = (data.get("res") or {}).get("msg")
            if isinstance(msg, list):
                return [m for m in msg if isinstance(m, dict)]
    return []


def _render_diff(entry: dict[str, Any]) -> str:
    if entry.get("secret"):
        keys = ", ".join(entry.get("changed_keys") or [])
        verb = "set" if entry["action"] == "create" else "changed"
        return f"data keys {verb}: {keys or '(none)'} (values hidden)"
    diff = entry.get("diff") or {}
    before, after = (_clean(diff.get("before") or {}), _clean(diff.get("after") or {}))
    a = yaml.safe_dump(before, sort_keys=True).splitlines() if before else []
    b = yaml.safe_dump(after, sort_keys=True).splitlines() if after else []
    return "\n".join(difflib.unified_diff(a, b, "before", "after", lineterm=""))


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop server bookkeeping so a diff shows only what a person changed."""
    out = dict(obj)
    if isinstance(out.get("metadata"), dict):
        out["metadata"] = {k: v for k, v in out["metadata"].items() if k not in _NOISE}
        if not out["metadata"]:
            del out["metadata"]
    return out


def _status_of(msg: str) -> tuple[int | None, str]:
    """The API ``Status`` code and message kubernetes.core embeds in its failure ``msg``."""
    m = re.search(r"\{.*\}", msg, re.S)
    if m:
        try:
            body = json.loads(m.group(0))
            return int(body.get("code")), str(body.get("message", msg))
        except (ValueError, TypeError):
            pass
    code = re.search(r"\((\d{3})\)", msg)
    return (int(code.group(1)) if code else None), msg


def _object_error(
    entry: dict[str, Any], count: int, kubeconfig: str | None, context: str | None
) -> PermanentError | RetryableError:
    where = f"{entry['kind']} {entry['namespace'] + '/' if entry['namespace'] else ''}{entry['name']}"
    code, message = _status_of(str(entry.get("msg", "")))
    more = f" (and {count - 1} more object(s))" if count > 1 else ""
    text = f"could not apply {where}: {message}{more}"
    if code in (401, 403):
        cred = f"context {context!r}" if context else "the current context"
        return AuthError(
            f"{text}; check cluster.context ({cred} of kubeconfig {kubeconfig or '~/.kube/config'})"
        )
    if code == 429 or (code is not None and code >= 500) or any(s in message for s in _UNREACHABLE):
        return RetryableError(text)
    return PermanentError(text)


def _task_error(playbook: str, status: str, events: list[dict[str, Any]]) -> PermanentError | RetryableError:
    for event in events:
        if event.get("event") in ("runner_on_failed", "runner_on_unreachable"):
            data = event.get("event_data") or {}
            res = data.get("res") or {}
            msg = res.get("msg") or ("output hidden by no_log" if "censored" in res else "no message")
            text = f"playbook {playbook}: task {data.get('task', '?')!r} failed: {msg}"
            if any(s in str(msg) for s in _UNREACHABLE):
                return RetryableError(text)
            return PermanentError(text)
    return PermanentError(f"playbook {playbook} ended with status {status}")
