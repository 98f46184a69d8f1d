"""A campaign's hold on a place: acquired (or reserved, then acquired) for the campaign,
its lease renewed and its exporter watched while it runs, released at the end whatever
happens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from stslab.lab.coordinator import LEASE_S, Coordinator, LabError, PlaceView, who_am_i
from stslab.lab.place import BENCH_RESOURCE, PlaceError, bench_from_place, calibration_problems

POLL_S = 0.5


def parse_filters(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs (``--reserve``) as a filter; a malformed pair is a LabError."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise LabError(f"{pair!r} is not KEY=VALUE")
        out[key] = value
    return out


class PlaceHold:
    """Hold one place for one campaign. ``place``: its name; or ``filters``: reserve any free
    place whose tags match. ``say``: prints what the hold is doing (waiting, acquired)."""

    def __init__(self, address: str, *, place: str | None = None,
                 filters: dict[str, str] | None = None, accredited: bool = False,
                 say: Callable[[str], None] = print, ready_s: float = 15.0) -> None:  # fmt: skip
        if (place is None) == (filters is None):
            raise ValueError("give a place or filters")
        self.address = address
        self.wanted = place
        self.filters = filters
        self.accredited = accredited
        self.say = say
        self.ready_s = ready_s
        self.coordinator: Coordinator | None = None
        self.place: str | None = None
        self.token: str | None = None
        self.exporter: str | None = None
        self.host: str | None = None
        self.lost: str | None = None
        self.on_lost: Callable[[str], None] | None = None
        self._acquired = False
        self._stop = threading.Event()
        self._watch: threading.Thread | None = None
        self._who = who_am_i()
        self._early: threading.Thread | None = None
        self._early_error: BaseException | None = None

    # -- taking the place -------------------------------------------------------------------

    def acquire_early(self) -> PlaceHold:
        """Start taking the place in the background (labgrid's import, the first sync, the
        acquisition and ser2net's start take seconds) while the caller checks its inputs;
        :meth:`acquire` then waits for it. A caller that gives up calls :meth:`release`."""
        self._early = threading.Thread(target=self._acquire_in_background,
                                       name="place-acquire", daemon=True)  # fmt: skip
        self._early.start()
        return self

    def _acquire_in_background(self) -> None:
        try:
            self._take()
        except BaseException as exc:  # handed to the caller by acquire()
            self._early_error = exc

    def acquire(self) -> PlaceHold:
        """Take the place (or wait for the one begun by :meth:`acquire_early`)."""
        if self._early is None:
            return self._take()
        self._early.join()
        if self._early_error is not None:
            raise self._early_error
        return self

    def _take(self) -> PlaceHold:
        self.coordinator = Coordinator(self.address)
        try:
            name = self.wanted if self.filters is None else self._wait_for_allocation()
            view = self.coordinator.place(name)
            self._gate(view)
            self.coordinator.acquire(name)
            self.place = name
            self._acquired = True
            self._view = self._wait_ready()
            self.exporter = next(iter(self._view.exporters))
            self.host = self._host(self._view)
        except BaseException:
            self.release()
            raise
        self._watch = threading.Thread(target=self._guard, name="place-lease", daemon=True)
        self._watch.start()
        self.say(f"acquired place {name} (exporter {self.exporter} on {self.host})")
        return self

    def _wait_for_allocation(self) -> str:
        assert self.coordinator is not None and self.filters is not None
        self.token = self.coordinator.reserve(self.filters)
        wanted = " ".join(f"{k}={v}" for k, v in self.filters.items())
        shown = None
        while True:
            if self._stop.is_set():
                raise LabError(f"reservation {self.token} for {wanted} cancelled")
            res = self.coordinator.poll(self.token)
            if res.state in ("allocated", "acquired") and res.allocated:
                return res.allocated[0]
            if res.state in ("invalid", "expired"):
                raise LabError(f"reservation {self.token} for {wanted} is {res.state}")
            self.coordinator.sweep_stale()  # a place whose holder died frees itself here
            ahead = sum(1 for r in self.coordinator.reservations()
                        if r.state == "waiting" and r.created < res.created)  # fmt: skip
            text = f"waiting for a free place with {wanted} ({ahead} campaign(s) ahead)"
            if text != shown:
                self.say(text)
                shown = text
            self._stop.wait(1.0)

    def _gate(self, view: PlaceView) -> None:
        """Refuse, before anything is acquired, a place that publishes no bench, and in
        accredited mode one whose instruments are out of calibration."""
        if BENCH_RESOURCE not in view.resources:
            raise LabError(f"place {view.name}: no exporter publishes its bench (is "
                           "stslab lab export running for it?)")  # fmt: skip
        if self.accredited:
            import json

            document = json.loads(view.resources[BENCH_RESOURCE][2]["bench"])
            problems = calibration_problems(document, date.today())
            if document.get("simulated"):
                problems.insert(0, "a SimLab bench, not a real one")
            if problems:
                raise LabError(f"accredited mode refuses place {view.name}: "
                               + "; ".join(problems))  # fmt: skip

    def _wait_ready(self) -> PlaceView:
        """The place once every serial port has its ser2net port (started on acquire)."""
        assert self.coordinator is not None
        deadline = time.monotonic() + self.ready_s
        while True:
            view = self.coordinator.place(self.place or "")
            pending = [
                n
                for n, (_e, cls, params, avail) in view.resources.items()
                if cls == "NetworkSerialPort" and not (avail and params.get("port"))
            ]
            if not pending:
                return view
            if time.monotonic() > deadline:
                raise LabError(f"place {view.name}: {', '.join(sorted(pending))}: the exporter "
                               f"did not start ser2net within {self.ready_s:g} s")  # fmt: skip
            time.sleep(0.1)

    @staticmethod
    def _host(view: PlaceView) -> str:
        for _e, cls, params, _a in view.resources.values():
            if cls == "NetworkSerialPort":
                return str(params["host"])
        for _e, cls, params, _a in view.resources.values():
            if cls in ("PyVISADevice", "HTTPVideoStream"):
                from urllib.parse import urlsplit

                url = params.get("url", "")
                return (urlsplit(url).hostname if "://" in url else url.split("::")[0]) or "?"
        return "?"

    # -- the bench ------------------------------------------------------------------------------

    def bench_document(self, directory: Path) -> dict[str, Any]:
        """The bench file (as data) for the acquired place, with the place it came from."""
        assert self.place is not None and self.exporter is not None
        resources = {n: (cls, params) for n, (_e, cls, params, _a) in self._view.resources.items()}
        try:
            document = bench_from_place(self.place, resources, directory)
        except PlaceError as exc:
            raise LabError(str(exc)) from None
        document["name"] = self.place
        document["place"] = {"name": self.place, "coordinator": self.address,
                             "exporter": self.exporter, "host": self.host or "?",
                             "reservation": self.token}  # fmt: skip
        return document

    def write_bench_file(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(self.bench_document(path.parent), sort_keys=False)
        path.write_text(f"# Written by stslab certify from labgrid place {self.place}.\n{text}")
        return path

    # -- while the campaign runs ------------------------------------------------------------------

    def _guard(self) -> None:
        """Renew the lease; notice the exporter going away (or the coordinator)."""
        assert self.coordinator is not None and self.place is not None
        renewed = -LEASE_S  # the lease starts at once, while the campaign opens
        while self.check() is None:
            if time.monotonic() - renewed > LEASE_S / 3:
                try:
                    self.coordinator.renew(self.place, self._who)
                except LabError as exc:
                    self._lose(str(exc))
                    return
                renewed = time.monotonic()
            if self._stop.wait(POLL_S):
                return

    def check(self) -> str | None:
        """Why the place is lost (its exporter or the coordinator gone), or None."""
        if self.lost is not None or self.coordinator is None or self.place is None:
            return self.lost
        try:
            if not self.coordinator.connected:
                self._lose(f"the coordinator {self.address} went away")
                return self.lost
            view = self.coordinator.place(self.place)
        except LabError as exc:
            self._lose(str(exc))
            return self.lost
        gone = sorted(set(self._view.resources) - {n for n, r in view.resources.items() if r[3]})
        if gone:
            self._lose(f"exporter {self.exporter} on {self.host} disappeared "
                       f"({', '.join(gone)} gone)")  # fmt: skip
        return self.lost

    def confirm_lost(self, within_s: float) -> str | None:
        """After a device fault: whether the place is lost, given the coordinator up to
        ``within_s`` to hear that the exporter's connection dropped."""
        deadline = time.monotonic() + within_s
        while self.check() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.lost

    def _lose(self, why: str) -> None:
        if self.lost is not None:
            return
        self.lost = why
        if self.on_lost is not None:
            self.on_lost(why)

    # -- letting go -----------------------------------------------------------------------------

    def release(self) -> None:
        """Release the place and cancel the reservation; safe to call more than once."""
        self._stop.set()
        if self._early is not None and self._early is not threading.current_thread():
            self._early.join()
        if self._watch is not None and self._watch is not threading.current_thread():
            self._watch.join(5)
        coordinator = self.coordinator
        if coordinator is None:
            return
        try:
            if self._acquired and self.place is not None and coordinator.connected:
                try:
                    coordinator.release(self.place, fromuser=coordinator.user)
                except LabError as exc:
                    self.say(f"could not release place {self.place}: {exc}")
            if self.token is not None and coordinator.connected:
                coordinator.cancel(self.token)
        finally:
            self._acquired = False
            self.token = None
            coordinator.close()
            self.coordinator = None

    def __enter__(self) -> PlaceHold:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
