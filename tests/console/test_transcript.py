"""The snapshot tests' own checks can fail: each is shown a console that breaks its rule.

Fast (no sandbox): synthetic transcripts and a terminal replay of known bytes.
"""

from __future__ import annotations

import pytest

from tests.console import terminal
from tests.console.terminal import Capture
from tests.console.test_snapshots import check_attribution, check_counts, check_streams, parse

GOOD = """run customer kuvaq: 7 step(s)
  deploy-key: applying (ansible)
▶ argocd-dir
  + create x
  ✓ argocd-dir done
  argocd-install: applying 64 objects to namespace argocd (ansible, server-side)
▶ deploy-key
  ✓ deploy-key done
▶ argocd-users
  ✓ argocd-users done
▶ github-oauth
  ✓ github-oauth done
▶ slack-channel
  ✓ slack-channel done
▶ alertmanager-opsgenie
  ✓ alertmanager-opsgenie done
▶ argocd-install
  ✓ argocd-install done
kuvaq: run 7 done — finished
"""


def test_a_good_console_passes() -> None:
    t = parse(GOOD)
    check_attribution("run.piped", t)
    check_counts("run.piped", t)
    assert t.progress == [
        "  deploy-key: applying (ansible)",
        "  argocd-install: applying 64 objects to namespace argocd (ansible, server-side)",
    ]
    assert "  + create x" in t.blocks["argocd-dir"]


def test_a_line_no_step_owns_fails() -> None:
    t = parse(GOOD.replace("kuvaq: run", "applying 64 objects\nkuvaq: run"))
    with pytest.raises(AssertionError, match="a line no step owns"):
        check_attribution("run.piped", t)


def test_a_missing_block_or_counts_that_do_not_add_up_fail() -> None:
    with pytest.raises(AssertionError, match="blocks"):
        check_counts("run.piped", parse(GOOD.replace("▶ deploy-key\n  ✓ deploy-key done\n", "")))
    with pytest.raises(AssertionError, match="changed blocks"):
        check_counts("run.piped", parse(GOOD.replace("run 7 done", "run 6 done")))


def test_two_blocks_for_one_step_fail() -> None:
    with pytest.raises(AssertionError, match="two blocks"):
        parse(GOOD + "▶ deploy-key\n")


def test_escapes_colour_and_secrets_are_caught() -> None:
    plain = Capture(0, "x\n", "x\n")
    check_streams("run.piped", plain, {"s3cr3t-value"})
    with pytest.raises(AssertionError, match="escape"):
        check_streams("run.piped", Capture(0, "x\n", "\x1b[1mx\x1b[0m\n"), set())
    with pytest.raises(AssertionError, match="escape"):
        check_streams("run.tty-nocolor", Capture(0, "x\n", "\x1b[2Kx\n"), set())
    with pytest.raises(AssertionError, match="without colour"):
        check_streams("run.tty", plain, set())
    with pytest.raises(AssertionError, match="secret"):
        shown = "token s3cr3t-value\n"
        check_streams("run.piped", Capture(0, shown, shown), {"s3cr3t-value"})


def test_the_replay_keeps_what_stays_on_screen() -> None:
    """Live lines drawn and erased leave nothing; printed lines stay whole, a long one unwrapped."""
    long = "y" * (terminal.COLUMNS * 3)
    raw = (
        "header\r\n"
        "\x1b[?25l⠋ deploy-key 1s planning\r\n⠋ argocd-dir 1s planning"  # two live lines
        "\r\x1b[2K\x1b[1A\x1b[2K"  # erased before a block is printed above them
        f"▶ deploy-key\r\n  {long}\r\n"
        "⠙ argocd-dir 2s applying"  # the live line again
        "\r\x1b[2K\x1b[?25h"  # and gone when the run ends
    ).encode()
    assert terminal.screen_text(raw) == f"header\n▶ deploy-key\n  {long}\n"
