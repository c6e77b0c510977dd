"""The command line: parse, load, call the engine, map errors to exit codes.

Thin on purpose. Heavy modules (pydantic models, SDKs, Ansible) are imported
inside the commands so that ``bootstrap --help`` starts fast. The one error
handler, ``main``, is the only place that turns exceptions into exit codes
(DESIGN.md §7): 0 done · 1 step failed · 2 plan has changes · 3 waiting for a
person · 4 invalid input · 5 locked · 130 interrupted.
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from bootstrap import engine, fleet
    from bootstrap.reporting import Reporter
    from bootstrap.secrets import Redactor

app = typer.Typer(
    help="Onboard a customer onto the GitOps platform: run, resume, preview and inspect the steps.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
sandbox_app = typer.Typer(
    help="Local backends on loopback for trying the tool without credentials.", no_args_is_help=True
)
app.add_typer(sandbox_app, name="sandbox")


class Output(enum.StrEnum):
    text = "text"
    json = "json"


CustomerArg = Annotated[Path, typer.Argument(help="The customer file (customer.yaml).", show_default=False)]
StateDirOpt = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Checkpoint directory (default: .bootstrap/ next to the file)."),
]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="text, or one JSON document on stdout.")]
BreakLockOpt = Annotated[
    bool, typer.Option("--break-lock", help="Take the lock even if another run holds it.")
]


CustomersArg = Annotated[
    list[Path], typer.Argument(help="Customer file(s); several run as a fleet.", show_default=False)
]
OnlyOpt = Annotated[list[str], typer.Option("--only", help="Only this step (repeatable).")]
SkipOpt = Annotated[list[str], typer.Option("--skip", help="Skip this step (repeatable).")]
ParallelOpt = Annotated[
    int,
    typer.Option(
        "--parallel",
        "-p",
        min=1,
        max=64,
        help="Concurrency: independent steps of one customer, or customers of a fleet. 1 = sequential.",
    ),
]
StateOpt = Annotated[
    str | None,
    typer.Option(
        "--state", help="Checkpoint store URL, e.g. kubernetes://CONTEXT/NAMESPACE (default: files)."
    ),
]


def _reporter(output: Output, redactor: Redactor) -> Reporter:
    from bootstrap import reporting

    if output is Output.json:
        return reporting.JsonReporter(redactor)
    return reporting.ConsoleReporter(redactor)


def _execute(paths: list[Path], options: fleet.Options) -> int:
    from bootstrap import fleet
    from steps import STEPS

    return fleet.execute(paths, STEPS, options)


def _selection(only: list[str], skip: list[str], from_: str | None = None) -> engine.Selection:
    from bootstrap import engine

    return engine.Selection(tuple(only), tuple(skip), from_)


@app.command()
def run(
    customers: CustomersArg,
    only: OnlyOpt = [],  # noqa: B006
    skip: SkipOpt = [],  # noqa: B006
    from_: Annotated[str | None, typer.Option("--from", help="Start at this step.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan every step and stop (= plan).")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite hand edits (drift) in managed files.")
    ] = False,
    parallel: ParallelOpt = 4,
    output: OutputOpt = Output.text,
    state_dir: StateDirOpt = None,
    state: StateOpt = None,
    break_lock: BreakLockOpt = False,
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
        force=force,
        break_lock=break_lock,
    )
    raise typer.Exit(_execute(customers, opts))


@app.command()
def plan(
    customers: CustomersArg,
    only: OnlyOpt = [],  # noqa: B006
    skip: SkipOpt = [],  # noqa: B006
    parallel: ParallelOpt = 4,
    output: OutputOpt = Output.text,
    state_dir: StateDirOpt = None,
    state: StateOpt = None,
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
    )
    raise typer.Exit(_execute(customers, opts))


@app.command()
def destroy(
    customer: CustomerArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be removed and stop.")] = False,
    only: OnlyOpt = [],  # noqa: B006
    output: OutputOpt = Output.text,
    state_dir: StateDirOpt = None,
    state: StateOpt = None,
    break_lock: BreakLockOpt = False,
) -> None:
    """Undo the steps in reverse order (archive the channel, delete keys, revert argocd/ by a commit, …)."""
    if not dry_run and not yes:
        if not sys.stdin.isatty():
            typer.echo("error: destroy needs --yes when not run from a terminal", err=True)
            raise typer.Exit(4)
        typer.confirm(f"Destroy everything bootstrap created for {customer}?", abort=True, err=True)
    from bootstrap.fleet import Options

    opts = Options(
        mode="destroy-plan" if dry_run else "destroy",
        selection=_selection(only, []),
        state_dir=state_dir,
        state_url=state,
        json_output=output is Output.json,
        break_lock=break_lock,
    )
    raise typer.Exit(_execute([customer], opts))


class Rotation(enum.StrEnum):
    deploy_key = "deploy-key"
    passwords = "passwords"
    alerting_key = "alerting-key"


@app.command()
def rotate(
    customer: CustomerArg,
    what: Annotated[
        Rotation, typer.Argument(help="deploy-key, passwords (Argo CD admin and users), or alerting-key.")
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change and stop.")] = False,
    output: OutputOpt = Output.text,
    state_dir: StateDirOpt = None,
    break_lock: BreakLockOpt = False,
) -> None:
    """Replace a credential: the new one is live everywhere before the old one is removed."""
    from bootstrap import engine, session
    from steps import STEPS

    sess = session.open_session(customer, state_dir)
    reporter = _reporter(output, sess.redactor)
    eng = engine.Engine([c() for c in STEPS], sess.store, reporter, sess.redactor)
    with sess.store.lock(break_lock=break_lock) as notice:
        if notice:
            reporter.notice(notice)
        summary = eng.rotate(sess.context, str(what), dry_run=dry_run)
    raise typer.Exit(summary.exit_code())


@app.command()
def status(
    customer: CustomerArg,
    verify: Annotated[
        bool, typer.Option("--verify", help="Also check each done step against reality.")
    ] = False,
    output: OutputOpt = Output.text,
    state_dir: StateDirOpt = None,
    state: StateOpt = None,
) -> None:
    """Show what the checkpoint says about each step (and, with --verify, whether it still holds)."""
    import json

    from rich.console import Console
    from rich.table import Table

    from bootstrap import config, engine, session
    from steps import STEPS

    problems: dict[str, str | None] = {}
    if verify:
        sess = session.open_session(customer, state_dir, state_url=state)
        store = sess.store
        problems = engine.Engine(
            [c() for c in STEPS], store, _reporter(output, sess.redactor), sess.redactor
        ).verify(sess.context)
        name = sess.config.customer.name
    else:
        name = config.load(customer).customer.name
        store = session.store_for(state, session.state_dir_for(customer, state_dir), name)
    recorded = store.load(name)
    rows = []
    for cls in STEPS:
        rec = recorded.record(cls.id)
        row = {
            "id": cls.id,
            "status": str(rec.status),
            "attempts": rec.attempts,
            "finished": rec.finished,
            "error": rec.error,
            "outputs": rec.outputs,
        }
        if cls.id in problems:
            row["verified"] = problems[cls.id] is None
            row["problem"] = problems[cls.id]
        rows.append(row)
    if output is Output.json:
        print(json.dumps({"customer": name, "state": store.describe(), "steps": rows}, indent=2))
    else:
        table = Table(title=f"{name} — {store.describe()}")
        for col in ("step", "status", "attempts", "finished", "note"):
            table.add_column(col)
        for r in rows:
            note = r.get("problem") or r["error"] or ("verified" if r.get("verified") else "")
            table.add_row(
                str(r["id"]), str(r["status"]), str(r["attempts"]), str(r["finished"] or ""), str(note)
            )
        Console(stderr=False).print(table)
    if any(problems.values()):
        raise typer.Exit(1)


@app.command()
def forget(
    customer: CustomerArg,
    step: Annotated[str, typer.Argument(help="The step id whose record to drop.")],
    state_dir: StateDirOpt = None,
    state: StateOpt = None,
    break_lock: BreakLockOpt = False,
) -> None:
    """Drop one step's record, so the next run treats it as never run (remote state is re-observed)."""
    from bootstrap import config, session
    from bootstrap.errors import ConfigError
    from steps import STEPS

    name = config.load(customer).customer.name
    store = session.store_for(state, session.state_dir_for(customer, state_dir), name)
    with store.lock(break_lock=break_lock):
        recorded = store.load(name)
        # A record of a step that no longer exists (renamed, removed) may be dropped too.
        ids = [c.id for c in STEPS] + [k for k in recorded.steps if k not in {c.id for c in STEPS}]
        if step not in ids:
            raise ConfigError(f"unknown step {step!r}; steps are: {', '.join(ids)}")
        recorded.steps.pop(step, None)
        store.save(recorded)
    typer.echo(f"forgot {step} for {name}; the next run re-plans it", err=True)


@app.command()
def validate(customer: CustomerArg) -> None:
    """Check a customer file without contacting any service (exit 4 when invalid)."""
    from bootstrap import config

    cfg = config.load(customer)
    typer.echo(
        f"{customer}: valid (customer {cfg.customer.name}, kit {cfg.kit.repo}@{cfg.kit.version})", err=True
    )


@app.command()
def schema() -> None:
    """Print the JSON Schema of customer.yaml (for editors and CI linting)."""
    from bootstrap import config

    typer.echo(config.schema_text())


@sandbox_app.command("up")
def sandbox_up(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where to write sandbox.env and customer.yaml.")
    ] = Path(".sandbox"),
    latency: Annotated[
        float, typer.Option("--latency", min=0, help="Seconds added to every emulated call (benchmarks).")
    ] = 0.0,
    customers: Annotated[
        int,
        typer.Option(
            "--customers", min=0, help="Also seed customers c001..cNNN: DIR/inventory/<name>/customer.yaml."
        ),
    ] = 0,
) -> None:
    """Start the local backends on loopback and write DIR/sandbox.env and DIR/customer.yaml."""
    from sandbox import control

    for line in control.up(directory, latency=latency, customers=customers):
        typer.echo(line, err=True)


@sandbox_app.command("down")
def sandbox_down(
    directory: Annotated[Path, typer.Option("--dir", help="The sandbox directory.")] = Path(".sandbox"),
) -> None:
    """Stop the sandbox's backends by pid."""
    from sandbox import control

    for line in control.down(directory):
        typer.echo(line, err=True)


def main() -> NoReturn:
    """Entry point: the one place exceptions become exit codes."""
    from bootstrap.errors import BootstrapError

    try:
        code = app(standalone_mode=False)
    except BootstrapError as exc:
        typer.echo(f"error: {_redact_for_exit(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted; the checkpoint is saved — run the same command again to resume", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, EOFError):
        sys.exit(130)
    except typer.TyperException as exc:
        # Usage errors (unknown option, bad value) are invalid input too.
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(4)
    sys.exit(code if isinstance(code, int) else 0)


def _redact_for_exit(text: str) -> str:
    from bootstrap import secrets

    return secrets.REDACTOR.redact(text)
