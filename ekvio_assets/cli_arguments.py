"""The argument parser of every ekvio-assets command line (`ekvio-assets`, its simulator and bench)."""

from __future__ import annotations

import argparse
from datetime import date
from typing import NoReturn


def iso_day(text: str) -> date:
    """An argument type: a day as YYYY-MM-DD."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


class ArgumentParser(argparse.ArgumentParser):
    """A bad argument is one line on stderr and exit code 2: the full usage is a --help away."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
