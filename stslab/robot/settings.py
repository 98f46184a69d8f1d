"""What a Robot run's campaign opens with: the library import's and ``Open Campaign``'s
settings, the ``${STSLAB_*}`` variables that override them, and the argument types the keyword
groups share."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from stslab.scenario import Scenario
from stslab.session import DEFAULT_PACK, CampaignConfig

Carrier = Literal["keypad", "port", "card"]
RelayState = Literal["open", "closed"]

#: Robot variables that override the library's and ``Open Campaign``'s settings (the
#: command line wins: ``robot --variable STSLAB_BENCH:lab.yaml`` or ``stslab robot``).
VARIABLES = {
    "bench": "STSLAB_BENCH",
    "dut": "STSLAB_DUT",
    "job": "STSLAB_JOB",
    "out": "STSLAB_OUT",
    "pack": "STSLAB_PACK",
    "mode": "STSLAB_MODE",
    "speed": "STSLAB_SPEED",
    "defects": "STSLAB_DEFECTS",
    "noise": "STSLAB_NOISE",
    "model": "STSLAB_MODEL",
    "seed": "STSLAB_SEED",
    "pack_keys": "STSLAB_PACK_KEYS",
    "ledger": "STSLAB_LEDGER",
    "carrier": "STSLAB_CARRIER",
    "on_fault": "STSLAB_ON_FAULT",
}
#: Suite metadata naming the run folder (read back from output.xml by ``stslab robot``).
RUN_METADATA = "stslab run"

# The scenario id pattern: Robot tests whose id has it can be pack scenarios, and are planned.
_ID_PATTERN = Scenario.model_fields["id"].metadata[0].pattern
# Planned when no Robot test carries a scenario id: matches no pack scenario id.
_NO_PACK_SCENARIO = "(robot tests only)"


@dataclass(frozen=True)
class CampaignSettings:
    """What the campaign opens: the fields of the library import and ``Open Campaign``."""

    bench: str = CampaignConfig.bench
    dut: str | None = None
    job: str | None = None
    out: str = str(CampaignConfig.out)
    pack: str | None = None
    mode: str = CampaignConfig.mode
    speed: float = CampaignConfig.speed
    defects: tuple[str, ...] = ()
    noise: str = CampaignConfig.noise
    model: str | None = None
    seed: int | None = None
    pack_keys: tuple[str, ...] = ()
    ledger: str | None = None
    carrier: str | None = None
    on_fault: str = "continue"

    def updated(self, **values: Any) -> CampaignSettings:
        """These settings with the given (not None) values; text is converted and checked."""
        given = {k: _setting(k, v) for k, v in values.items() if v is not None}
        return replace(self, **given)

    def campaign_config(self, plan: list[str]) -> CampaignConfig:
        return CampaignConfig(
            bench=self.bench,
            dut=self.dut,
            job=self.job,
            out=Path(self.out),
            pack=Path(self.pack) if self.pack else DEFAULT_PACK,
            mode=self.mode,  # type: ignore[arg-type]
            speed=self.speed,
            defects=self.defects,
            noise=self.noise,
            model=self.model,
            ledger_dir=Path(self.ledger) if self.ledger else None,
            pack_keys=tuple(Path(p) for p in self.pack_keys),
            select=_selection(plan),
            seed=self.seed,
        )


def describe(settings: CampaignSettings | None) -> str:
    """The settings that differ from the defaults, as a message names them."""
    if settings is None:
        return "none"
    default = CampaignSettings()
    changed = [
        f"{f.name}={getattr(settings, f.name)}"
        for f in fields(settings)
        if getattr(settings, f.name) != getattr(default, f.name)
    ]
    return ", ".join(changed) or "defaults"


def _setting(name: str, value: Any) -> Any:
    if name in ("defects", "pack_keys"):
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(i.strip() for i in items if str(i).strip())
    if name == "speed":
        speed = float(value)
        if speed <= 0:
            raise ValueError(f"speed must be positive, not {value!r}")
        return speed
    if name == "seed":
        return int(value)
    text = str(value)
    allowed = {
        "mode": ("pre-submission", "accredited"),
        "on_fault": ("continue", "stop"),
        "carrier": ("keypad", "port", "card"),
    }.get(name)
    if allowed and text not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {text!r}")
    return text


def _selection(plan: list[str]) -> tuple[str, ...]:
    """The pack scenarios this run plans: those the Robot tests are (by id)."""
    ids = tuple(sorted({p for p in plan if re.fullmatch(_ID_PATTERN, p)}))
    return ids or (_NO_PACK_SCENARIO,)
