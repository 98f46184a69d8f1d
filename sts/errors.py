"""Errors raised by the token engine.

Every error names the parameter it is about, so a command line or a loader can point at the
offending argument or key. Messages never carry key material.
"""

from __future__ import annotations


class StsError(ValueError):
    """A value the STS application layer cannot take; ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.reason = message


class TokenFormatError(StsError):
    """A 20-digit token that is not 20 decimal digits or is not below 2**66."""

    def __init__(self, message: str) -> None:
        super().__init__("token", message)


class TokenExhaustedError(StsError):
    """No TID is left that the meter would accept under the current key (KEN reached)."""
