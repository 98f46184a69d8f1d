"""Command-line errors: one line on stderr, naming the argument, exit status 2."""

from __future__ import annotations


class ArgumentError(Exception):
    """A bad argument found after parsing (the message starts with the argument's name)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
