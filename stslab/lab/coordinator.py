"""The labgrid coordinator, reached in-process through labgrid's client library.

labgrid's :class:`~labgrid.remote.client.ClientSession` keeps a live copy of every place and
resource; it runs on an asyncio loop in a thread of its own here, so a campaign keeps seeing
its place (an exporter that goes away) while it runs. Requests are the coordinator's gRPC
calls (acquire, release, tags, matches, reservations).

A place stays acquired when its client dies, so stslab holds a place with a *lease*: the
place's comment says who holds it and until when, renewed while the campaign runs. A place
whose lease ran out is released by the next stslab client that needs it, or by
``stslab lab release``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

DEFAULT_ADDRESS = "127.0.0.1:20408"
LEASE_S = 30.0
LEASE_RE = re.compile(r"^stslab lease (?P<who>\S+) until (?P<until>\d+)")


class LabError(Exception):
    """The coordinator cannot be reached, or refuses a request (the message says why)."""


def coordinator_address(option: str | None) -> str:
    """``--coordinator``, else labgrid's own ``LG_COORDINATOR``, else labgrid's default."""
    return option or os.environ.get("LG_COORDINATOR") or DEFAULT_ADDRESS


def lease_comment(who: str, until: float) -> str:
    return f"stslab lease {who} until {int(until)}"


def lease_expired(comment: str, now: float) -> bool | None:
    """True/False for an stslab lease comment, None for any other comment."""
    m = LEASE_RE.match(comment or "")
    return None if m is None else int(m["until"]) < now


@dataclass
class PlaceView:
    """A place as the coordinator last said it was."""

    name: str
    tags: dict[str, str]
    acquired: str | None
    comment: str
    reservation: str | None
    matches: list[str]
    resources: dict[str, tuple[str, str, dict[str, Any], bool]] = field(default_factory=dict)
    #: resource name -> (exporter, class, parameters, available)

    @property
    def exporters(self) -> set[str]:
        return {r[0] for r in self.resources.values()}


@dataclass
class ReservationView:
    token: str
    owner: str
    state: str
    filters: dict[str, str]
    allocated: list[str]
    created: float


class Coordinator:
    """A connection to the coordinator, usable from any thread; close it when done."""

    def __init__(self, address: str, timeout_s: float = 10.0) -> None:
        _quiet_labgrid_client()
        self.address = address
        self.timeout_s = timeout_s
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.session: Any = None
        self._thread = threading.Thread(target=self._run, name="labgrid-client", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise LabError(f"coordinator {address}: no answer within {timeout_s:g} s")
        if self._error is not None:
            raise LabError(f"coordinator {address}: {self._error}") from None

    # -- the loop -------------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            self.session = loop.run_until_complete(
                asyncio.wait_for(self._start(loop), self.timeout_s)
            )
        except BaseException as exc:  # reported to the constructor's caller
            refused = type(exc).__name__ == "ServerError" or not str(exc)
            self._error = LabError("cannot connect (is labgrid-coordinator running there?)"
                                   if refused else str(exc))  # fmt: skip
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        loop.run_forever()
        loop.close()

    async def _start(self, loop: asyncio.AbstractEventLoop) -> Any:
        from labgrid.remote.client import ClientSession

        # labgrid's own default port when the address names none
        address = self.address if ":" in self.address else f"{self.address}:20408"
        session = ClientSession(address, loop)
        await session.start()
        return session

    def _call(self, make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(make(), self._loop)
        try:
            return future.result(self.timeout_s)
        except TimeoutError:
            future.cancel()
            raise LabError(f"coordinator {self.address}: no answer within "
                           f"{self.timeout_s:g} s") from None  # fmt: skip

    async def _request(self, method: str, request: Any) -> Any:
        import grpc

        if self.session.stopping.is_set():
            raise LabError(f"coordinator {self.address}: the connection is lost")
        try:
            response = await getattr(self.session.stub, method)(request)
            await self.session.sync_with_coordinator()
        except grpc.aio.AioRpcError as exc:
            raise LabError(exc.details()) from None
        return response

    def close(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if self.session is not None:

            async def stop() -> None:
                await self.session.stop()
                await self.session.close()

            with contextlib.suppress(Exception):  # closing: the coordinator may already be gone
                self._call(stop)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(5)

    def __enter__(self) -> Coordinator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.session is not None and not self.session.stopping.is_set()

    @property
    def user(self) -> str:
        return f"{self.session.gethostname()}/{self.session.getuser()}"

    def places(self) -> dict[str, PlaceView]:
        async def snapshot() -> dict[str, PlaceView]:
            return self._views()

        return self._call(snapshot)

    def _views(self) -> dict[str, PlaceView]:
        out = {}
        resources = self.session.resources
        for name, place in self.session.places.items():
            view = PlaceView(name, dict(place.tags), place.acquired, place.comment or "",
                             place.reservation, [repr(m) for m in place.matches])  # fmt: skip
            for exporter, groups in resources.items():
                for group_name, group in groups.items():
                    for res_name, res in group.items():
                        if not res.data or "cls" not in res.data:
                            continue
                        if place.hasmatch((exporter, group_name, res.cls, res_name)):
                            params = {k: v for k, v in res.params.items() if k != "extra"}
                            view.resources[res_name] = (exporter, res.cls, params, res.avail)
            out[name] = view
        return out

    def place(self, name: str) -> PlaceView:
        places = self.places()
        if name not in places:
            known = ", ".join(sorted(places)) or "none"
            raise LabError(f"no place named {name!r} on {self.address} (places: {known})")
        return places[name]

    # -- places -------------------------------------------------------------------------------

    def ensure_place(self, name: str, matches: list[str], tags: dict[str, str]) -> None:
        """Create the place if it is new; add the matches it lacks; set its tags."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        places = self.places()
        if name not in places:
            self._call(lambda: self._request("AddPlace", pb.AddPlaceRequest(name=name)))
            places = self.places()
        for pattern in matches:
            if pattern not in places[name].matches:
                req = pb.AddPlaceMatchRequest(placename=name, pattern=pattern)
                self._call(lambda req=req: self._request("AddPlaceMatch", req))
        req = pb.SetPlaceTagsRequest(placename=name, tags=tags)
        self._call(lambda: self._request("SetPlaceTags", req))

    def acquire(self, name: str) -> None:
        """Acquire the place (a stale stslab lease on it is released first); the caller
        starts the lease with :meth:`renew`."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        self.sweep_stale([name])
        req = pb.AcquirePlaceRequest(placename=name)
        self._call(lambda: self._request("AcquirePlace", req))

    def renew(self, name: str, who: str, lease_s: float = LEASE_S) -> None:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        req = pb.SetPlaceCommentRequest(
            placename=name, comment=lease_comment(who, time.time() + lease_s)
        )
        self._call(lambda: self._request("SetPlaceComment", req))

    def release(self, name: str, fromuser: str | None = None) -> None:
        """Release the place (``fromuser``: only if that user holds it) and end its lease."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        req = pb.ReleasePlaceRequest(placename=name)
        if fromuser is not None:
            req.fromuser = fromuser
        self._call(lambda: self._request("ReleasePlace", req))
        comment = pb.SetPlaceCommentRequest(placename=name, comment="")
        self._call(lambda: self._request("SetPlaceComment", comment))

    def sweep_stale(self, names: list[str] | None = None) -> list[str]:
        """Release places held under an stslab lease that ran out (their client died)."""
        now = time.time()
        swept = []
        for view in self.places().values():
            if names is not None and view.name not in names:
                continue
            if view.acquired and lease_expired(view.comment, now):
                self.release(view.name, fromuser=view.acquired)
                if view.reservation:
                    self.cancel(view.reservation)
                swept.append(view.name)
        return swept

    # -- reservations ---------------------------------------------------------------------------

    def reserve(self, filters: dict[str, str], count: int = 1) -> list[ReservationView]:
        """``count`` reservations of one place each matching ``filters``, asked for at once so
        that they queue together, as the coordinator's scheduler left them (allocated at
        once when places are free and nobody older waits)."""
        import grpc
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        req = pb.CreateReservationRequest(filters={"main": pb.Reservation.Filter(filter=filters)})

        async def create() -> list[Any]:
            if self.session.stopping.is_set():
                raise LabError(f"coordinator {self.address}: the connection is lost")
            calls = [self.session.stub.CreateReservation(req) for _ in range(count)]
            answers = await asyncio.gather(*calls, return_exceptions=True)
            made = [a.reservation for a in answers if not isinstance(a, BaseException)]
            failed = [a for a in answers if isinstance(a, BaseException)]
            if failed:  # the same request for each: none is kept when one is refused
                for res in made:
                    cancel = pb.CancelReservationRequest(token=res.token)
                    with contextlib.suppress(grpc.aio.AioRpcError):
                        await self.session.stub.CancelReservation(cancel)
                error = failed[0]
                raise LabError(error.details() if isinstance(error, grpc.aio.AioRpcError)
                               else str(error)) from None  # fmt: skip
            await self.session.sync_with_coordinator()
            return made

        return [_reservation(r) for r in self._call(create)]

    def poll(self, token: str) -> ReservationView:
        """The reservation's state (polling keeps a waiting reservation alive)."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        req = pb.PollReservationRequest(token=token)
        response = self._call(lambda: self._request("PollReservation", req))
        return _reservation(response.reservation)

    def cancel(self, token: str) -> None:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        req = pb.CancelReservationRequest(token=token)
        with contextlib.suppress(LabError):  # already gone: expired, or cancelled by a sweep
            self._call(lambda: self._request("CancelReservation", req))

    def reservations(self) -> list[ReservationView]:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        response = self._call(lambda: self._request("GetReservations", pb.GetReservationsRequest()))
        out = [_reservation(r) for r in response.reservations]
        return sorted(out, key=lambda r: r.created)


def _quiet_labgrid_client() -> None:
    """labgrid's client logs a lost coordinator on the root logger, which Python prints when
    nothing is configured; the caller gets it as a LabError instead, once."""
    if not any(isinstance(f, _LabgridClientLog) for f in logging.lastResort.filters):
        logging.lastResort.addFilter(_LabgridClientLog())


class _LabgridClientLog(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return f"{os.sep}labgrid{os.sep}remote{os.sep}" not in record.pathname


def _reservation(pb2: Any) -> ReservationView:
    from labgrid.remote.common import Reservation

    res = Reservation.from_pb2(pb2)
    allocated = [name for group in res.allocations.values() for name in group]
    return ReservationView(res.token, res.owner, res.state.name, dict(res.filters.get("main", {})),
                           allocated, res.created)  # fmt: skip


def who_am_i() -> str:
    """The lease holder's name: host and process (the campaign that holds the place)."""
    return f"{socket.gethostname()}:{os.getpid()}"
