"""A campaign's hold on its places: acquired (or reserved, then acquired) for the campaign,
their leases renewed and their exporters watched while it runs, released at the end whatever
happens.

A reserved campaign may take several matching places (one bench each, ``--benches N``).
labgrid's coordinator allocates one place per reservation (reservations of several filter
groups are not implemented in labgrid 26), so the campaign asks for N reservations at once,
which queue together; when the first is allocated, it takes the places allocated to it by
then and cancels the reservations still waiting. labgrid's scheduler hands a free place to
the oldest waiting reservation first: a place another campaign waited for longer is that
campaign's, never taken from it, and no campaign waits for more than one place.
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
                 say: Callable[[str], None] = print, ready_s: float = 15.0,
                 benches: int = 1) -> None:  # fmt: skip
        if (place is None) == (filters is None):
            raise ValueError("give a place or filters")
        if benches < 1 or (place is not None and benches != 1):
            raise ValueError("a named place is one bench; reserve up to N places with filters")
        self.address = address
        self.wanted = place
        self.filters = filters
        self.benches = benches
        self.accredited = accredited
        self.say = say
        self.ready_s = ready_s
        self.coordinator: Coordinator | None = None
        #: The places held, the first one first (the one the queue gave or the one named).
        self.places: list[str] = []
        #: Their reservations (one per place), and each place's exporter and its host.
        self.tokens: list[str] = []
        self.exporters: dict[str, str] = {}
        self.hosts: dict[str, str] = {}
        self._views: dict[str, PlaceView] = {}
        self.lost: str | None = None
        self.lost_place: str | None = None
        self.on_lost: Callable[[str], None] | None = None
        self._stop = threading.Event()
        self._watch: threading.Thread | None = None
        self._who = who_am_i()
        self._early: threading.Thread | None = None
        self._early_error: BaseException | None = None

    @property
    def place(self) -> str | None:
        return self.places[0] if self.places else None

    @property
    def token(self) -> str | None:
        return self.tokens[0] if self.tokens else None

    @property
    def exporter(self) -> str | None:
        return self.exporters.get(self.place or "")

    @property
    def host(self) -> str | None:
        return self.hosts.get(self.place or "")

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
            if self.filters is None:
                assert self.wanted is not None
                names = [self.wanted]
                self._gate(self.coordinator.place(self.wanted))
            else:
                names = self._wait_for_allocation()
                self._gate(self.coordinator.place(names[0]))
                usable = [k == 0 or self._may_take(n) for k, n in enumerate(names)]
                for token, ok in zip(self.tokens, usable, strict=True):
                    if not ok:
                        self.coordinator.cancel(token)
                names = [n for n, ok in zip(names, usable, strict=True) if ok]
                self.tokens = [t for t, ok in zip(self.tokens, usable, strict=True) if ok]
            for name in names:
                try:
                    self.coordinator.acquire(name)
                except LabError as exc:
                    if name == names[0]:
                        raise
                    # taken meanwhile by a campaign that named it (--place)
                    self.coordinator.cancel(self.tokens.pop(len(self.places)))
                    self.say(f"not taking place {name}: {exc}")
                    continue
                self.places.append(name)
            self._wait_ready()
            for name in self.places:
                view = self._views[name]
                self.exporters[name] = next(iter(view.exporters))
                self.hosts[name] = self._host(view)
        except BaseException:
            self.release()
            raise
        self._watch = threading.Thread(target=self._guard, name="place-lease", daemon=True)
        self._watch.start()
        for name in self.places:
            self.say(f"acquired place {name} (exporter {self.exporters[name]} on "
                     f"{self.hosts[name]})")  # fmt: skip
        return self

    def _wait_for_allocation(self) -> list[str]:
        """Reserve ``benches`` places matching the filters (one labgrid reservation each,
        asked for together so that they queue together) and wait until one is allocated;
        the places allocated by then are taken (the first reservation's first), the
        reservations still waiting are cancelled. Returns the places, ``tokens`` their
        reservations."""
        assert self.coordinator is not None and self.filters is not None
        views = self.coordinator.reserve(self.filters, self.benches)
        self.tokens = [r.token for r in views]
        first = views[0]
        wanted = " ".join(f"{k}={v}" for k, v in self.filters.items())
        shown = None
        while True:
            if self._stop.is_set():
                raise LabError(f"reservation {first.token} for {wanted} cancelled")
            if any(r.state in ("allocated", "acquired") and r.allocated for r in views):
                break
            if first.state in ("invalid", "expired"):
                raise LabError(f"reservation {first.token} for {wanted} is {first.state}")
            self.coordinator.sweep_stale()  # a place whose holder died frees itself here
            ahead = sum(1 for r in self.coordinator.reservations()
                        if r.state == "waiting" and r.created < first.created)  # fmt: skip
            text = f"waiting for a free place with {wanted} ({ahead} reservation(s) ahead)"
            if text != shown:
                self.say(text)
                shown = text
            self._await_allocation(set(self.tokens), 1.0)
            views = [self.coordinator.poll(t) for t in self.tokens]
            first = views[0]
        names, tokens = [], []
        for r in views:
            if r.state in ("allocated", "acquired") and r.allocated:
                names.append(r.allocated[0])
                tokens.append(r.token)
            else:
                self.coordinator.cancel(r.token)  # not free now: the next campaign's turn
        self.tokens = tokens
        return names

    def _await_allocation(self, tokens: set[str], within_s: float) -> None:
        """Wait up to ``within_s`` for the coordinator to tell (it pushes place updates to
        every client) that a place is allocated to one of ``tokens``, so the queue moves on
        as soon as a place is released, not at the next poll."""
        assert self.coordinator is not None
        deadline = time.monotonic() + within_s
        while not self._stop.wait(0.05) and time.monotonic() < deadline:
            if any(v.reservation in tokens for v in self.coordinator.places().values()):
                return

    def _may_take(self, name: str) -> bool:
        """Whether a further place allocated to the campaign is one it can use: its exporter
        publishes its bench and every device, and the gate lets it through."""
        assert self.coordinator is not None
        view = self.coordinator.place(name)
        try:
            if not published(view):
                raise LabError("its exporter publishes no bench, or a device is gone")
            self._gate(view)
        except LabError as exc:
            self.say(f"not taking place {name}: {exc}")
            return False
        return True

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

    def _wait_ready(self) -> None:
        """The places once every serial port has its ser2net port (started on acquire)."""
        assert self.coordinator is not None
        deadline = time.monotonic() + self.ready_s
        while True:
            views = self.coordinator.places()
            pending = [
                f"{name}/{n}"
                for name in self.places
                for n, (_e, cls, params, avail) in views[name].resources.items()
                if cls == "NetworkSerialPort" and not (avail and params.get("port"))
            ]
            if not pending:
                self._views = {name: views[name] for name in self.places}
                return
            if time.monotonic() > deadline:
                raise LabError(f"{', '.join(sorted(pending))}: the exporter did not start "
                               f"ser2net within {self.ready_s:g} s")  # fmt: skip
            time.sleep(0.02)

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

    def bench_document(self, directory: Path, place: str | None = None) -> dict[str, Any]:
        """The bench file (as data) for an acquired place (default: the first), with the
        place it came from."""
        name = place or self.place
        assert name is not None and name in self._views
        view = self._views[name]
        resources = {n: (cls, params) for n, (_e, cls, params, _a) in view.resources.items()}
        try:
            document = bench_from_place(name, resources, directory)
        except PlaceError as exc:
            raise LabError(str(exc)) from None
        document["name"] = name
        token = self.tokens[self.places.index(name)] if self.filters is not None else None
        document["place"] = {"name": name, "coordinator": self.address,
                             "exporter": self.exporters[name], "host": self.hosts[name],
                             "reservation": token}  # fmt: skip
        return document

    def write_bench_file(self, path: Path, place: str | None = None) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(self.bench_document(path.parent, place), sort_keys=False)
        path.write_text(f"# Written by stslab certify from labgrid place {place or self.place}."
                        f"\n{text}")  # fmt: skip
        return path

    # -- while the campaign runs ------------------------------------------------------------------

    def _guard(self) -> None:
        """Renew the leases; notice an exporter going away (or the coordinator)."""
        assert self.coordinator is not None and self.places
        renewed = -LEASE_S  # the lease starts at once, while the campaign opens
        while self.check() is None:
            if time.monotonic() - renewed > LEASE_S / 3:
                for name in self.places:
                    try:
                        self.coordinator.renew(name, self._who)
                    except LabError as exc:
                        self._lose(name, str(exc))
                        return
                renewed = time.monotonic()
            if self._stop.wait(POLL_S):
                return

    def check(self) -> str | None:
        """Why a place is lost (its exporter or the coordinator gone), or None."""
        if self.lost is not None or self.coordinator is None or not self._views:
            return self.lost
        try:
            if not self.coordinator.connected:
                self._lose(self.places[0], f"the coordinator {self.address} went away")
                return self.lost
            views = self.coordinator.places()
        except LabError as exc:
            self._lose(self.places[0], str(exc))
            return self.lost
        for name in self.places:
            now = views.get(name)
            up = {n for n, r in now.resources.items() if r[3]} if now is not None else set()
            gone = sorted(set(self._views[name].resources) - up)
            if gone:
                self._lose(name, f"exporter {self.exporters[name]} on {self.hosts[name]} "
                           f"disappeared ({', '.join(gone)} gone)")  # fmt: skip
                break
        return self.lost

    def confirm_lost(self, within_s: float) -> str | None:
        """After a device fault: whether the place is lost, given the coordinator up to
        ``within_s`` to hear that the exporter's connection dropped."""
        deadline = time.monotonic() + within_s
        while self.check() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.lost

    def _lose(self, place: str, why: str) -> None:
        if self.lost is not None:
            return
        self.lost = why
        self.lost_place = place
        if self.on_lost is not None:
            self.on_lost(why)

    # -- letting go -----------------------------------------------------------------------------

    def release(self) -> None:
        """Release the places and cancel the reservations; safe to call more than once."""
        self._stop.set()
        if self._early is not None and self._early is not threading.current_thread():
            self._early.join()
        if self._watch is not None and self._watch is not threading.current_thread():
            self._watch.join(5)
        coordinator = self.coordinator
        if coordinator is None:
            return
        try:
            for name in self.places if coordinator.connected else ():
                try:
                    coordinator.release(name, fromuser=coordinator.user)
                except LabError as exc:
                    self.say(f"could not release place {name}: {exc}")
            for token in self.tokens if coordinator.connected else ():
                coordinator.cancel(token)
        finally:
            self.tokens = []
            coordinator.close()
            self.coordinator = None

    def __enter__(self) -> PlaceHold:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def matches(view: PlaceView, filters: dict[str, str]) -> bool:
    """Whether a place's tags (and its name, as ``name``) match a reservation's filters, as
    labgrid's scheduler matches them."""
    tags = {**view.tags, "name": view.name}
    return all(tags.get(k) == v for k, v in filters.items())


def published(view: PlaceView) -> bool:
    """Whether an exporter publishes the place's bench and every resource is available."""
    return BENCH_RESOURCE in view.resources and all(r[3] for r in view.resources.values())
