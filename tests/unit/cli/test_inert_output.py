"""The CLI's one gate for text that came from clients (``cli/output.py``): markup is shown as
typed, control and format characters as escapes, in tables, titles, printed lines and errors.
The walk over every command against a seeded daemon is tests/integration/test_cli_inert.py."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from rich.table import Table

from agent_sre.printable import escape_controls
from agent_sre_daemon.cli import output

if TYPE_CHECKING:
    import pytest

HOSTILE = "[/bold]a\x1b[2Jb\x9b31mc\u202ed\u2028e\x00f\ufeffg\n\r\x07"
ESCAPED = "[/bold]a\\x1b[2Jb\\x9b31mc\\u202ed\\u2028e\\x00f\\ufeffg\\x0a\\x0d\\x07"


def test_escape_controls_shows_every_non_printable_character() -> None:
    assert escape_controls(HOSTILE) == ESCAPED
    assert escape_controls("a\tb\nc\x1b", lines=True) == "a\tb\nc\\x1b"
    assert escape_controls("\U000e0041") == "\\U000e0041"  # a tag character
    plain = "agent-7 ünïcode 中文 [ok]"
    assert escape_controls(plain) is plain


def test_inert_text_cuts_and_shows_none_as_empty() -> None:
    assert output.inert_text(None) == ""
    assert output.inert_text(12) == "12"
    assert output.inert_text("\x1b" * 10, 9) == "\\x1b\\x1b~"


def _console(monkeypatch: pytest.MonkeyPatch) -> tuple[io.StringIO, object]:
    buffer = io.StringIO()
    monkeypatch.setattr("sys.stdout", buffer)
    return buffer, output.console()


def test_the_console_shows_cells_titles_and_printed_strings_inert(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buffer, console = _console(monkeypatch)
    table = Table(title=HOSTILE)
    table.add_column(HOSTILE)
    table.add_row(HOSTILE)
    console.print(table)  # type: ignore[attr-defined]
    console.print(HOSTILE)  # type: ignore[attr-defined]
    shown = buffer.getvalue()
    assert shown.count(ESCAPED) == 4
    assert not set(shown) & set("\x1b\x9b\u202e\u2028\x00\ufeff\r\x07")


def test_a_very_long_value_is_cut_in_a_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer, console = _console(monkeypatch)
    table = Table()
    table.add_column("ID", overflow="fold")
    table.add_column("N")
    table.add_row("x" * 5000, "7")
    console.print(table)  # type: ignore[attr-defined]
    shown = buffer.getvalue()
    assert shown.count("x") == output.MAX_CELL - 1 and "~" in shown


def test_say_and_fail_escape_what_the_daemon_answered(
    capsys: pytest.CaptureFixture[str],
) -> None:
    output.say("incident inc-1: " + HOSTILE)
    assert output.fail("HTTP 409: " + HOSTILE) == 1
    out, err = capsys.readouterr()
    assert out == "incident inc-1: " + escape_controls(HOSTILE, lines=True) + "\n"
    assert err == "agent-sre: HTTP 409: " + escape_controls(HOSTILE, lines=True) + "\n"
    assert "\x1b" not in out + err
