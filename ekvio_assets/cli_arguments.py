"""The argument parser of every ekvio-assets command line (`ekvio-assets`, its simulator and bench)."""

from __future__ import annotations

import argparse
from typing import NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """A bad argument is one line on stderr and exit code 2: the full usage is a --help away."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
