"""``python -m bootstrap`` and the ``bootstrap`` command start here."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


def _while_loading(_signum: int, _frame: FrameType | None) -> None:
    sys.stderr.write("interrupted while starting; nothing was done\n")
    sys.stderr.flush()
    os._exit(130)


def entry() -> None:
    """Load the CLI, then run it.

    Loading takes a second or more on a busy machine; Ctrl-C then would print an import
    traceback. Until the CLI is loaded, it exits 130 with one line instead (nothing has
    been read or written yet); the CLI's own handling takes over from there.
    """
    previous = signal.signal(signal.SIGINT, _while_loading)
    # pydantic looks for plugins (third-party observability hooks) in every installed package's
    # entry points the first time a model is built: ~30 ms of every command, and of every Ansible
    # module start (the kubernetes client builds models). Nothing here uses one; a user who sets
    # the variable keeps their setting (https://docs.pydantic.dev/latest/concepts/plugins/).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from bootstrap.cli import main

    signal.signal(signal.SIGINT, previous)
    main()


if __name__ == "__main__":
    entry()
