"""A magnetic card writer speaking the MSR605 (MSR206-compatible) ESC command set on a pty.

Served at 9600 8N1. Commands (from the MSR605/MSR206 programmer's manuals, ISO mode):

==================  ======================================================================
``ESC a``           reset: drops a half-received command; no reply (also works mid-block)
``ESC e``           communication test -> ``ESC y``
``ESC v``           firmware -> ``ESC REVU1.00`` (8 characters, ``REV?X.XX``)
``ESC t``           model -> ``ESC 3 S`` (three tracks)
``ESC w <block>``   write ISO -> ``ESC <status>``
``ESC r``           read ISO -> ``ESC s ESC 01 <t1> ESC 02 <t2> ESC 03 <t3> ? FS ESC <status>``
``ESC x``/``ESC y`` set hi-co / lo-co -> ``ESC 0``
``ESC d``           coercivity -> ``ESC h`` (hi-co) / ``ESC l`` (lo-co); real units answer in
                    lower case whatever the manual's table says
``ESC 81``..``85``  LEDs all off / all on / green / yellow / red: no reply
``ESC 86``/``87``   sensor test / RAM test -> ``ESC 0`` (a card is always at hand)
anything else       ``ESC 4`` (invalid command); raw read/write, erase, BPI, BPC and
                    leading-zero commands are not covered and answer this too
==================  ======================================================================

Write data block: ``ESC s`` then, per track in increasing order, ``ESC 01|02|03`` and its
data characters (binary track numbers 0x01-0x03, as in the manual's hex examples), ended by
``? FS``. The data carries no sentinels: the writer adds them (``%``/``?`` on track 1,
``;``/``?`` on tracks 2 and 3). A read returns each written track framed by its sentinels
and an unwritten track as its ``ESC 0n`` marker alone, then ``? FS ESC <status>``.

Status bytes: ``0`` ok; ``1`` read/write error (a swipe failed — injected with
:meth:`CardWriter.fail_next_swipe` — or a read found nothing on the card); ``2`` command
format error (a malformed block, no track with data, a character outside the track's set, a
track longer than its capacity); ``4`` invalid command; ``9`` invalid card swipe in write
mode (injected).

Track sets (ISO/IEC 7811-2): track 1 alphanumeric, 6-bit, characters 0x20-0x5F; tracks 2 and
3 numeric, 4-bit, ``0-9 : < = >``; the sentinels themselves cannot be data. Capacity (ISO/IEC
7813, ISO 4909): 79 / 40 / 107 characters *including* start sentinel, end sentinel and LRC,
so at most 76 / 37 / 104 data characters.

The writer holds the card it wrote "in the slot" until :meth:`CardWriter.take_card`; each
write encodes a fresh card carrying exactly the tracks the block gave. :class:`CardPresenter`
moves that card into the meter's card reader: an operator prompt on a real bench, automatic
in SimLab.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator
from enum import Enum, IntEnum

from dut.card import SENTINELS, TRACK_CAPACITY, iso_track_problem
from simlab.faults import TransportFaults
from simlab.meter_io import MeterCardReader
from simlab.pty import PtyDevice

log = logging.getLogger(__name__)

ESC, FS = 0x1B, 0x1C
LINE_SPEED = 9600
_LEDS = {0x82: ("green", "yellow", "red"), 0x83: ("green",), 0x84: ("yellow",), 0x85: ("red",)}
_MAX_TRACK_BYTES = 255


class _Reset(Enum):
    """ESC a arrived inside a command."""

    RESET = 0


_RESET = _Reset.RESET


class Status(IntEnum):
    """MSR605 status bytes (sent as ``ESC <status>``)."""

    OK = 0x30
    READ_WRITE_ERROR = 0x31
    COMMAND_FORMAT_ERROR = 0x32
    INVALID_COMMAND = 0x34
    INVALID_SWIPE = 0x39


class CardWriter(PtyDevice):
    """An MSR605 on a pty, holding the last card it wrote."""

    def __init__(
        self,
        *,
        model: str = "3",
        firmware: str = "REVU1.00",
        link: str | None = None,
        faults: TransportFaults | None = None,
        on_card_written: Callable[[], None] | None = None,
    ) -> None:
        self._model = model.encode("ascii")
        self._firmware = firmware.encode("ascii")
        self.on_card_written = on_card_written
        self._lock = threading.Lock()  # guards the card and the injected failure
        self._card: dict[int, str] | None = None
        self._failure: Status | None = None
        self._hi_co = True
        self._leds: frozenset[str] = frozenset()
        self._parser = self._new_parser()
        super().__init__(name="msr605", baudrate=LINE_SPEED, link=link, faults=faults)

    @property
    def hi_co(self) -> bool:
        """Whether writes are set for high-coercivity cards."""
        return self._hi_co

    @property
    def leds(self) -> frozenset[str]:
        """LEDs the host switched on ("green", "yellow", "red")."""
        return self._leds

    def take_card(self) -> dict[int, str] | None:
        """Remove the card from the slot: its tracks (data without sentinels), or None."""
        with self._lock:
            card, self._card = self._card, None
        return card

    def fail_next_swipe(self, status: Status) -> None:
        """Make the next read or write fail: READ_WRITE_ERROR or INVALID_SWIPE (write only;
        a read reports it as a read error)."""
        if status not in (Status.READ_WRITE_ERROR, Status.INVALID_SWIPE):
            raise ValueError(f"{status!r} is not a swipe failure")
        with self._lock:
            self._failure = status

    # -- protocol (reader thread) -----------------------------------------------------------

    def _on_bytes(self, data: bytes) -> None:
        for byte in data:
            try:
                self._parser.send(byte)
            except Exception:
                log.exception("card writer command failed")
                self._parser = self._new_parser()

    def _on_hangup(self) -> None:
        self._parser = self._new_parser()

    def _new_parser(self) -> Generator[None, int, None]:
        parser = self._session()
        next(parser)
        return parser

    def _session(self) -> Generator[None, int, None]:
        while True:
            if (yield) != ESC:
                continue  # line noise between commands
            command = yield
            if command == ord("a"):
                continue
            if command == ord("w"):
                block = yield from self._data_block()
                if block is not _RESET:
                    self._write(block)
            else:
                self._simple(command)

    def _data_block(self) -> Generator[None, int, dict[int, str] | Status | _Reset]:
        """Receive ``ESC s (ESC n data)* ? FS``: the tracks, a format error, or _RESET."""
        tracks: dict[int, bytearray] = {}
        current = 0
        byte = yield
        if byte != ESC:
            return (yield from _skip_block(byte))
        byte = yield
        if byte == ord("a"):
            return _RESET
        if byte != ord("s"):
            return (yield from _skip_block(byte))
        while True:
            byte = yield
            if byte == ESC:
                track = yield
                if track == ord("a"):
                    return _RESET
                if track not in TRACK_CAPACITY or track <= current:
                    return (yield from _skip_block(track))
                current = track
                tracks[track] = bytearray()
            elif byte == ord("?"):
                byte = yield
                if byte == FS:
                    return {n: data.decode("latin-1") for n, data in tracks.items()}
                return (yield from _skip_block(byte))
            elif byte == FS:
                return Status.COMMAND_FORMAT_ERROR
            elif not current or len(tracks[current]) >= _MAX_TRACK_BYTES:
                return (yield from _skip_block(byte))
            else:
                tracks[current].append(byte)

    def _simple(self, command: int) -> None:
        if command == ord("e"):
            self._reply(b"y")
        elif command == ord("v"):
            self._reply(self._firmware)
        elif command == ord("t"):
            self._reply(self._model + b"S")
        elif command == ord("r"):
            self._read()
        elif command in (ord("x"), ord("y")):
            self._hi_co = command == ord("x")
            self._reply(bytes([Status.OK]))
        elif command == ord("d"):
            self._reply(b"h" if self._hi_co else b"l")
        elif command == 0x81:
            self._leds = frozenset()
        elif command in _LEDS:
            self._leds = self._leds | set(_LEDS[command])
        elif command in (0x86, 0x87):
            self._reply(bytes([Status.OK]))
        else:
            self._reply(bytes([Status.INVALID_COMMAND]))

    def _write(self, block: dict[int, str] | Status) -> None:
        if isinstance(block, Status):
            self._reply(bytes([block]))
            return
        card = {track: data for track, data in block.items() if data}
        if not card or any(iso_track_problem(track, data) for track, data in card.items()):
            self._reply(bytes([Status.COMMAND_FORMAT_ERROR]))
            return
        with self._lock:
            failure, self._failure = self._failure, None
            if failure is None:
                self._card = card
        self._reply(bytes([failure or Status.OK]))
        if failure is None and self.on_card_written is not None:
            self.on_card_written()

    def _read(self) -> None:
        with self._lock:
            failure, self._failure = self._failure, None
            card = None if failure else self._card
        out = bytearray(b"\x1bs")
        for track in TRACK_CAPACITY:
            out += bytes([ESC, track])
            data = (card or {}).get(track)
            if data:
                start, end = SENTINELS[track]
                out += (start + data + end).encode("ascii")
        status = Status.OK if card else Status.READ_WRITE_ERROR
        out += bytes([ord("?"), FS, ESC, status])
        self._endpoint.write(bytes(out))

    def _reply(self, payload: bytes) -> None:
        self._endpoint.write(bytes([ESC]) + payload)


def _skip_block(byte: int | None = None) -> Generator[None, int, Status | _Reset]:
    """Discard the rest of a malformed block, up to its FS; ESC a still resets."""
    previous = None
    while byte != FS:
        if previous == ESC and byte == ord("a"):
            return _RESET
        previous, byte = byte, (yield)
    return Status.COMMAND_FORMAT_ERROR


class CardPresenter:
    """Moves the written card from the writer's slot into the meter's card reader.

    On a real bench an operator does this when prompted; in SimLab, with ``automatic``, it
    happens after every successful write.
    """

    def __init__(
        self, writer: CardWriter, reader: MeterCardReader, *, automatic: bool = True
    ) -> None:
        self._writer = writer
        self._reader = reader
        if automatic:
            writer.on_card_written = self.present

    def present(self) -> bool:
        """Insert the card in the writer's slot into the meter; False when the slot is empty."""
        card = self._writer.take_card()
        if card is None:
            return False
        self._reader.insert_card(card)
        return True
