"""The command lines' help, version and argument errors (`ekvio-assets`, its simulator and bench)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from ekvio_assets.cli import main

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _exit(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as ended:
        main(argv)
    out, err = capsys.readouterr()
    return ended.value.code, out, err


def _option_entries(help_text: str) -> dict[str, str]:
    """Each option of a --help text's options section with its help, the wrapped lines joined."""
    section = help_text[help_text.index("\noptions:\n") :].split("\n\n")[0]
    entries: dict[str, str] = {}
    for line in section.splitlines()[2:]:
        if re.match(r"  -", line):
            name = line.split()[0].rstrip(",")
            entries[name] = line
        elif line.startswith("   ") and entries:
            entries[name] += " " + line.strip()
    return {name: " ".join(text.split()) for name, text in entries.items()}


def test_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    assert _exit(["--version"], capsys) == (0, f"ekvio-assets {declared}\n", "")


def test_every_command_has_a_help_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _exit(["--help"], capsys)
    assert code == 0
    for command in ("refresh", "replay", "ui", "tables", "pools", "simulator", "bench"):
        assert re.search(rf"^    {command}\s+\w+", out, re.M), command


@pytest.mark.parametrize("command", ["refresh", "replay", "ui", "simulator", "bench"])
def test_every_option_names_its_default(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _exit([command, "--help"], capsys)
    assert code == 0
    options = _option_entries(out)
    assert len(options) > 1, out
    for name, entry in options.items():
        if name != "-h":
            assert "(default: " in entry, entry


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["simulator", "--learners", "-5"], "learners must not be negative"),
        (["simulator", "--materials", "-1"], "materials must not be negative"),
        (["simulator", "--courses", "ten"], "argument --courses: 'ten' is not a whole number"),
        (["simulator", "--programs", "1.5"], "argument --programs: '1.5' is not a whole number"),
        (["simulator", "--days", "0"], "days must be at least 1"),
        (["simulator", "--seed", "x"], "argument --seed: 'x' is not a whole number"),
        (["simulator", "--polls-to-complete", "0"], "argument --polls-to-complete: '0' is less than 1"),
        (["simulator", "--port", "70000"], "argument --port: '70000' is not a port number (0-65535)"),
        (["simulator", "--port", "-1"], "argument --port: '-1' is not a port number (0-65535)"),
        (["simulator", "--start", "2024-13-01"], "argument --start: '2024-13-01' is not a date YYYY-MM-DD"),
        (["simulator", "--fault-rate", "2"], "argument --fault-rate: '2' is not a probability between 0 and 1"),
        (["simulator", "--fault-seed", "x"], "argument --fault-seed: 'x' is not a whole number"),
        (["simulator", "--error-status", "99"], "error_status must be an HTTP status, got 99"),
        (["simulator", "--now", "2024-01-01T00:00"], "argument --now: '2024-01-01T00:00' has no UTC offset"),
        (["simulator", "--host", "host.invalid"], "cannot listen on host.invalid:0"),
        (["bench", "--rows", "many"], "argument --rows: 'many' is not a whole number"),
        (["bench", "--rounds", "0"], "argument --rounds: '0' is less than 1"),
        (["refresh", "--from", "yesterday"], "argument --from: 'yesterday' is not a date YYYY-MM-DD"),
        (["refresh", "--to", "2024-01-02"], "--to needs --from"),
        (["ui", "--port", "0"], "argument --port: '0' is not a port number (1-65535)"),
        (["serve"], "invalid choice: 'serve'"),
    ],
)
def test_a_bad_argument_is_one_line_and_exit_code_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _exit(argv, capsys)
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("ekvio-assets") and ": error: " in err and says in err, err
