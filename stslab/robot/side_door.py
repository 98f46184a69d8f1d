"""SimLab's side door: keywords that make a simulated device's transport misbehave and heal
it, to exercise the fault paths. A real bench has no side door: there they are faults."""

from __future__ import annotations

from typing import Any, Literal

from robotlibcore import keyword

from stslab.campaign import StepFault, StepResult
from stslab.robot.context import KeywordGroup


class SideDoorKeywords(KeywordGroup):
    @keyword("Inject Transport Fault")
    def inject_transport_fault(
        self,
        role: str,
        fault: Literal["silent", "vanished", "drop_rate", "garble_rate", "delay_s"] = "silent",
        value: float = 1.0,
    ) -> None:
        """SimLab only: makes a simulated device's transport misbehave, to exercise the
        fault paths (``silent``, ``vanished``, or a ``drop_rate``, ``garble_rate`` or
        ``delay_s`` of ``value``). Recorded as a step. On a real bench this keyword fails:
        it has no side door.

        | Inject Transport Fault    port    silent
        """

        setting: bool | float = True if fault in ("silent", "vanished") else value

        def act(res: StepResult) -> None:
            assert self.ctx.campaign is not None
            setattr(self._sim_faults(role), fault, setting)
            self.ctx.campaign.runner._acted()
            res.action = {"side_door": "transport fault", "role": role, fault: setting}

        self.ctx.step("Inject Transport Fault", f"{role} {fault}", act, action=False)

    @keyword("Clear Transport Faults")
    def clear_transport_faults(self, role: str | None = None) -> None:
        """SimLab only: heals the transport faults of ``role`` (default: every device)."""

        def act(res: StepResult) -> None:
            assert self.ctx.campaign is not None
            sim = self._simlab()
            for name in [role] if role else list(sim.faults):
                self._sim_faults(name).clear()
            self.ctx.campaign.runner._acted()
            res.action = {"side_door": "clear transport faults", "role": role or "all"}

        self.ctx.step("Clear Transport Faults", role or "", act, action=False)

    def _simlab(self) -> Any:
        campaign = self.ctx.open()
        if campaign._sim is None:
            raise StepFault("this keyword needs SimLab's side door: the bench is not SimLab")
        return campaign._sim

    def _sim_faults(self, role: str) -> Any:
        sim = self._simlab()
        if role not in sim.faults:
            raise StepFault(f"SimLab has no {role!r} device ({', '.join(sim.faults)})")
        return sim.fault(role)
