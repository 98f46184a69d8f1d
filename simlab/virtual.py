"""SimLab on virtual time: the same meter, plant and instruments, in process, event to event.

:class:`VirtualBench` builds what :class:`simlab.bench.SimBench` builds (the meter of a DUT
profile, optionally a firmware model or defects, the plant, the simulated power analyser, AC
source and AC load) but serves no transport and runs no thread. Time is a
:class:`~simlab.clock.VirtualClock`: it stands still while the harness works and, whenever
the harness waits, jumps from one of the meter's events to the next (credit reaching zero, a
trip delay ending, a message or test display ending, a lockout ending).

Each role is reached the way a real device is, by its address (``virtual://<bench>/<role>``)
through a registered driver that implements the role's protocol (:mod:`instruments.roles`):

* ``virtual-keypad``: presses keys on the meter's keypad with the declared hold and gap;
* ``virtual-port``: the meter's IEC 62056-21 readout and programming-mode token write,
  taking the time the standard's line speeds take;
* ``virtual-card`` / ``virtual-presenter``: a card written with the profile's layout and
  presented to the meter's card reader;
* ``virtual-camera``: renders the LCD as SimLab's camera does and reads it with the
  harness's own segment decoder (:class:`instruments.display.SegmentDecoder`) through the
  calibrated segment map. A camera taking a frame every :data:`FRAME_INTERVAL_S` accepts a
  display that stays for ``consecutive`` frames, so it sees every message and test display
  and not the digits flicking past while a token is typed;
* ``virtual-wt300``, ``virtual-chroma61500``, ``virtual-chroma63800``: the harness's own SCPI
  drivers, talking SCPI to SimLab's instrument models in process instead of over TCP.

No real-time floor applies: a message, a lockout or the load switch test lasts exactly its
declared time.

Transport faults (:mod:`simlab.faults`, ``bench.fault(role)``) are modelled at the size of
each reply a wire device sends: a silent device lets the driver's timeout pass in virtual
time, a vanished one is gone, a delay passes before the reply, and garbled or dropped bytes
spoil a reply with the probability its length gives them. The keypad's events are replies
too, so a press sequence can break after some keys, as a robot's line can; the SCPI
instruments' replies go to their drivers with the bytes spoilt.
"""

from __future__ import annotations

import bisect
import io
import itertools
import shutil
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Any

from pyvisa import constants
from pyvisa.errors import VisaIOError

from dut.card import iso_track_problem
from dut.profile import MeterProfile
from instruments.base import (
    Driver,
    Identity,
    InstrumentError,
    InstrumentGone,
    InstrumentTimeout,
    ProtocolViolation,
    register,
)
from instruments.display import SegmentDecoder
from instruments.keypad import CommandRefused
from instruments.roles import DisplayReading, KeyEvent, Reading
from instruments.scpi.analyzer import Wt300Analyzer
from instruments.scpi.load import Chroma63800Load
from instruments.scpi.source import Chroma61500Source
from instruments.segment_map import SegmentMap
from simlab.bench import ROLES, SimulatedBench
from simlab.clock import VirtualClock
from simlab.faults import TransportFaults
from simlab.lcd import NOISE_LEVELS, DisplayState, frame_geometry, render
from simlab.meter import SimMeter, create_meter, load_model
from simlab.meter_io import WriteStatus
from simlab.optical_port import MODE_C_BAUD, SIGN_ON_BAUD
from simlab.scpi.chroma_61500 import Chroma61500
from simlab.scpi.chroma_63800 import Chroma63800
from simlab.scpi.server import ScpiInstrument
from simlab.scpi.yokogawa_wt310 import YokogawaWT310

SCHEME = "virtual://"
#: The virtual camera's frame interval (a 10 frames/s machine-vision camera).
FRAME_INTERVAL_S = 0.1
#: IEC 62056-21: the meter's reaction time before it answers a request (tr, 200 ms typical).
PORT_REACTION_S = 0.2
#: The automatic presenter's time to move a written card into the meter's reader.
CARD_PRESENT_S = 0.5
_BITS_PER_CHAR = 10  # 7E1 with start and stop bit
#: Bytes of the replies the wire devices send (what a transport fault can spoil).
EVENT_LINE_BYTES = 32  # a key's EVT DOWN and EVT UP lines
SHORT_REPLY_BYTES = 24  # an OK line, an ACK, a status byte pair, an IDN reply
FRAME_BYTES = 4000  # a camera frame (PNG of the LCD)

#: Role -> registry name of the driver that reaches the role on a virtual bench.
DRIVERS = {
    "keypad": "virtual-keypad",
    "port": "virtual-port",
    "card": "virtual-card",
    "presenter": "virtual-presenter",
    "display": "virtual-camera",
    "analyzer": "virtual-wt300",
    "source": "virtual-chroma61500",
    "load": "virtual-chroma63800",
}

_BENCHES: dict[str, VirtualBench] = {}
_BENCHES_LOCK = threading.Lock()
_IDS = itertools.count(1)


class VirtualBench(SimulatedBench):
    """A SimLab bench on virtual time. Same arguments as :class:`simlab.bench.SimBench`,
    without a clock speed."""

    bench_name = "SimLab on virtual time"
    drivers = DRIVERS
    file_header = "# SimLab on virtual time (in process).\n"

    def __init__(
        self,
        profile: MeterProfile | None = None,
        *,
        defects: tuple[str, ...] | list[str] = (),
        model: type[SimMeter] | str | None = None,
        noise: str = "none",
        seed: int | None = None,
        supply_v: float = 230.0,
        workdir: str | Path | None = None,
    ) -> None:
        if noise not in NOISE_LEVELS:
            raise ValueError(f"unknown noise preset {noise!r} (known: {', '.join(NOISE_LEVELS)})")
        self.profile = profile or MeterProfile.builtin("default")
        self.defects = tuple(defects)
        self.model = load_model(model) if isinstance(model, str) else model
        self.noise = noise
        self.seed = 1 if seed is None else seed
        self.supply_v = supply_v
        self.speed = 1.0
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else None
        self.id = ""
        self._started = False
        self.slot: dict[int, str] | None = None  # the card the writer holds for the presenter
        self.faults: dict[str, TransportFaults] = {
            role: TransportFaults(seed=self.seed) for role in ROLES if role != "presenter"
        }

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> VirtualBench:
        if self._started:
            return self
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="stslab-virtual-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.clock = VirtualClock()
        self.plant = self._powered_plant()
        # No worker thread: the clock drives the meter (SimMeter.advance).
        self.meter = create_meter(self.profile, self.plant, model=self.model, defects=self.defects)
        self.instruments: dict[str, ScpiInstrument] = {
            "analyzer": YokogawaWT310(self.plant, serial="SIM91K0001"),
            "source": Chroma61500(self.plant),
            "load": Chroma63800(self.plant),
        }
        self._times: list[float] = []
        self._shown: list[DisplayState] = []
        self.clock.bind(self._step)
        level = NOISE_LEVELS[self.noise]
        self.geometry = frame_geometry(self.meter.layout, level.skew, self.seed)
        frame_layout = self.meter.layout.warped(self.geometry) if level.skew else self.meter.layout
        self.segment_map_path = self.workdir / "display-map.yaml"
        self.segment_map_path.write_text(
            frame_layout.to_yaml("# segment map of SimLab's virtual camera view (calibrated)\n")
        )
        with _BENCHES_LOCK:
            self.id = f"bench{next(_IDS)}"
            _BENCHES[self.id] = self
        self._started = True
        self.settle()
        return self

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        with _BENCHES_LOCK:
            _BENCHES.pop(self.id, None)
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    # -- time -----------------------------------------------------------------------------

    def _step(self, t: float) -> float | None:
        due, state = self.meter.advance(t)
        if not self._shown or self._shown[-1] != state:
            self._times.append(t)
            self._shown.append(state)
        return due

    def settle(self) -> None:
        """Let the meter react to what was just done to it (no time passes)."""
        self.clock.advance_to(self.clock.now())

    def shown(self, since: float) -> list[tuple[float, DisplayState]]:
        """Every display state since ``since``, with the time it appeared: the first is the
        one on show at ``since`` (it may have appeared before)."""
        self.settle()
        i = max(0, bisect.bisect_right(self._times, since) - 1)
        return list(zip(self._times[i:], self._shown[i:], strict=True))

    # -- the bench file -------------------------------------------------------------------

    def addresses(self) -> dict[str, str]:
        return {role: f"{SCHEME}{self.id}/{role}" for role in DRIVERS}


def bench_at(address: str) -> tuple[VirtualBench, str]:
    """The running virtual bench and the role an address names."""
    if not address.startswith(SCHEME):
        raise ValueError(f"{address!r} is not a virtual bench address ({SCHEME}<bench>/<role>)")
    bench_id, _, role = address[len(SCHEME) :].partition("/")
    with _BENCHES_LOCK:
        bench = _BENCHES.get(bench_id)
    if bench is None:
        raise InstrumentGone(f"no virtual bench {bench_id!r} runs in this process", address=address)
    return bench, role


class _VirtualDriver(Driver):
    """A driver reaching one role of a virtual bench in process."""

    def __init__(self, address: str, *, timeout_s: float = 5.0, **options: Any) -> None:
        super().__init__(address, timeout_s=timeout_s, **options)
        self.bench, _role = bench_at(address)
        self.meter = self.bench.meter
        self.clock = self.bench.clock
        self._closed = False

    def identify(self) -> Identity:
        self._check_open()
        self._reply("reply to *IDN?", SHORT_REPLY_BYTES)
        return Identity("SimLab", f"virtual {self.role}", self.bench.id, "1", raw=self.address)

    def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise self.error(InstrumentError, "the driver is closed")
        if not self.bench.running:
            raise self.error(InstrumentGone, "the virtual bench has stopped")

    def _reply(self, what: str, size: int) -> None:
        """The device's reply of ``size`` bytes through its transport's faults: as the wire
        driver would report a reply that is late, missing, spoilt or whose port is gone."""
        faults = self.bench.faults.get(self.role)
        if faults is None or not faults.active:
            return
        if faults.delay_s and not faults.vanished:
            self.clock.sleep(faults.delay_s)
        problem = self._spoilt(size)
        if problem == "gone":
            raise self.error(InstrumentGone, f"port lost: the device is gone ({what})")
        if problem == "silent":
            self.clock.sleep(self.timeout_s)
            raise self.error(InstrumentTimeout, f"no {what} within {self.timeout_s:g} s")
        if problem is not None:
            raise self.error(ProtocolViolation, f"garbled or incomplete {what}")

    def _spoilt(self, size: int) -> str | None:
        """What the transport does to a reply of ``size`` bytes now: None (it arrives
        whole), "gone", "silent" or "spoilt" (no time passes)."""
        faults = self.bench.faults.get(self.role)
        if faults is None or not faults.active:
            return None
        if faults.vanished:
            return "gone"
        if faults.silent:
            return "silent"
        sent = bytes(size)
        return None if faults.apply(sent) == sent else "spoilt"


@register
class VirtualKeypad(_VirtualDriver):
    """Keypad actuator: each key held ``hold_ms`` with ``gap_ms`` between presses."""

    name = "virtual-keypad"
    role = "keypad"

    def __init__(
        self, address: str, *, hold_ms: int = 80, gap_ms: int = 120, **options: Any
    ) -> None:
        super().__init__(address, **options)
        self.hold_ms, self.gap_ms = hold_ms, gap_ms

    def keys(self) -> tuple[str, ...]:
        self._check_open()
        return tuple(self.meter.keys)

    def configure(self, hold_ms: int, gap_ms: int) -> None:
        for what, value in (("hold_ms", hold_ms), ("gap_ms", gap_ms)):
            if isinstance(value, bool) or not isinstance(value, int) or not 20 <= value <= 10_000:
                raise ValueError(f"{what} must be a whole number of ms in 20..10000, got {value!r}")
        self.hold_ms, self.gap_ms = hold_ms, gap_ms

    def press(self, key: str, hold_ms: int | None = None) -> list[KeyEvent]:
        return self._actuate([key], hold_ms or self.hold_ms)

    def type(self, keys: list[str]) -> list[KeyEvent]:
        if not keys:
            raise ValueError("type() needs at least one key")
        return self._actuate(list(keys), self.hold_ms)

    def abort(self) -> None:
        """Nothing to release: every press ends (key up) before a call returns."""
        self._check_open()
        self._reply("reply to ABORT", SHORT_REPLY_BYTES)

    def _actuate(self, keys: list[str], hold_ms: int) -> list[KeyEvent]:
        self._check_open()
        self._reply("reply to CFG?", SHORT_REPLY_BYTES)
        known = set(self.meter.keys)
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise CommandRefused(
                f"the keypad has no key {unknown[0]!r}",
                code="ERR 12",
                text="unknown key",
                role=self.role,
                address=self.address,
            )
        t0 = self.clock.now()
        events = []
        for index, key in enumerate(keys):
            if index:
                self.clock.sleep(self.gap_ms / 1000)
            down = self.clock.now()
            self.meter.key_down(key)
            self.clock.sleep(hold_ms / 1000)
            self.meter.key_up(key)
            self.bench.settle()
            # A spoilt event line stops the sequence here: the keys pressed so far stay pressed.
            self._reply(f"event of key {key}", EVENT_LINE_BYTES)
            events.append(KeyEvent(key, (down - t0) * 1000, (self.clock.now() - t0) * 1000))
        self.transcript.note(f"typed {' '.join(keys)} (hold {hold_ms} ms, gap {self.gap_ms} ms)")
        return events


@register
class VirtualMeterPort(_VirtualDriver):
    """The meter's optical port: readout and token write, at the standard's line speeds."""

    name = "virtual-port"
    role = "port"

    def __init__(
        self,
        address: str,
        *,
        password: str | None = None,
        token_register: str | None = None,
        device_address: str = "",
        **options: Any,
    ) -> None:
        super().__init__(address, **options)
        self.password = password
        self.token_register = token_register
        self.device_address = device_address
        if password:
            self.transcript.add_secret(password)
        self._baud = MODE_C_BAUD.get(self.meter.profile.port.baud_char, SIGN_ON_BAUD)

    def readout(self) -> dict[str, Reading]:
        """Mode C data readout: ``{address: Reading}``."""
        self._check_open()
        self._answering("readout")
        lines = self.meter.readout()
        data = sum(
            len(line.address) + len(line.value) + (len(line.unit) + 1 if line.unit else 0) + 4
            for line in lines
        )
        self._line_time(self._sign_on_chars(), SIGN_ON_BAUD)
        self._reply("identification", self._sign_on_chars())
        self._line_time(data + 5, self._baud)
        self._reply("readout", data + 5)
        self.transcript.note(f"readout: {len(lines)} data sets")
        return {line.address: Reading(line.address, line.value, line.unit) for line in lines}

    def write_token(self, digits: str) -> None:
        """Programming mode: password, write the token register, break."""
        if not (isinstance(digits, str) and digits and digits.isascii() and digits.isdigit()):
            raise ValueError(f"a token is digits only, got {digits!r}")
        self._check_open()
        if self.token_register is None:
            raise self.error(InstrumentError, "the DUT profile names no token register")
        self._answering("programming mode")
        self._line_time(self._sign_on_chars(), SIGN_ON_BAUD)
        self._reply("identification", self._sign_on_chars())
        self._line_time(16 + len(self.token_register) + len(digits) + 8, self._baud)
        result = self.meter.write_register(self.token_register, digits, self.password)
        self.bench.settle()
        self._reply("reply to the token write", 1)
        self.transcript.note(f"W1 {self.token_register}: {result.status.name}")
        if result.status is not WriteStatus.ACK:
            raise CommandRefused(
                f"the meter refused the token write: {result.text or result.status.name}",
                code=result.text or result.status.name,
                role=self.role,
                address=self.address,
            )

    def _sign_on_chars(self) -> int:
        """Characters of the 300-baud exchange: request, identification, option select."""
        return 5 + len(self.device_address) + len(self.meter.identification()) + 3 + 6

    def _answering(self, what: str) -> None:
        if not self.meter.powered:
            self.clock.sleep(self.timeout_s)
            raise self.error(InstrumentTimeout, f"no answer to the {what} sign-on (no supply?)")

    def _line_time(self, chars: int, baud: int) -> None:
        self.clock.sleep(PORT_REACTION_S + chars * _BITS_PER_CHAR / baud)


@register
class VirtualCardWriter(_VirtualDriver):
    """A card writer: the written card waits in the slot for the presenter."""

    name = "virtual-card"
    role = "card"

    def write_tracks(self, tracks: dict[int, str]) -> None:
        self._check_open()
        for track, data in tracks.items():
            problem = iso_track_problem(track, data)
            if problem:
                raise CommandRefused(
                    f"write refused: {problem}",
                    code="2",
                    text="command format error",
                    role=self.role,
                    address=self.address,
                )
        self.bench.slot = dict(tracks)
        self._reply("status after the write", SHORT_REPLY_BYTES)
        self.transcript.note(f"card written: tracks {sorted(tracks)}")

    def read_tracks(self) -> dict[int, str]:
        self._check_open()
        self._reply("tracks read", SHORT_REPLY_BYTES)
        if self.bench.slot is None:
            raise CommandRefused(
                "no card to read", code="1", text="read/write error", address=self.address
            )
        return dict(self.bench.slot)


@register
class VirtualCardPresenter(_VirtualDriver):
    """Moves the card in the writer's slot into the meter's card reader."""

    name = "virtual-presenter"
    role = "presenter"

    def present(self, timeout_s: float | None = None) -> None:
        self._check_open()
        card, self.bench.slot = self.bench.slot, None
        if card is None:
            raise self.error(InstrumentError, "no written card to present")
        self.clock.sleep(CARD_PRESENT_S)
        self.meter.insert_card(card)
        self.bench.settle()


class _Shown:
    """What the camera read of one display state; decoded on first look, once."""

    def __init__(self, camera: VirtualCamera, state: DisplayState) -> None:
        self._camera = camera
        self._state = state
        self._decode: Any = None
        self._png: bytes | None = None
        self.frames_read = camera.consecutive

    @property
    def decode(self) -> Any:
        if self._decode is None:
            self._decode = self._camera._decode(self._state)
        return self._decode

    @property
    def readable(self) -> bool:
        d = self.decode
        return bool(d.readable) and d.confidence >= self._camera.min_confidence

    @property
    def text(self) -> str:
        return self.decode.text or ""

    @property
    def annunciators(self) -> frozenset[str]:
        return frozenset(self.decode.annunciators)

    @property
    def confidence(self) -> float:
        return float(self.decode.confidence)

    @property
    def frame_png(self) -> bytes:
        if self._png is None:
            buf = io.BytesIO()
            self._camera._image(self._state).save(buf, format="PNG", compress_level=1)
            self._png = buf.getvalue()
        return self._png

    def reading(self) -> DisplayReading:
        return DisplayReading(
            self.text, self.annunciators, self.confidence, self.frame_png, self.frames_read
        )


@register
class VirtualCamera(_VirtualDriver):
    """Display reader: renders the LCD as SimLab's camera does and reads it by segment
    sampling through the calibrated segment map; a display is read once it stays for
    ``consecutive`` frames."""

    name = "virtual-camera"
    role = "display"

    def __init__(
        self,
        address: str,
        *,
        segment_map: str | Path,
        consecutive: int = 3,
        min_confidence: float = 0.5,
        **options: Any,
    ) -> None:
        super().__init__(address, **options)
        self.consecutive = consecutive
        self.min_confidence = min_confidence
        self._decoder = SegmentDecoder(SegmentMap.load(segment_map))
        self._level = NOISE_LEVELS[self.bench.noise]
        self._shown_cache: dict[object, _Shown] = {}
        self._frames = 0

    @property
    def still_s(self) -> float:
        """How long a display must stay to be read."""
        return self.consecutive * FRAME_INTERVAL_S

    def identify(self) -> Identity:
        self.read()
        return super().identify()

    def read(self, timeout_s: float | None = None) -> DisplayReading:
        """What the display shows once it has stayed for ``consecutive`` frames; virtual time
        moves on while the camera looks. InstrumentTimeout when it is unreadable or does not
        keep still within ``timeout_s``."""
        self._check_open()
        budget = self.timeout_s if timeout_s is None else timeout_s
        self._reply("frame", FRAME_BYTES)
        start = self.clock.now()
        end = start + budget
        while True:
            appeared, state = self.bench.shown(self.clock.now())[-1]
            ready = max(appeared, start) + self.still_s
            if ready <= self.clock.now() + 1e-9:
                shown = self.shown(state, appeared)
                if shown.readable:
                    self.transcript.note(f"accepted {shown.text!r}")
                    return shown.reading()
                self.clock.advance_to(end)
                raise self.error(
                    InstrumentTimeout,
                    f"display unreadable: {shown.decode.describe()} for {budget:g} s",
                )
            if ready > end:
                self.clock.advance_to(end)
                raise self.error(
                    InstrumentTimeout, f"display unreadable: it did not keep still for {budget:g} s"
                )
            self.clock.advance_to(ready)

    def watch(self) -> VirtualDisplayWatch:
        """A watch over the display from now on (what a camera records through an action)."""
        self._check_open()
        return VirtualDisplayWatch(self)

    def shown(self, state: DisplayState, appeared: float) -> _Shown:
        """The reading of ``state`` on show since ``appeared``: without noise every frame of
        a state is the same picture, so it is read once; with noise once per showing."""
        key = state if self._level.noise == 0 else (state, appeared)
        shown = self._shown_cache.get(key)
        if shown is None:
            shown = self._shown_cache[key] = _Shown(self, state)
        return shown

    def _image(self, state: DisplayState) -> Any:
        layout = self.meter.layout
        self._frames += 1
        level = self._level
        return render(
            layout,
            state.segments(layout),
            noise=level.noise,
            blur=level.blur,
            skew=level.skew,
            seed=self.bench.seed,
            frame=self._frames,
        )

    def _decode(self, state: DisplayState) -> Any:
        # With noise every frame differs: the frames must agree, as the wire reader asks.
        frames = 1 if self._level.noise == 0 else self.consecutive
        decodes = [self._decoder.decode(self._image(state)) for _ in range(frames)]
        return min(decodes, key=lambda d: d.confidence)


class VirtualDisplayWatch:
    """The display recorded through an action, read from the bench's display history: every
    state that stayed for the camera's ``consecutive`` frames, at the time it was read."""

    #: Every change is seen when it happens (plus the fixed time of the frames that confirm
    #: it): a time from this watch has no sampling interval.
    poll_s = 0.0

    def __init__(self, camera: VirtualCamera) -> None:
        self.camera = camera
        self.clock = camera.clock
        self.started = self.clock.now()
        self.faults: list[str] = []
        self._stopped_at: float | None = None

    def start(self) -> VirtualDisplayWatch:
        return self

    @property
    def readings(self) -> list[tuple[float, Any]]:
        problem = self.camera._spoilt(FRAME_BYTES)
        if problem is not None:
            # The camera's frames do not arrive (or not whole): nothing is read meanwhile.
            note = f"[display] {self.camera.address}: display unreadable: frames {problem}"
            if note not in self.faults:
                self.faults.append(note)
            return []
        now = self._stopped_at if self._stopped_at is not None else self.clock.now()
        shown = self.camera.bench.shown(self.started)
        still = self.camera.still_s
        out: list[tuple[float, Any]] = []
        last_text: str | None = None
        for i, (appeared, state) in enumerate(shown):
            seen_from = max(appeared, self.started)
            gone = shown[i + 1][0] if i + 1 < len(shown) else now
            if gone - seen_from < still - 1e-9 or seen_from + still > now + 1e-9:
                continue
            if state.text == last_text:
                continue
            reading = self.camera.shown(state, appeared)
            if not reading.readable:
                note = f"display unreadable: {reading.decode.describe()}"
                if note not in self.faults:
                    self.faults.append(note)
                continue
            last_text = state.text
            out.append((seen_from + still, reading))
        return out

    def wait_first(self, timeout_s: float = 3.0) -> None:
        end = self.clock.now() + timeout_s
        while not (self.readings or self.faults) and self.clock.now() < end:
            self.clock.advance_to(min(end, self.clock.now() + FRAME_INTERVAL_S))

    def since(self, t: float) -> list[Any]:
        return [r for done, r in self.readings if done >= t]

    def wait_change(self, deadline: float) -> None:
        """Let virtual time run to the next moment the readings can change (the display on
        show is read, or the meter's next event has shown something), at most ``deadline``."""
        now = self.clock.now()
        appeared, _state = self.camera.bench.shown(now)[-1]
        target = max(appeared, self.started) + self.camera.still_s
        if target <= now + 1e-9:
            due, _shown = self.camera.meter.advance(now)
            target = deadline if due is None else due + self.camera.still_s
        target = min(target, deadline)
        if target <= now + 1e-9:
            target = min(deadline, now + FRAME_INTERVAL_S)
        self.clock.advance_to(target)

    def stop(self) -> list[tuple[float, Any]]:
        readings = self.readings
        self._stopped_at = self.clock.now()
        return readings


class _InProcessResource:
    """What an SCPI driver needs of a VISA resource, served by SimLab's instrument model in
    this process: each line written is executed at once, its reply queued for reading."""

    def __init__(
        self, instrument: ScpiInstrument, bench: VirtualBench, role: str, read_termination: str
    ) -> None:
        self.instrument = instrument
        self.bench = bench
        self.faults = bench.faults[role]
        self.read_termination = read_termination
        self.timeout = 2000
        self._replies: deque[bytes] = deque()

    def write_raw(self, data: bytes) -> int:
        if not self.bench.running or self.faults.vanished:
            raise VisaIOError(constants.StatusCode.error_connection_lost)
        line = data.decode("ascii").rstrip("\r\n")
        reply = self.instrument.execute(line)
        self.bench.settle()  # the meter sees a change of supply or load at once
        if reply is not None:
            self._replies.append(reply)
        return len(data)

    def read_raw(self) -> bytes:
        """The next reply through the transport's faults (a silent instrument's read waits
        out the resource's timeout in virtual time)."""
        if self.faults.vanished:
            raise VisaIOError(constants.StatusCode.error_connection_lost)
        if self.faults.delay_s:
            self.bench.clock.sleep(self.faults.delay_s)
        reply = self.faults.apply(self._replies.popleft()) if self._replies else b""
        if not reply:
            self.bench.clock.sleep(self.timeout / 1000)
            raise VisaIOError(constants.StatusCode.error_timeout)
        return reply

    def clear(self) -> None:
        self._replies.clear()

    def close(self) -> None:
        self._replies.clear()


class _InProcessScpi:
    """Mixin for an SCPI driver class: reach the instrument of a virtual bench in process."""

    address: str
    read_termination: str

    def _open_resource(self, remaining: Any) -> Any:
        bench, role = bench_at(self.address)
        instrument = bench.instruments.get(role)
        if instrument is None:
            raise InstrumentGone(
                f"the virtual bench has no {role} instrument", address=self.address
            )
        return _InProcessResource(instrument, bench, role, self.read_termination)


@register
class VirtualWt300(_InProcessScpi, Wt300Analyzer):
    name = "virtual-wt300"


@register
class VirtualChroma61500(_InProcessScpi, Chroma61500Source):
    name = "virtual-chroma61500"


@register
class VirtualChroma63800(_InProcessScpi, Chroma63800Load):
    name = "virtual-chroma63800"
