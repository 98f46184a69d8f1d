"""A lab's own meter firmware model, loaded the way a lab loads one: ``module:Class``.

``tests.simlab.meter_models:NoTamperClearMeter`` is what ``SimBench(model=...)`` and
``stslab sim --model`` are given in the tests.
"""

from __future__ import annotations

from typing import Any, ClassVar

from simlab.meter import SimMeter
from sts.meter import Effect, ReferenceMeter, Result
from sts.tokens import ClearTamperCondition, Token


class NoTamperClearProcess(ReferenceMeter):
    """A firmware that does not implement ClearTamperCondition: it answers Function error."""

    def execute(self, token: Token) -> tuple[Result, tuple[Effect, ...], str]:
        if isinstance(token, ClearTamperCondition):
            return Result.FUNCTION, (), "ClearTamperCondition not supported"
        return super().execute(token)


class NoTamperClearMeter(SimMeter):
    """The default meter with that firmware; its optical port identifies it as ``SL100T``."""

    processor_class = NoTamperClearProcess
    #: How many of these meters were built (lets an in-process test see the model was used).
    built: ClassVar[int] = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        NoTamperClearMeter.built += 1

    def identification(self) -> str:
        port = self.profile.port
        return f"{port.manufacturer_flag}{port.baud_char}SL100T"


class NotAMeter:
    """Importable, but no SimMeter: ``load_model`` must refuse it."""
