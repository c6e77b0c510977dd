"""Running the cluster playbooks through ansible-runner without leaking secrets or orphans.

What this adapter guarantees, and why:

* every run gets a **fresh private data dir** (mode 0700) that is removed
  afterwards: ansible-runner saves ``env/cmdline`` and silently reuses it, so a
  reused dir would turn a real run into a check run (REFERENCE.md §8);
* **no secret value is ever written to disk**: secret vars go to an
  Ansible-Vault-encrypted vars file (encrypted in-process with ansible-core's
  ``VaultLib``), and the one-off vault password reaches ansible-playbook only
  through a named pipe (``--vault-password-file`` on a FIFO, fed from memory);
  never ``extravars`` (which runner writes to ``env/extravars``) nor a command line;
* the playbook gets a **minimal environment** (PATH, HOME, locale, ANSIBLE_*,
  K8S_AUTH_* and what ansible-runner itself adds), not ours: runner records the
  whole environment in ``artifacts/*/command``, and ours holds service tokens;
* module payloads are piped (``ANSIBLE_PIPELINING``) and temp files go inside the
  private dir, so no module arguments are left in ``~/.ansible/tmp``;
* job events are kept in memory only (runner writes none of them, nor stdout,
  to the artifacts dir), and every string taken from them is masked against
  the secret values (raw and base64) before it reaches a result or an error;
* **the playbook dies with the tool**: ansible-playbook runs under
  ``playbook_guard`` (parent-death signal + child subreaper), so killing this
  process, however, kills every process the playbook started; ``cancel()``
  (Ctrl-C) stops running playbooks at once; and private dirs of dead runs are
  swept, their leftover guard (if any) stopped first, before a playbook starts.

Playbooks report what they did in a last ``debug`` task whose name starts with
``Report`` and whose ``msg`` is a list of ``{kind, namespace, name, action,
changed, failed, msg, secret, changed_keys, diff}`` (see playbooks/apply.yml).
"""

from __future__ import annotations

import base64
import contextlib
import difflib
import errno
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

import playbooks
from bootstrap.clients import playbook_guard
from bootstrap.errors import AuthError, Interrupted, PermanentError, RetryableError

MASK = "********"
PRIVATE_PREFIX = "bootstrap-ansible-"
SECRET_VARS_FILE = "env/secret-vars.vault"
"""Where, inside the private data dir, the vault-encrypted secret vars live during a run."""
VAULT_PIPE = "vault-password.fifo"
"""The named pipe the vault password is read from (never a regular file)."""
GUARD_PID_FILE = "guard.pid"
CANCEL_POLL = 0.25
"""Seconds between ansible-runner's polls of the cancel callback (its default is 5)."""
SLOTS_ENV = "BOOTSTRAP_PLAYBOOKS"
"""How many playbooks this process runs at once (default: the CPU count; see ``playbook_slot``)."""
_ENV_KEEP = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "PYDANTIC_DISABLE_PLUGINS",  # set by bootstrap.__main__: modules import the kubernetes client
)
_RUNNER_PREFIXES = ("ANSIBLE_", "RUNNER_", "AWX_")

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
    (the run's registry) masks every other known secret on top of ``secret_vars``;
    ``cancelled``, once set, stops running playbooks and refuses new ones; ``slots`` bounds the
    playbooks running at once (default: the process-wide ``SLOTS``).
    """

    def __init__(
        self,
        tmp_root: Path | None = None,
        progress: Callable[[str], None] | None = None,
        redactor: TextRedactor | None = None,
        cancelled: threading.Event | None = None,
        slots: PlaybookSlots | None = None,
    ) -> None:
        self.tmp_root = tmp_root
        self.slots = slots or SLOTS
        self.progress = progress or (lambda _msg: None)
        self.redactor = redactor
        self.cancelled = cancelled or threading.Event()
        self._active: set[Path] = set()
        self._active_lock = threading.Lock()

    def run_playbook(
        self,
        playbook: Path,
        extravars: dict[str, Any],
        secret_vars: dict[str, str],
        kubeconfig: str | None,
        context: str | None,
        check: bool = False,
        diff: bool = True,
        files: dict[str, str] | None = None,
    ) -> PlaybookResult:
        """Run ``playbook``; ``files`` (name -> text, never secret) are written to the private dir's
        ``files/``, whose path the playbook gets as ``files_dir``."""
        import ansible_runner

        if self.cancelled.is_set():
            raise Interrupted("not starting a playbook: the run is being interrupted")
        vault_password = secrets.token_urlsafe(32)
        masker = Masker([*secret_vars.values(), vault_password], self.redactor)
        events: list[dict[str, Any]] = []
        sweep_stale(Path(self.tmp_root or tempfile.gettempdir()))
        private = Path(tempfile.mkdtemp(prefix=f"{PRIVATE_PREFIX}{os.getpid()}-", dir=self.tmp_root))
        feeder: _PasswordPipe | None = None
        try:
            os.chmod(private, 0o700)
            for sub in ("env", "tmp", "bin", "files"):
                (private / sub).mkdir(mode=0o700)
            for name, text in (files or {}).items():
                (private / "files" / name).write_text(text, encoding="utf-8")
            extravars = {**extravars, "files_dir": str(private / "files")}
            envvars = _environment(private, kubeconfig, context)
            cmdline = (["--check"] if check else []) + (["--diff"] if diff else [])
            if secret_vars:
                _write_vault_vars(private / SECRET_VARS_FILE, secret_vars, vault_password)
                feeder = _PasswordPipe(private / VAULT_PIPE, vault_password)
                cmdline += ["-e", f"@{private / SECRET_VARS_FILE}", "--vault-password-file", str(feeder.path)]

            def on_event(event: dict[str, Any]) -> bool:
                masked = masker.data(event)
                events.append(masked)
                line = _progress_line(masked)
                if line:
                    self.progress(line)
                return False  # keep events in memory only; nothing about them on disk

            def cancel() -> bool:
                # Polled by ansible-runner between reads of the playbook's output; stopping the guard
                # (rather than returning True, which SIGKILLs only the guard's group) stops the workers
                # ansible-playbook started in their own sessions too.
                if self.cancelled.is_set():
                    _stop_guard(private)
                return False

            # With ``binary`` (the guard), runner treats the command as raw and leaves the playbook to us.
            cmdline.append(str(Path(playbook).resolve()))
            runner = ansible_runner.interface.init_runner(
                private_data_dir=str(private),
                inventory=INVENTORY,
                extravars=extravars,
                cmdline=" ".join(shlex.quote(c) for c in cmdline),
                envvars=envvars,
                binary=str(_guard_script(private)),
                settings={
                    "suppress_output_file": True,
                    "suppress_ansible_output": True,
                    "pexpect_timeout": CANCEL_POLL,
                },
                quiet=True,
                event_handler=on_event,
                cancel_callback=cancel,
            )
            runner.config.env = _minimal(runner.config.env, envvars)
            with self.slots.hold(self.cancelled, self.progress):
                if self.cancelled.is_set():
                    raise Interrupted("not starting a playbook: the run is being interrupted")
                with self._active_lock:
                    self._active.add(private)
                try:
                    runner.run()
                except BaseException:  # Ctrl-C while this thread waits on the playbook: stop it too
                    _stop_guard(private)
                    raise
                finally:
                    with self._active_lock:
                        self._active.discard(private)
            status, rc = runner.status, runner.rc
        finally:
            if feeder is not None:
                feeder.close()
            shutil.rmtree(private, ignore_errors=True)
        if self.cancelled.is_set():
            raise Interrupted(f"playbook {Path(playbook).name} stopped: the run is being interrupted")
        return _result(Path(playbook).name, status, rc, _stats(events), events, kubeconfig, context)

    def cancel(self) -> None:
        """Stop every running playbook now (Ctrl-C) and refuse to start new ones."""
        self.cancelled.set()
        with self._active_lock:
            active = list(self._active)
        for private in active:
            _stop_guard(private)

    def apply(
        self,
        manifests: list[dict[str, Any]],
        field_manager: str,
        secret_vars: dict[str, str],
        kubeconfig: str | None,
        context: str | None,
        check: bool = False,
    ) -> PlaybookResult:
        """Server-side apply ``manifests`` through playbooks/apply.yml (Secrets are no_log).

        Objects with nothing for Ansible to template (no Secret, no ``{{``/``{%``) go to the module
        as a file, applied first and in order: Ansible then neither templates them nor copies them
        into the module's arguments, its result's ``invocation`` and the job events (the real Argo
        CD manifest is ~2 MB, nearly all CRD schemas). The rest (Secrets, objects carrying
        placeholders or ``literal`` text) are passed as variables, as before.
        """
        literal = [m for m in manifests if m.get("kind") != "Secret" and not _templated(m)]
        templated = [m for m in manifests if m.get("kind") == "Secret" or _templated(m)]
        index = [
            {
                "kind": m["kind"],
                "metadata": {k: m["metadata"][k] for k in ("name", "namespace") if k in m["metadata"]},
            }
            for m in literal
        ]
        extravars = {"manifests": templated, "literal_index": index, "field_manager": field_manager}
        files = {LITERAL_FILE: "\n---\n".join(json.dumps(m) for m in literal)} if literal else None
        playbook = playbooks.path("apply.yml")
        return self.run_playbook(playbook, extravars, secret_vars, kubeconfig, context, check, files=files)

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


def playbook_slots() -> int:
    """How many playbooks this process runs at once: ``BOOTSTRAP_PLAYBOOKS``, else the CPU count."""
    raw = os.environ.get(SLOTS_ENV, "").strip()
    if raw:
        value = int(raw) if raw.isdigit() else 0
        if value < 1:
            raise PermanentError(f"{SLOTS_ENV}={raw!r}: expected a whole number of playbooks (1 or more)")
        return value
    return max(1, os.cpu_count() or 1)


class PlaybookSlots:
    """A process-wide bound on the playbooks running at once.

    WHY: a playbook is a tree of Python processes (ansible-playbook, its worker, the module
    with the kubernetes client) costing ~300 MiB and seconds of CPU to start. A fleet run with
    ``--parallel 10`` would otherwise have up to 10 x (steps in flight) of them at once: on a
    machine with few cores they only queue for the CPU (no throughput gained) while their memory
    adds up. Customers' reads and their non-cluster steps keep running in parallel; only
    playbooks wait for a slot. ``size`` None = ``playbook_slots()``, read at the first use.
    """

    def __init__(self, size: int | None = None) -> None:
        self._size = size
        self._semaphore: threading.BoundedSemaphore | None = None
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self, cancelled: threading.Event, progress: Callable[[str], None]) -> Iterator[None]:
        """Wait for a slot (giving up as soon as ``cancelled`` is set), hold it for the block."""
        with self._lock:
            if self._semaphore is None:
                self._semaphore = threading.BoundedSemaphore(self._size or playbook_slots())
            semaphore = self._semaphore
        if not semaphore.acquire(blocking=False):
            progress("waiting for a free playbook slot …")
            while not semaphore.acquire(timeout=CANCEL_POLL):
                if cancelled.is_set():
                    raise Interrupted("not starting a playbook: the run is being interrupted")
        try:
            yield
        finally:
            semaphore.release()


SLOTS = PlaybookSlots()
"""The one bound every AnsibleRunner of this process shares (one per customer in a fleet run)."""


LITERAL_FILE = "literal.yaml"
"""The file apply.yml reads the objects Ansible must not template from (JSON documents are YAML)."""


def _templated(value: Any) -> bool:
    """Whether any string in ``value`` is something Ansible would template."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(_templated(k) or _templated(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    return False


def sweep_stale(root: Path) -> None:
    """Remove private data dirs left by runs whose process is gone, stopping any playbook still alive there.

    A guard outlives its run only if the parent-death signal could not be armed (not Linux); it is
    stopped here, before this run writes anything, so a resumed run never races a leftover writer.
    """
    for path in root.glob(f"{PRIVATE_PREFIX}*-*"):
        pid = path.name.removeprefix(PRIVATE_PREFIX).split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            _stop_guard(path)
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_guard(private: Path) -> None:
    """SIGTERM the guard of the playbook running in ``private``: it kills its whole tree, then exits."""
    try:
        pid = int((private / GUARD_PID_FILE).read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if str(private).encode() in cmdline:  # the pid is still that guard, not a recycled one
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _guard_script(private: Path) -> Path:
    """The executable ansible-runner starts instead of ansible-playbook (see playbook_guard)."""
    real = ansible_playbook_dir() / "ansible-playbook"
    script = private / "bin" / "ansible-playbook-guard"
    home = Path(playbook_guard.__file__).resolve().parents[2]
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(home)!r})\n"
        "from bootstrap.clients import playbook_guard\n"
        f"sys.exit(playbook_guard.main({str(real)!r}, {os.getpid()}, {str(private / GUARD_PID_FILE)!r}))\n"
    )
    script.chmod(0o700)
    return script


def _write_vault_vars(path: Path, secret_vars: dict[str, str], password: str) -> None:
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([("default", VaultSecret(password.encode()))])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(vault.encrypt(json.dumps(secret_vars).encode()))


class _PasswordPipe:
    """Serves ``password`` once, to the first reader of the named pipe ``path``.

    The password only ever sits in this process's memory and the kernel's pipe buffer; the
    FIFO in the (0700) private dir is just a rendezvous point, with nothing stored in it.
    """

    def __init__(self, path: Path, password: str) -> None:
        self.path = path
        os.mkfifo(path, 0o600)
        self._password = password.encode()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="vault-password", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                # Non-blocking open fails with ENXIO until a reader has the pipe open, so this
                # thread never hangs on a playbook that died before reading.
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno not in (errno.ENXIO, errno.EINTR):
                    return
                self._closed.wait(0.02)
                continue
            try:
                os.set_blocking(fd, True)
                os.write(fd, self._password + b"\n")
            except OSError:
                pass
            finally:
                os.close(fd)
            # Once: the reader sees end-of-file only when no writer has the pipe open, so serving
            # again at once would append a second copy to the same read. ansible-playbook reads
            # its vault password a single time, at start-up.
            return

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)


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
        "HOME": os.environ.get("HOME") or tmp,
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


def _minimal(env: dict[str, str], ours: dict[str, str]) -> dict[str, str]:
    """What ansible-playbook needs of the environment ansible-runner built, and nothing of ours.

    Runner starts from a copy of ``os.environ`` (tokens included) and records it in
    ``artifacts/*/command``. Keep the basics, what we set (``ours``) and what runner itself
    set; an ANSIBLE_*/K8S_AUTH_* value that merely came from our environment is dropped too
    (a K8S_AUTH_API_KEY there is a credential, and the playbook's settings are ours to pick).
    """
    return {
        k: v
        for k, v in env.items()
        if k in _ENV_KEEP or k in ours or (k.startswith(_RUNNER_PREFIXES) and os.environ.get(k) != v)
    }


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
