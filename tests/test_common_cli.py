"""common.cli: user errors become one line and exit 2; Ctrl-C exits 130; SOLVEDLENS_DEBUG shows the traceback."""

from __future__ import annotations

import pytest

from common.cli import EXIT_INTERRUPTED, EXIT_USAGE, fail, run_app


def _raiser(exc: BaseException):
    def app() -> None:
        raise exc
    return app


@pytest.mark.parametrize("exc, line", [
    (ValueError("move 8 in '448' is column 8; columns are 1..7"), "error: move 8 in '448' is column 8; columns are 1..7"),
    (FileNotFoundError("no checkpoint in runs/x"), "error: no checkpoint in runs/x"),
    (KeyError("unknown concept 'foo'"), "error: unknown concept 'foo'"),
    (PermissionError(13, "Permission denied", "/ro/out.json"), "error: [Errno 13] Permission denied: '/ro/out.json'"),
])
def test_user_errors_are_one_line_and_exit_2(exc, line, capsys, monkeypatch):
    monkeypatch.delenv("SOLVEDLENS_DEBUG", raising=False)
    with pytest.raises(SystemExit, match=f"^{EXIT_USAGE}$") as info:
        run_app(_raiser(exc))
    assert info.value.code == EXIT_USAGE
    assert capsys.readouterr().err == line + "\n"


def test_ctrl_c_exits_130_with_one_line(capsys, monkeypatch):
    monkeypatch.delenv("SOLVEDLENS_DEBUG", raising=False)
    with pytest.raises(SystemExit, match=f"^{EXIT_INTERRUPTED}$") as info:
        run_app(_raiser(KeyboardInterrupt()))
    assert info.value.code == EXIT_INTERRUPTED
    assert capsys.readouterr().err.startswith("interrupted")


def test_program_errors_keep_their_traceback(monkeypatch):
    monkeypatch.delenv("SOLVEDLENS_DEBUG", raising=False)
    with pytest.raises(ZeroDivisionError, match="boom"):
        run_app(_raiser(ZeroDivisionError("boom")))


def test_debug_variable_shows_the_original_exception(monkeypatch):
    monkeypatch.setenv("SOLVEDLENS_DEBUG", "1")
    with pytest.raises(ValueError, match="bad width"):
        run_app(_raiser(ValueError("bad width")))


def test_fail_prints_and_exits(capsys):
    with pytest.raises(SystemExit, match=f"^{EXIT_USAGE}$") as info:
        fail("--n must be at least 1, got 0")
    assert info.value.code == EXIT_USAGE
    assert capsys.readouterr().err == "error: --n must be at least 1, got 0\n"


def test_ctrl_c_inside_a_typer_app_says_so(capsys, monkeypatch):
    import typer

    monkeypatch.delenv("SOLVEDLENS_DEBUG", raising=False)
    app = typer.Typer(add_completion=False)

    @app.command()
    def main(n: int = 1) -> None:
        raise KeyboardInterrupt

    with pytest.raises(SystemExit, match=f"^{EXIT_INTERRUPTED}$") as info:
        run_app(app, args=[], prog_name="demo")
    assert info.value.code == EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip().endswith("rerun the same command to resume)")


def test_help_text_keeps_example_blocks_verbatim():
    from common.cli import help_text

    doc = "Do it.\n\nLike this::\n\n    python a.py \\\n        --x 1\n\nOr:\n\n    python b.py\n\nDone."
    assert help_text(doc) == ("Do it.\n\nLike this:\n\n\b\n    python a.py \\\n        --x 1\n\nOr:\n\n\b\n"
                              "    python b.py\n\nDone.")
    assert help_text("Plain text.\n\nNo examples.") == "Plain text.\n\nNo examples."
