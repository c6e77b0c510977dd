"""The command line: parse, load, call the engine, map errors to exit codes.

Thin on purpose. Heavy modules (pydantic models, SDKs, Ansible) are imported
inside the commands so that ``bootstrap --help`` starts fast. The one error
handler, ``main``, is the only place that turns exceptions into exit codes
(DESIGN.md §7): 0 done · 1 step failed · 2 plan has changes · 3 waiting for a
person · 4 invalid input · 5 locked · 130 interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import io
import json
import os
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
import typer.core

from bootstrap.errors import ExitCode

if TYPE_CHECKING:
    from typer import _click as click

    from bootstrap import config, engine, fleet
    from bootstrap.reporting import Reporter
    from bootstrap.secrets import Redactor

_CONTEXT = {"help_option_names": ["-h", "--help"]}
_INTERRUPTED = "interrupted; the checkpoint is saved — run the same command again to resume"
_STEPS_PLACEHOLDER = "{steps}"
_ROTATIONS_PLACEHOLDER = "{rotations}"


def _step_ids() -> str:
    from steps import catalog

    return ", ".join(catalog.ids())


class _HumanArgument(typer.core.TyperArgument):
    """An argument shown by its metavar alone (typer adds the Python type: ``<list[Path]>``)."""

    def display_type_rich(self, ctx: click.Context) -> str | None:
        return None if self.metavar else super().display_type_rich(ctx)

    def _usage_display_name(self) -> str:
        # typer writes a required ``CUSTOMER.yaml...`` as ``{CUSTOMER.yaml...}...``.
        return self.metavar or super()._usage_display_name()


class _HumanOption(typer.core.TyperOption):
    """A flag shows no value (typer prints ``<bool>``, as if ``-h`` took one)."""

    def display_type_rich(self, ctx: click.Context) -> str | None:
        return "" if self.is_flag else super().display_type_rich(ctx)


def _humanize(params: list[click.Parameter]) -> None:
    """Help names values for a person: metavars, no Python types (typer's parameters, re-classed)."""
    for param in params:
        if type(param) is typer.core.TyperArgument:
            param.__class__ = _HumanArgument
        elif type(param) is typer.core.TyperOption:
            param.__class__ = _HumanOption


def _fill_step_ids(params: list[click.Parameter]) -> None:
    """Help lists the step ids and the rotations; filled in only when help is shown (importing the
    steps costs start-up)."""
    for param in params:
        help_text = getattr(param, "help", None)
        if isinstance(help_text, str) and _STEPS_PLACEHOLDER in help_text:
            param.help = help_text.replace(_STEPS_PLACEHOLDER, _step_ids())  # type: ignore[attr-defined]
        elif isinstance(help_text, str) and _ROTATIONS_PLACEHOLDER in help_text:
            param.help = help_text.replace(  # type: ignore[attr-defined]
                _ROTATIONS_PLACEHOLDER, ", ".join(_rotations())
            )


class _Formatter(typer._click.HelpFormatter):
    """Plain help whose option and command lists wrap at spaces only.

    click's wrapper also breaks after a hyphen, which printed ``slack- channel`` in the step lists:
    an id a person copies must stay whole.
    """

    def write_dl(self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        rows = list(rows)
        term_width = min(max((len(term) for term, _ in rows), default=0), col_max)
        indent = " " * self.current_indent
        hang = " " * (self.current_indent + term_width + col_spacing)
        width = max(self.width - term_width - col_spacing - self.current_indent, 10)
        for term, text in rows:
            self.write(indent + term)
            if not text:
                self.write("\n")
                continue
            if len(term) <= term_width:
                self.write(" " * (term_width + col_spacing - len(term)))
            else:
                self.write("\n" + hang)
            lines = textwrap.wrap(text, width, break_on_hyphens=False) or [""]
            self.write(lines[0] + "\n")
            self.write("".join(f"{hang}{line}\n" for line in lines[1:]))


class _HelpContext(typer._click.Context):
    formatter_class = _Formatter


class _HumanHelp(typer.core.TyperCommand):
    """A command whose help and usage show metavars, flags without a value, and the step ids."""

    context_class = _HelpContext

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _humanize(self.params)  # now, for the usage line of a usage error too

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        params = self.get_params(ctx)  # with ``-h``, which typer creates lazily
        _humanize(params)
        _fill_step_ids(params)
        super().format_help(ctx, formatter)


class _HumanGroup(typer.core.TyperGroup):
    """The same for a group's own options (``-h``, and ``--install-completion`` added late)."""

    context_class = _HelpContext

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        _humanize(self.get_params(ctx))
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.short_help and command.help:
                # The whole first paragraph, wrapped, not click's first ~60 characters and "...".
                command.short_help = " ".join(command.help.split("\n\n")[0].split())
        super().format_help(ctx, formatter)


class _Commands(_HumanGroup):
    """Ctrl-C outside the engine's steps (parsing, imports, loading, checks) must be heard.

    Typer turns a KeyboardInterrupt raised while it parses or invokes into a silent
    ``Exit(130)``; here it becomes the ``Interrupted`` error that ``main`` prints.
    """

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _heard():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _heard():
            return super().invoke(ctx)


@contextlib.contextmanager
def _heard() -> Iterator[None]:
    from bootstrap.errors import Interrupted

    try:
        yield
    except KeyboardInterrupt:
        raise Interrupted(_INTERRUPTED) from None


# Help and usage errors are plain text (click's formatter), not typer's rich panels: rendering those
# imports rich's console, tables, markdown and traceback modules (~0.3 s, more than the rest of
# the start-up together), which kept `bootstrap --help` at ~7x a bare `python -c pass`.
_MARKUP: typer.core.MarkupMode = None

app = typer.Typer(
    cls=_Commands,
    rich_markup_mode=_MARKUP,
    help="Onboard a customer onto the GitOps platform: run, resume, preview and inspect the steps.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings=_CONTEXT,
)
sandbox_app = typer.Typer(
    cls=_HumanGroup,
    rich_markup_mode=_MARKUP,
    help="Local backends on loopback for trying the tool without credentials.",
    no_args_is_help=True,
    context_settings=_CONTEXT,
)
app.add_typer(sandbox_app, name="sandbox")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"bootstrap {version('gitops-bootstrap')}")
        except PackageNotFoundError:
            typer.echo("bootstrap (not installed as a distribution)")
        raise typer.Exit()


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            metavar="",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Onboard a customer onto the GitOps platform: run, resume, preview and inspect the steps."""


class Output(enum.StrEnum):
    text = "text"
    json = "json"


CustomerArg = Annotated[
    Path, typer.Argument(metavar="CUSTOMER.yaml", help="The customer file.", show_default=False)
]
StateDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir", metavar="DIR", help="Checkpoint directory (default: .bootstrap/ next to the file)."
    ),
]
OutputOpt = Annotated[
    Output, typer.Option("--output", "-o", metavar="text|json", help="text, or one JSON document on stdout.")
]
BreakLockOpt = Annotated[
    bool, typer.Option("--break-lock", metavar="", help="Take the lock even if another run holds it.")
]


CustomersArg = Annotated[
    list[Path],
    typer.Argument(
        metavar="CUSTOMER.yaml...", help="Customer file(s); several run as a fleet.", show_default=False
    ),
]


def _complete_step(incomplete: str) -> list[str]:
    """Shell completion of step ids (from the catalog: no step is imported)."""
    from steps import catalog

    return [sid for sid in catalog.ids() if sid.startswith(incomplete)]


_STEP_HELP = "one of: {steps}"
OnlyOpt = Annotated[
    list[str],
    typer.Option(
        "--only",
        metavar="STEP",
        autocompletion=_complete_step,
        help=f"Only this step, repeatable; {_STEP_HELP}.",
    ),
]
SkipOpt = Annotated[
    list[str],
    typer.Option(
        "--skip",
        metavar="STEP",
        autocompletion=_complete_step,
        help=f"Skip this step, repeatable; {_STEP_HELP}.",
    ),
]
FromOpt = Annotated[
    str | None,
    typer.Option(
        "--from", metavar="STEP", autocompletion=_complete_step, help=f"Start at this step; {_STEP_HELP}."
    ),
]
ParallelOpt = Annotated[
    int,
    typer.Option(
        "--parallel",
        "-p",
        metavar="N",
        min=1,
        max=64,
        help="Concurrency: independent steps of one customer, or customers of a fleet. 1 = sequential.",
    ),
]
DiffOpt = Annotated[
    bool,
    typer.Option(
        "--diff", metavar="", help="Show whole unified diffs (default: the changed lines, truncated)."
    ),
]
SkipChecksOpt = Annotated[
    bool,
    typer.Option(
        "--skip-checks", metavar="", help="Do not run the preflight checks first (rarely: a check is wrong)."
    ),
]
StateOpt = Annotated[
    str | None,
    typer.Option(
        "--state",
        metavar="URL",
        help="Checkpoint store URL, e.g. kubernetes://CONTEXT/NAMESPACE (default: files).",
    ),
]


def _reporter(output: Output, redactor: Redactor) -> Reporter:
    from bootstrap import reporting

    if output is Output.json:
        return reporting.JsonReporter(redactor)
    return reporting.ConsoleReporter(redactor)


def _execute(paths: list[Path], options: fleet.Options) -> int:
    from bootstrap import fleet, services
    from steps import STEPS

    services.preload()  # before the engine starts threads: concurrent first imports race
    return fleet.execute(paths, STEPS, options)


def _selection(only: list[str], skip: list[str], from_: str | None = None) -> engine.Selection:
    from bootstrap import engine

    return engine.Selection(tuple(only), tuple(skip), from_)


@app.command(cls=_HumanHelp)
def run(
    customers: CustomersArg,
    only: OnlyOpt = [],  # noqa: B006
    skip: SkipOpt = [],  # noqa: B006
    from_: FromOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", metavar="", help="Plan every step and stop (= plan).")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", metavar="", help="Overwrite hand edits (drift) in managed files.")
    ] = False,
    parallel: ParallelOpt = 4,
    output: OutputOpt = Output.text,
    diff: DiffOpt = False,
    state_dir: StateDirOpt = None,
    state: StateOpt = None,
    break_lock: BreakLockOpt = False,
    skip_checks: SkipChecksOpt = False,
) -> None:
    """Run every step that is not up to date; re-run the same command to resume after a failure."""
    from bootstrap.fleet import Options

    opts = Options(
        mode="plan" if dry_run else "run",
        selection=_selection(only, skip, from_),
        parallel=parallel,
        state_dir=state_dir,
        state_url=state,
        json_output=output is Output.json,
        full_diff=diff,
        force=force,
        break_lock=break_lock,
        skip_checks=skip_checks,
    )
    raise typer.Exit(_execute(customers, opts))


@app.command(cls=_HumanHelp)
def plan(
    customers: CustomersArg,
    only: OnlyOpt = [],  # noqa: B006
    skip: SkipOpt = [],  # noqa: B006
    parallel: ParallelOpt = 4,
    output: OutputOpt = Output.text,
    diff: DiffOpt = False,
    state_dir: StateDirOpt = None,
    state: StateOpt = None,
    skip_checks: SkipChecksOpt = False,
) -> None:
    """Preview every change without making any (exit 2 when there are changes)."""
    from bootstrap.fleet import Options

    opts = Options(
        mode="plan",
        selection=_selection(only, skip),
        parallel=parallel,
        state_dir=state_dir,
        state_url=state,
        json_output=output is Output.json,
        full_diff=diff,
        skip_checks=skip_checks,
    )
    raise typer.Exit(_execute(customers, opts))


@app.command(cls=_HumanHelp)
def destroy(
    customer: CustomerArg,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", metavar="", help="Do not ask for confirmation.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", metavar="", help="Show what would be removed and stop.")
    ] = False,
    only: OnlyOpt = [],  # noqa: B006
    output: OutputOpt = Output.text,
    diff: DiffOpt = False,
    state_dir: StateDirOpt = None,
    state: StateOpt = None,
    break_lock: BreakLockOpt = False,
) -> None:
    """Undo the steps in reverse order (archive the channel, delete keys, revert argocd/ by a commit, …).

    Without --yes it first shows what would be removed, names the customer, and asks: a person
    confirms what they have seen, not a file name.
    """
    from bootstrap.fleet import Options

    opts = Options(
        mode="destroy-plan" if dry_run else "destroy",
        selection=_selection(only, []),
        state_dir=state_dir,
        state_url=state,
        json_output=output is Output.json,
        full_diff=diff,
        break_lock=break_lock,
    )
    if not dry_run and not yes:
        if not sys.stdin.isatty():
            from bootstrap.errors import ConfigError

            # An error like any other: with -o json it is a JSON document on stdout too.
            raise ConfigError("destroy needs --yes when not run from a terminal")
        from bootstrap import config

        name = config.load(customer).customer.name
        preview = io.StringIO()
        # The person reads the preview on stderr; with -o json its document is held back, and is
        # stdout's one document only if they decline (otherwise the destroy's own document is).
        shown = _execute([customer], dataclasses.replace(opts, mode="destroy-plan", document_to=preview))
        if shown != ExitCode.CHANGES:  # 0: nothing to remove; anything else: the preview itself failed
            sys.stdout.write(preview.getvalue())
            raise typer.Exit(shown)
        if not _confirm(f"Destroy all of the above for customer {name}?"):
            typer.echo("nothing done", err=True)
            if opts.json_output:
                _declined(preview.getvalue())
            raise typer.Exit(ExitCode.OK)
    raise typer.Exit(_execute([customer], opts))


def _confirm(question: str) -> bool:
    """Ask on stderr and read the answer; no is the default, and so is end of input.

    Not click's confirm: it writes the space after the question through ``input()``, to stdout,
    which ``-o json > file`` typed at a terminal would then hold before its document.
    """
    sys.stderr.write(f"{question} [y/N]: ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _declined(document: str) -> None:
    """The preview's document as the answer to a declined destroy: what would have gone, and that
    nothing did (exit code 0, as the process's)."""
    doc = json.loads(document)
    doc["exit_code"] = int(ExitCode.OK)
    doc["notices"] = [*doc["notices"], "declined at the prompt: nothing was destroyed"]
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


def _rotations() -> list[str]:
    """What the steps offer to rotate (their ``rotations``), in step order; imports the steps."""
    from steps import STEPS

    return [w for cls in STEPS for w in getattr(cls, "rotations", ())]


def _complete_rotation(incomplete: str) -> list[str]:
    return [w for w in _rotations() if w.startswith(incomplete)]


def _rotation(value: str) -> str:
    """Checked against the steps when the command runs, so a new rotation needs no CLI change."""
    offered = _rotations()
    if value not in offered:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(repr(w) for w in offered)}.")
    return value


@app.command(cls=_HumanHelp)
def rotate(
    customer: CustomerArg,
    what: Annotated[
        str,
        typer.Argument(
            metavar="WHAT",
            parser=_rotation,
            autocompletion=_complete_rotation,
            help="The credential to replace, one of: {rotations} (passwords: the Argo CD admin and users).",
            show_default=False,
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", metavar="", help="Show what would change and stop.")
    ] = False,
    output: OutputOpt = Output.text,
    state_dir: StateDirOpt = None,
    state: StateOpt = None,
    break_lock: BreakLockOpt = False,
) -> None:
    """Replace a credential: the new one is live everywhere before the old one is removed."""
    from bootstrap.fleet import Options

    opts = Options(
        mode="rotate-plan" if dry_run else "rotate",
        rotation=what,
        state_dir=state_dir,
        state_url=state,
        json_output=output is Output.json,
        break_lock=break_lock,
    )
    raise typer.Exit(_execute([customer], opts))


@app.command(cls=_HumanHelp)
def status(
    customers: Annotated[
        list[Path], typer.Argument(metavar="CUSTOMER.yaml...", help="Customer file(s).", show_default=False)
    ],
    verify: Annotated[
        bool, typer.Option("--verify", metavar="", help="Also check each done step against reality.")
    ] = False,
    output: OutputOpt = Output.text,
    state_dir: StateDirOpt = None,
    state: StateOpt = None,
    hub: Annotated[
        bool,
        typer.Option(
            "--hub",
            metavar="",
            help="Hub mode: list the clusters registered in the customers' hub(s), their labels, and "
            "whether each cluster's labels match its customer.yaml.",
        ),
    ] = False,
) -> None:
    """Show what the checkpoint says about each step (and, with --verify, whether it still holds)."""
    import json

    if hub:
        from bootstrap import hub_status

        hubs = hub_status.report(customers)
        if output is Output.json:
            print(json.dumps({"hubs": [h.to_json() for h in hubs]}, indent=2))
        else:
            hub_status.print_text(hubs)
        if any(h.problems for h in hubs):
            raise typer.Exit(1)
        return
    docs = [_status_of(path, verify, output, state_dir, state) for path in customers]
    if output is Output.json:
        print(json.dumps(docs[0] if len(docs) == 1 else {"customers": docs}, indent=2))
    else:
        for doc in docs:
            _print_status(doc)
    if any(step.get("problem") for doc in docs for step in _steps_of(doc)):
        raise typer.Exit(ExitCode.FAILED)


def _status_of(
    customer: Path, verify: bool, output: Output, state_dir: Path | None, state: str | None
) -> dict[str, object]:
    from bootstrap import checkpoint, config
    from steps import catalog

    problems: dict[str, str | None] = {}
    if verify:
        from bootstrap import fleet, session  # the engine, the reporters and the steps: only to verify
        from steps import STEPS

        sess = session.open_session(customer, state_dir, state_url=state)
        store = sess.store
        problems = fleet.engine_for(sess, STEPS, _reporter(output, sess.redactor)).verify(sess.context)
        cfg = sess.config
    else:
        cfg = config.load(customer)
        store = checkpoint.store_for(state, checkpoint.state_dir_for(customer, state_dir), cfg.customer.name)
    name = cfg.customer.name
    recorded = store.load(name)
    rows: list[dict[str, object]] = []
    for step_id in catalog.for_mode(cfg.mode):
        rec = recorded.record(step_id)
        row: dict[str, object] = {
            "id": step_id,
            "status": str(rec.status),
            "attempts": rec.attempts,
            "finished": rec.finished,
            "checked": rec.checked,
            "error": rec.error,
            "outputs": rec.outputs,
        }
        if step_id in problems:
            row["verified"] = problems[step_id] is None
            row["problem"] = problems[step_id]
        rows.append(row)
    return {"customer": name, "state": store.describe(), "steps": rows}


def _steps_of(doc: dict[str, object]) -> list[dict[str, object]]:
    steps = doc["steps"]
    assert isinstance(steps, list)
    return steps


def _print_status(doc: dict[str, object]) -> None:
    """A table on a terminal; plain aligned lines when piped, so no id or note is ever cut.

    Notes (errors, verify problems) go on their own indented lines under their step (below the
    table on a terminal): a multi-line message stays readable instead of wrapping a narrow column,
    and the table keeps its columns whole at 80 columns.
    """
    steps = _steps_of(doc)
    columns = ("id", "status", "attempts", "finished", "checked")
    cells = [tuple(_status_cell(r[k]) for k in columns) for r in steps]
    notes = [str(r.get("problem") or r["error"] or ("verified" if r.get("verified") else "")) for r in steps]
    header = ("step", "status", "attempts", "done since (UTC)", "last checked (UTC)")
    title = f"{doc['customer']} — {doc['state']}"
    if sys.stdout.isatty():
        from rich.markup import escape
        from rich.table import Table

        from bootstrap import reporting

        table = Table(title=escape(title))
        for col in header:
            table.add_column(col, no_wrap=True)
        for row in cells:
            table.add_row(*(escape(c) for c in row))
        out = reporting.console(sys.stdout)
        out.print(table)
        for row, note in zip(cells, notes, strict=True):
            if note:
                out.print(escape(f"{row[0]}:"))
                for line in note.splitlines():
                    out.print(escape(f"    {line}"))
        return
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]
    print(title)
    for row, note in zip([header, *cells], ["", *notes], strict=True):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        for line in note.splitlines():
            print(f"    {line}")


def _status_cell(value: object) -> str:
    """A checkpoint value for the table: ISO times in UTC without their ``T`` and offset."""
    if value is None:
        return "-"
    text = str(value)
    if isinstance(value, str) and len(text) == 25 and text[10] == "T" and text.endswith("+00:00"):
        return text[:10] + " " + text[11:19]
    return text


@app.command(cls=_HumanHelp)
def forget(
    customer: CustomerArg,
    step: Annotated[str, typer.Argument(metavar="STEP", help=f"The step to forget, {_STEP_HELP}.")],
    state_dir: StateDirOpt = None,
    state: StateOpt = None,
    break_lock: BreakLockOpt = False,
) -> None:
    """Drop one step's record, so the next run treats it as never run (remote state is re-observed)."""
    from bootstrap import checkpoint, config
    from bootstrap.errors import ConfigError
    from steps import catalog

    name = config.load(customer).customer.name
    store = checkpoint.store_for(state, checkpoint.state_dir_for(customer, state_dir), name)
    with store.lock(break_lock=break_lock):
        recorded = store.load(name)
        # A record of a step that no longer exists (renamed, removed) may be dropped too.
        known = catalog.ids()
        ids = known + [k for k in recorded.steps if k not in known]
        if step not in ids:
            raise ConfigError(f"unknown step {step!r}; steps are: {', '.join(ids)}")
        recorded.steps.pop(step, None)
        store.save(recorded)
    typer.echo(f"forgot {step} for {name}; the next run re-plans it", err=True)


@app.command(cls=_HumanHelp)
def validate(customers: CustomersArg, output: OutputOpt = Output.text) -> None:
    """Check customer files without contacting any service: every problem at once (exit 4 if any)."""
    import json

    from bootstrap import config, secrets

    problems: list[dict[str, object]] = []
    for path in customers:
        found = config.examine(path)
        base = path.resolve().parent
        listed = list(found.problems)
        for field_, ref, line in found.references:
            problem = secrets.offline_problem(ref, base, dict(os.environ))
            if problem is not None:
                listed.append(config.Problem(field_, problem, line))
        listed.sort(key=lambda p: (p.line or 0, p.field))
        problems += [{"file": str(path), **p.to_json()} for p in listed]
        if output is Output.text:
            _echo_problems(path, listed, found.config)
    typer.echo(
        "note: offline, kit.version and kit.addons are not checked against the kit, nor vault: references, "
        "tokens and permissions; `bootstrap check` does that",
        err=True,
    )
    if output is Output.json:
        print(json.dumps(problems, indent=2))
    raise typer.Exit(ExitCode.INVALID_INPUT if problems else ExitCode.OK)


def _echo_problems(path: Path, listed: list[config.Problem], cfg: config.CustomerConfig | None) -> None:
    if len(listed) == 1 and listed[0].field == "(file)":
        typer.echo(f"error: {path}: {listed[0].message}", err=True)
    elif listed:
        count = len(listed)
        typer.echo(f"error: {path} is not valid ({count} problem{'s' if count > 1 else ''}):", err=True)
        for p in listed:
            typer.echo(f"  {p}", err=True)
    elif cfg is not None:
        typer.echo(
            f"{path}: valid (customer {cfg.customer.name}, kit {cfg.kit.repo}@{cfg.kit.version})", err=True
        )


@app.command(cls=_HumanHelp)
def check(customers: CustomersArg, output: OutputOpt = Output.text) -> None:
    """Contact every service read-only and check each credential, permission and input a run needs.

    Writes nothing (no checkpoint, no lock). Exit 0 when everything holds, 4 for bad input,
    1 for a missing permission or an unreachable service.
    """
    import json

    from bootstrap import outcome, preflight, session, step
    from bootstrap.errors import ConfigError
    from steps import STEPS

    reports: list[preflight.Report] = []
    for path in customers:
        try:
            sess = session.open_session(path)
        except ConfigError as exc:
            report = preflight.Report(path.parent.name)
            report.results.append(
                preflight.Result(str(path), preflight.Status.INVALID, str(exc), "`bootstrap validate`")
            )
            reports.append(report)
            continue
        reports.append(preflight.run(sess.context, step.for_config(STEPS, sess.config)))
    if output is Output.json:
        from bootstrap import secrets

        doc = {
            "exit_code": outcome.worst([r.exit_code() for r in reports]),
            "customers": [r.to_json() for r in reports],
        }
        print(json.dumps(secrets.REDACTOR.redact_obj(doc), indent=2))
    preflight.print_table(reports)
    raise typer.Exit(outcome.worst([r.exit_code() for r in reports]))


@app.command("steps", cls=_HumanHelp)
def list_steps() -> None:
    """List the steps in the order they run, with what each needs (the ids --only/--skip/--from take)."""
    from bootstrap import engine
    from steps import STEPS

    for step in engine.order([cls() for cls in STEPS]):
        needs = f"  (needs {', '.join(step.requires)})" if step.requires else ""
        only = f"  ({' / '.join(sorted(step.modes))} mode only)" if len(step.modes) == 1 else ""
        typer.echo(f"{step.id:<24}{step.title}{needs}{only}")


@app.command(cls=_HumanHelp)
def schema() -> None:
    """Print the JSON Schema of customer.yaml (for editors and CI linting)."""
    from bootstrap import config

    typer.echo(config.schema_text())


@sandbox_app.command("up", cls=_HumanHelp)
def sandbox_up(
    directory: Annotated[
        Path, typer.Option("--dir", metavar="DIR", help="Where to write sandbox.env and customer.yaml.")
    ] = Path(".sandbox"),
    latency: Annotated[
        float,
        typer.Option(
            "--latency", metavar="SECONDS", min=0, help="Seconds added to every emulated call (benchmarks)."
        ),
    ] = 0.0,
    customers: Annotated[
        int,
        typer.Option(
            "--customers",
            metavar="N",
            min=0,
            help="Also seed customers c001..cNNN: DIR/inventory/<name>/customer.yaml.",
        ),
    ] = 0,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", metavar="", help="Stop a sandbox still running in DIR and start a new one."
        ),
    ] = False,
    hub: Annotated[
        bool,
        typer.Option(
            "--hub",
            metavar="",
            help="Also start a hub cluster running Argo CD; the customer files name it (hub mode).",
        ),
    ] = False,
) -> None:
    """Start the local backends on loopback and write DIR/sandbox.env and DIR/customer.yaml."""
    from sandbox import control

    for line in control.up(directory, latency=latency, customers=customers, replace=replace, hub=hub):
        typer.echo(line, err=True)


@sandbox_app.command("down", cls=_HumanHelp)
def sandbox_down(
    directory: Annotated[Path, typer.Option("--dir", metavar="DIR", help="The sandbox directory.")] = Path(
        ".sandbox"
    ),
) -> None:
    """Stop the sandbox's backends by pid."""
    from sandbox import control

    for line in control.down(directory):
        typer.echo(line, err=True)


def main() -> NoReturn:
    """Entry point: the one place exceptions become exit codes.

    With ``--output json`` an error that ends the command still prints one JSON document on
    stdout (exit code and message), so a program reading stdout never gets nothing.
    """
    from bootstrap.errors import BootstrapError

    try:
        code = app(standalone_mode=False)
    except BootstrapError as exc:
        _fail(exc.exit_code, _redact_for_exit(str(exc)), exc.details())
    except KeyboardInterrupt:
        _fail(ExitCode.INTERRUPTED, _INTERRUPTED)
    except typer.Exit as exc:
        _exit(exc.exit_code)
    except (typer.Abort, EOFError) as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            # Click turns Ctrl-C outside a step (loading, checks, a prompt) into Abort: say so.
            _fail(ExitCode.INTERRUPTED, _INTERRUPTED)
        _exit(ExitCode.INTERRUPTED)
    except typer.TyperException as exc:
        # Usage errors (unknown option, bad value) are invalid input too.
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"error: {exc.format_message()}", err=True)
        if _json_requested():
            _print_error_document(ExitCode.INVALID_INPUT, exc.format_message())
        _exit(ExitCode.INVALID_INPUT)
    _exit(code if isinstance(code, int) else 0)


def _exit(code: int) -> NoReturn:
    """Exit; after an interruption, without waiting for step threads still blocked somewhere.

    The engine has recorded every running step as interrupted and told the services to stop;
    joining threads stuck in a wait or a request would delay the exit by up to their timeouts
    (and a second Ctrl-C during that join printed a threading traceback).
    """
    if code == ExitCode.INTERRUPTED:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(ExitCode.INTERRUPTED)
    sys.exit(code)


def _fail(code: int, message: str, details: dict[str, object] | None = None) -> NoReturn:
    typer.echo(message if code == ExitCode.INTERRUPTED else f"error: {message}", err=True)
    if _json_requested():
        _print_error_document(code, message, details)
    _exit(code)


def _json_requested(argv: list[str] | None = None) -> bool:
    args = sys.argv[1:] if argv is None else argv
    pairs = zip(args, [*args[1:], ""], strict=True)
    return any(
        a in ("--output=json", "-ojson") or (a in ("-o", "--output") and b == "json") for a, b in pairs
    )


def _print_error_document(code: int, message: str, details: dict[str, object] | None = None) -> None:
    import json

    from bootstrap import secrets

    doc = {
        **(details or {}),
        "exit_code": int(code),
        "error": message.splitlines()[0],
        "messages": message.splitlines(),
    }
    print(json.dumps(secrets.REDACTOR.redact_obj(doc), indent=2))


def _redact_for_exit(text: str) -> str:
    from bootstrap import secrets

    return secrets.REDACTOR.redact(text)
