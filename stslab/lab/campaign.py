"""A campaign on a place: the pytest plugin object that stops the campaign when its place is
lost and leaves the run resumable, with the place named in the journal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from stslab.lab.hold import PlaceHold

#: How long a fault waits for the coordinator to report a dropped exporter.
LOSS_NOTICE_S = 2.0


class PlaceGuard:
    """Stops the run after the scenario in progress when the place's exporter (or the
    coordinator) goes away; journals ``place_lost`` instead of the bench's end, so
    ``stslab certify --resume RUN --place NAME`` continues it once the place is back."""

    def __init__(self, hold: PlaceHold) -> None:
        self.hold = hold
        self.session: Any = None
        self.scenario: str | None = None
        hold.on_lost = self._lost

    def pytest_sessionstart(self, session: Any) -> None:
        self.session = session

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.scenario = nodeid.rsplit("::", 1)[-1]

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        # A scenario that ended in a fault may be the first sign of a lost place: ask
        # before the next scenario starts, so the loss stops the run and is journalled.
        from fixtures.plugin import RESULTS_KEY
        from stslab.campaign import Outcome

        if self.session is None:
            return
        result = self.session.config.stash[RESULTS_KEY].get(self.scenario)
        if result is not None and result.outcome is Outcome.ERROR:
            self.hold.confirm_lost(LOSS_NOTICE_S)

    def _lost(self, why: str) -> None:
        if self.session is not None:
            self.session.shouldstop = f"place {self.hold.lost_place}: {why}"

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: Any) -> None:
        if self.hold.check() is None:
            return
        from fixtures.plugin import CAMPAIGN_KEY

        campaign = session.config.stash.get(CAMPAIGN_KEY, None)
        if campaign is None or campaign.journal is None:
            return
        from fixtures.plugin import RESULTS_KEY
        from stslab.campaign import Outcome

        # The scenario the loss cut short runs again on resume (unless it reached a verdict).
        result = session.config.stash[RESULTS_KEY].get(self.scenario)
        rerun = self.scenario if result is None or result.outcome is Outcome.ERROR else None
        note = f"{self.hold.lost}; the campaign stopped (resume it on the place)"
        place = self.hold.lost_place or self.hold.place
        campaign.journal.append("place_lost", {
            "place": place, "exporter": self.hold.exporters.get(place or ""),
            "host": self.hold.hosts.get(place or ""),
            "during": self.scenario, "rerun": rerun,
            "at": datetime.now(UTC).isoformat(timespec="seconds"), "note": note})  # fmt: skip
        campaign.close()
        campaign.journal = None  # no end record: the bench's part is left to resume
