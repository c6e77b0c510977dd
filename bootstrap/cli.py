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


def _reporter(output: Output, redactor: Redactor) -> Reporter:
    from bootstrap import reporting

    if output is Output.json:
        return reporting.JsonReporter(redactor)
    return reporting.ConsoleReporter(redactor)


def _execute(
    path: Path,
    *,
    dry_run: bool,
    only: list[str],
    skip: list[str],
    from_: str | None,
    state_dir: Path | None,
    output: Output,
    force: bool,
    break_lock: bool,
) -> int:
    from bootstrap import engine, session
    from steps import STEPS

    sess = session.open_session(path, state_dir, force=force)
    reporter = _reporter(output, sess.redactor)
    eng = engine.Engine([cls() for cls in STEPS], sess.store, reporter, sess.redactor)
    selection = engine.Selection(tuple(only), tuple(skip), from_)
    with sess.store.lock(break_lock=break_lock) as notice:
        if notice:
            reporter.notice(notice)
        summary = eng.run(sess.context, selection, dry_run=dry_run)
    if summary.failed and not dry_run:
        failed = next(r.step for r in summary.results if r.status in ("failed", "interrupted"))
        reporter.notice(f"fix the cause, then run the same command again to resume from {failed}")
    return summary.exit_code()


@app.command()
def run(
    customer: CustomerArg,
    only: Annotated[list[str], typer.Option("--only", help="Run only this step (repeatable).")] = [],  # noqa: B006
    skip: Annotated[list[str], typer.Option("--skip", help="Skip this step (repeatable).")] = [],  # noqa: B006
    from_: Annotated[str | None, typer.Option("--from", help="Start at this step.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan every step and stop (= plan).")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite hand edits (drift) in managed files.")
    ] = False,
    output: OutputOpt = Output.text,
    state_dir: StateDirOpt = None,
    break_lock: BreakLockOpt = False,
) -> None:
    """Run every step that is not up to date; re-run the same command to resume after a failure."""
    raise typer.Exit(
        _execute(
            customer,
            dry_run=dry_run,
            only=only,
            skip=skip,
            from_=from_,
            state_dir=state_dir,
            output=output,
            force=force,
            break_lock=break_lock,
        )
    )


@app.command()
def plan(
    customer: CustomerArg,
    only: Annotated[list[str], typer.Option("--only", help="Plan only this step (repeatable).")] = [],  # noqa: B006
    skip: Annotated[list[str], typer.Option("--skip", help="Skip this step (repeatable).")] = [],  # noqa: B006
    output: OutputOpt = Output.text,
    state_dir: StateDirOpt = None,
) -> None:
    """Preview every change without making any (exit 2 when there are changes)."""
    raise typer.Exit(
        _execute(
            customer,
            dry_run=True,
            only=only,
            skip=skip,
            from_=None,
            state_dir=state_dir,
            output=output,
            force=False,
            break_lock=False,
        )
    )


@app.command()
def status(
    customer: CustomerArg,
    verify: Annotated[
        bool, typer.Option("--verify", help="Also check each done step against reality.")
    ] = False,
    output: OutputOpt = Output.text,
    state_dir: StateDirOpt = None,
) -> None:
    """Show what the checkpoint says about each step (and, with --verify, whether it still holds)."""
    import json

    from rich.console import Console
    from rich.table import Table

    from bootstrap import config, engine, session
    from bootstrap.checkpoint import FileStore
    from steps import STEPS

    problems: dict[str, str | None] = {}
    if verify:
        sess = session.open_session(customer, state_dir)
        store = sess.store
        problems = engine.Engine(
            [c() for c in STEPS], store, _reporter(output, sess.redactor), sess.redactor
        ).verify(sess.context)
        name = sess.config.customer.name
    else:
        name = config.load(customer).customer.name
        store = FileStore(session.state_dir_for(customer, state_dir))
    state = store.load(name)
    rows = []
    for cls in STEPS:
        rec = state.record(cls.id)
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
    break_lock: BreakLockOpt = False,
) -> None:
    """Drop one step's record, so the next run treats it as never run (remote state is re-observed)."""
    from bootstrap import config, session
    from bootstrap.checkpoint import FileStore
    from bootstrap.errors import ConfigError
    from steps import STEPS

    ids = [c.id for c in STEPS]
    if step not in ids:
        raise ConfigError(f"unknown step {step!r}; steps are: {', '.join(ids)}")
    name = config.load(customer).customer.name
    store = FileStore(session.state_dir_for(customer, state_dir))
    with store.lock(break_lock=break_lock):
        state = store.load(name)
        state.steps.pop(step, None)
        store.save(state)
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
) -> None:
    """Start the local backends on loopback and write DIR/sandbox.env and DIR/customer.yaml."""
    from bootstrap.sandbox import control

    for line in control.up(directory):
        typer.echo(line, err=True)


@sandbox_app.command("down")
def sandbox_down(
    directory: Annotated[Path, typer.Option("--dir", help="The sandbox directory.")] = Path(".sandbox"),
) -> None:
    """Stop the sandbox's backends by pid."""
    from bootstrap.sandbox import control

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
