"""The camera display reader against SimLab's camera, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import io
import itertools
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from instruments.base import (
    InstrumentError,
    InstrumentGone,
    InstrumentTimeout,
    driver_class,
)
from instruments.display import (
    SEVEN_SEGMENT_FONT,
    CalibrationError,
    CameraSegmentReader,
    SegmentDecoder,
    calibrate,
    find_glass,
    grey_levels,
    open_frame,
)
from instruments.roles import DisplayReader, DisplayReading
from instruments.segment_map import SegmentMap, SegmentMapError
from simlab import lcd
from simlab.camera import CameraServer
from simlab.lcd import DisplayState, SegmentLayout

LAYOUT_8 = SegmentLayout.builtin("lcd_8digit")
LAYOUT_6 = SegmentLayout.builtin("lcd_6digit")
PROFILES = Path(lcd.__file__).parents[1] / "dut" / "profiles"
ALL_ICONS_8 = frozenset(LAYOUT_8.annunciators)

STATES = [
    DisplayState("123.45", {"kwh", "credit_low"}),
    DisplayState("-0.50", {"relay_open", "tamper"}),
    DisplayState("Err 12", {"tamper"}),
    DisplayState("8.8.8.8.8.8.8.8.", ALL_ICONS_8),
    DisplayState("", set()),
    DisplayState("1", {"keypad_lock", "currency"}),
]


class Meter:
    """What the simulated meter shows: a fixed state, or a script of states frame by frame
    (the last one then stays)."""

    def __init__(self, *states: DisplayState) -> None:
        self.script = list(states)
        self.calls = 0
        self.broken = ""  # when set, the display bus fails with this message
        self.lock = threading.Lock()

    def show(self, *states: DisplayState) -> None:
        with self.lock:
            self.script, self.calls = list(states), 0

    def __call__(self) -> DisplayState:
        if self.broken:
            raise RuntimeError(self.broken)
        with self.lock:
            state = self.script[min(self.calls, len(self.script) - 1)]
            self.calls += 1
            return state


def expected(state: DisplayState) -> tuple[str, frozenset[str]]:
    """The reading a perfect reader gives: SimLab's own decoding of the lit segments."""
    back = DisplayState.from_segments(LAYOUT_8, state.segments(LAYOUT_8))
    return back.text, back.annunciators


_SERVED: dict[tuple[str, str, int], str] = {}


def layout_file(cam: CameraServer, folder: Path) -> Path:
    """The camera's calibrated map (``GET /layout.yaml``) saved as a bench would keep it.

    A camera's map depends only on its model, noise preset and seed; each is fetched once."""
    key = (cam.layout.name, cam.noise_name, cam.seed)
    if key not in _SERVED:
        with urllib.request.urlopen(f"http://127.0.0.1:{cam.port}/layout.yaml", timeout=5) as r:
            _SERVED[key] = r.read().decode("utf-8")
    text = _SERVED[key]
    path = folder / f"camera-{cam.port}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def meter() -> Meter:
    return Meter(STATES[0])


@pytest.fixture
def start(
    meter: Meter, tmp_path: Path
) -> Iterator[Callable[..., tuple[CameraServer, CameraSegmentReader]]]:
    """Start a camera (noise preset, seed) and a reader on it with the camera's own map."""
    opened: list[tuple[CameraServer, CameraSegmentReader]] = []

    def make(
        noise: str = "none", seed: int = 3, layout: SegmentLayout = LAYOUT_8, **options: object
    ) -> tuple[CameraServer, CameraSegmentReader]:
        cam = CameraServer(layout, meter, noise=noise, seed=seed).start()
        try:
            options.setdefault("segment_map", layout_file(cam, tmp_path))
            options.setdefault("timeout_s", 3.0)
            reader = CameraSegmentReader(cam.url, **options)  # type: ignore[arg-type]
        except BaseException:
            cam.stop()
            raise
        opened.append((cam, reader))
        return cam, reader

    yield make
    for cam, reader in opened:
        reader.close()
        cam.stop()


def read_as(reader: CameraSegmentReader, state: DisplayState) -> DisplayReading:
    reading = reader.read()
    assert (reading.text, reading.annunciators) == expected(state)
    return reading


# -- the driver --------------------------------------------------------------------------------


def test_registered_as_the_display_role(start: Callable[..., tuple]) -> None:
    assert driver_class("camera-segment") is CameraSegmentReader
    _, reader = start()
    assert reader.role == "display" and isinstance(reader, DisplayReader)


@pytest.mark.parametrize("noise", ["none", "low", "medium"])
def test_reads_text_and_annunciators(noise: str, meter: Meter, start: Callable[..., tuple]) -> None:
    _, reader = start(noise=noise)
    for state in STATES:
        meter.show(state)
        reading = read_as(reader, state)
        assert reading.confidence >= reader.min_confidence
        assert reading.frames_read >= 3
        # The evidence frame is a PNG of the camera's frame that itself reads the same.
        assert reading.frame_png.startswith(b"\x89PNG")
        again = SegmentDecoder(reader.segment_map).decode(open_frame(reading.frame_png))
        assert (again.text, again.annunciators) == expected(state)


def test_reads_a_second_meter_model(meter: Meter, start: Callable[..., tuple]) -> None:
    meter.show(DisplayState("-12.5", {"kwh"}))
    _, reader = start(noise="medium", layout=LAYOUT_6)
    reading = reader.read()
    assert (reading.text, reading.annunciators) == ("-12.5", {"kwh"})


def test_high_noise_is_right_or_refused_never_wrong(
    meter: Meter, start: Callable[..., tuple]
) -> None:
    _, reader = start(noise="high", seed=4, timeout_s=1.5, max_frames=20)
    outcomes = []
    for state in STATES[:4]:
        meter.show(state)
        try:
            reading = reader.read()
        except InstrumentTimeout as exc:
            assert "display unreadable" in str(exc)
            outcomes.append("refused")
            continue
        assert (reading.text, reading.annunciators) == expected(state)
        assert reading.confidence >= reader.min_confidence
        outcomes.append("right")
    assert "right" in outcomes  # a noisy camera is still usable, only slower


def shifted(smap: SegmentMap, dx: float, dy: float, *, glass: bool) -> SegmentMap:
    """``smap`` with its segments (and with ``glass``, its glass too) moved by (dx, dy)."""

    def move(shape: tuple) -> list:
        return [[[x + dx, y + dy] for x, y in poly] for poly in shape]

    return SegmentMap.from_dict(
        {
            "name": smap.name,
            "size": list(smap.size),
            "glass": move((smap.glass,))[0] if glass else [list(p) for p in smap.glass],
            "digits": [{seg: move(shape) for seg, shape in cell.items()} for cell in smap.digits],
            "annunciators": {name: move(shape) for name, shape in smap.annunciators.items()},
        }
    )


def test_a_moved_camera_is_refused(
    meter: Meter, start: Callable[..., tuple], tmp_path: Path
) -> None:
    cam, _ = start(noise="medium")
    good = SegmentMap.load(layout_file(cam, tmp_path))
    with CameraSegmentReader(cam.url, segment_map=shifted(good, 1.5, 0, glass=True)) as reader:
        read_as(reader, STATES[0])  # a pixel or two is within tolerance
    moved = shifted(good, 6, 5, glass=True)
    with (
        CameraSegmentReader(cam.url, segment_map=moved, timeout_s=1.0, max_frames=4) as reader,
        pytest.raises(InstrumentTimeout, match=r"display moved in the camera's view.*recalibrate"),
    ):
        reader.read()


def test_a_wrong_map_is_doubtful_never_confidently_wrong(
    meter: Meter, start: Callable[..., tuple], tmp_path: Path
) -> None:
    """Segments off where the glass is right (say, the map of another model revision)."""
    cam, _ = start()
    good = SegmentMap.load(layout_file(cam, tmp_path))
    refused = 0
    for dx, dy in ((3, 0), (0, 4), (5, 5), (-6, 3)):
        wrong_map = shifted(good, dx, dy, glass=False)
        with CameraSegmentReader(
            cam.url, segment_map=wrong_map, timeout_s=1.0, max_frames=6
        ) as reader:
            for state in STATES[:3]:
                meter.show(state)
                try:
                    reading = reader.read()
                except InstrumentTimeout as exc:
                    assert "display unreadable" in str(exc)
                    refused += 1
                    continue
                assert (reading.text, reading.annunciators) == expected(state)
    assert refused >= 6  # the larger offsets are noticed


# -- K consecutive agreeing frames ---------------------------------------------------------------

A, B, C = DisplayState("5", {"kwh"}), DisplayState("6", {"kwh"}), DisplayState("7")


def test_reading_waits_for_k_consecutive_agreeing_frames(
    meter: Meter, start: Callable[..., tuple]
) -> None:
    _, reader = start(consecutive=3)
    meter.show(A, A, B, A, A, A)
    reading = reader.read()
    assert (reading.text, reading.frames_read) == ("5", 6)

    meter.show(A, B, B, B)
    assert (reader.read().text, meter.calls) == ("6", 4)


def test_a_changing_display_is_not_accepted_until_stable(
    meter: Meter, start: Callable[..., tuple]
) -> None:
    _, reader = start(timeout_s=1.0, max_frames=12)
    meter.show(*itertools.islice(itertools.cycle([A, B]), 1000))
    with pytest.raises(InstrumentTimeout, match=r"display unreadable.*changes of reading"):
        reader.read()
    meter.show(A, B, A, B, C)  # settles on C
    reading = reader.read()
    assert reading.text == "7" and reading.annunciators == frozenset()
    assert reading.frames_read == 7


def test_one_frame_is_enough_when_k_is_1(meter: Meter, start: Callable[..., tuple]) -> None:
    _, reader = start(consecutive=1)
    meter.show(B, A)
    reading = reader.read()
    assert (reading.text, reading.frames_read) == ("6", 1)


def test_option_checks(start: Callable[..., tuple]) -> None:
    cam, reader = start()
    bad: list[dict[str, object]] = [
        {"consecutive": 0},
        {"min_confidence": 1.5},
        {"max_frames": 2, "consecutive": 3},
        {"timeout_s": 0},
    ]
    for options in bad:
        with pytest.raises(ValueError):
            CameraSegmentReader(cam.url, segment_map=reader.segment_map, **options)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout_s must be positive"):
        reader.read(timeout_s=0)


# -- faults --------------------------------------------------------------------------------------


def works_again(cam: CameraServer, reader: CameraSegmentReader) -> None:
    cam.faults.clear()
    assert read_as(reader, STATES[0]).confidence >= reader.min_confidence


def test_silent_camera_times_out_then_recovers(start: Callable[..., tuple]) -> None:
    cam, reader = start(timeout_s=0.5)
    cam.faults.silent = True
    with pytest.raises(InstrumentTimeout, match=r"no frame within 0\.5 s"):
        reader.read()
    works_again(cam, reader)


def test_delayed_camera_times_out_then_recovers(start: Callable[..., tuple]) -> None:
    cam, reader = start(timeout_s=0.5)
    cam.faults.delay_s = 30.0
    with pytest.raises(InstrumentTimeout):
        reader.read()
    works_again(cam, reader)


def test_vanished_camera_is_gone_then_recovers(start: Callable[..., tuple]) -> None:
    cam, reader = start(timeout_s=0.5)
    cam.faults.vanished = True
    with pytest.raises(InstrumentGone, match="refused"):
        reader.read()
    cam.faults.clear()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the camera listens again shortly after
        try:
            socket.create_connection(("127.0.0.1", cam.port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.02)
    works_again(cam, reader)


def test_garbled_frames_are_skipped_and_reported(start: Callable[..., tuple]) -> None:
    cam, reader = start(timeout_s=3.0, max_frames=8)
    cam.faults.garble_rate = 0.01
    with pytest.raises(InstrumentTimeout, match=r"display unreadable.*8 frames, 8 corrupt"):
        reader.read()
    assert "skipped: corrupt frame" in reader.transcript.render()
    works_again(cam, reader)


def test_short_frames_are_skipped(start: Callable[..., tuple]) -> None:
    cam, reader = start(timeout_s=3.0, max_frames=5)
    cam.faults.drop_rate = 0.01
    with pytest.raises(InstrumentTimeout, match="short frame"):
        reader.read()
    works_again(cam, reader)


def test_camera_server_error_is_retried_until_the_timeout(
    meter: Meter, start: Callable[..., tuple]
) -> None:
    _, reader = start(timeout_s=1.0)
    meter.broken = "display bus down"
    with pytest.raises(InstrumentTimeout, match="HTTP 503"):
        reader.read()
    meter.broken = ""
    read_as(reader, STATES[0])


def test_wrong_url_and_wrong_map_fail_at_once(start: Callable[..., tuple]) -> None:
    cam, reader = start()
    url = cam.url.replace("snapshot.png", "nothing.png")
    with CameraSegmentReader(url, segment_map=reader.segment_map) as wrong:
        with pytest.raises(InstrumentError, match="HTTP 404") as info:
            wrong.read()
        assert not isinstance(info.value, InstrumentTimeout)
    with (
        CameraSegmentReader(cam.url, segment_map=PROFILES / "lcd_6digit.yaml") as other,
        pytest.raises(InstrumentError, match=r"frame is 640x240 .* for 512x224"),
    ):
        other.read()


def test_closed_reader_refuses_and_close_is_idempotent(start: Callable[..., tuple]) -> None:
    _, reader = start()
    reader.close()
    reader.close()
    with pytest.raises(InstrumentError, match="closed"):
        reader.read()


# -- identify, addresses, transcripts ----------------------------------------------------------


def test_identify_names_the_camera_and_checks_a_frame(start: Callable[..., tuple]) -> None:
    cam, reader = start()
    ident = reader.identify()
    assert (ident.manufacturer, ident.model, ident.firmware) == ("HTTP camera", "SimLabCamera", "1")
    assert ident.serial == f"127.0.0.1:{cam.port}"
    assert "Server: SimLabCamera/1" in ident.raw
    cam.faults.garble_rate = 0.01
    with (
        CameraSegmentReader(cam.url, segment_map=reader.segment_map, timeout_s=0.3) as quick,
        pytest.raises(InstrumentTimeout, match="corrupt"),
    ):
        quick.identify()


def test_credentials_never_show(meter: Meter, start: Callable[..., tuple]) -> None:
    cam, reader = start()
    url = cam.url.replace("http://", "http://lab:s3cret-pw@")
    with CameraSegmentReader(url, segment_map=reader.segment_map, timeout_s=0.5) as secret:
        assert read_as(secret, STATES[0])
        cam.faults.silent = True
        with pytest.raises(InstrumentTimeout) as info:
            secret.read()
        cam.faults.clear()
        shown = " ".join([secret.address, str(info.value), secret.transcript.render()])
        assert "lab:***@127.0.0.1" in secret.address
        assert "s3cret" not in shown and "s3cret" not in str(secret.identify())


def test_transcript_keeps_requests_and_decodes(start: Callable[..., tuple]) -> None:
    _, reader = start()
    reader.read()
    text = reader.transcript.render()
    assert "GET http://127.0.0.1:" in text
    assert "image/png" in text and "X-Frame=" in text
    assert "accepted '123.45' icons credit_low,kwh" in text


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("/dev/video0", "V4L2"),
        ("file:///dev/video2", "ffmpeg"),
        ("rtsp://10.0.0.5/stream", "unsupported camera address"),
        ("http:///snapshot.png", "no host"),
    ],
)
def test_unsupported_addresses_say_what_to_do(address: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CameraSegmentReader(address, segment_map=PROFILES / "lcd_8digit.yaml")


class CaptureTool:
    """Keeps a frame file current, like ``ffmpeg -update 1``: one new frame every ``period``."""

    def __init__(self, path: Path, frames: list[bytes], period: float = 0.03) -> None:
        self.path, self.frames, self.period = path, frames, period
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        for frame in itertools.cycle(self.frames):
            tmp = self.path.with_suffix(".tmp")
            tmp.write_bytes(frame)
            os.replace(tmp, self.path)
            if self.stop.wait(self.period):
                return

    def __enter__(self) -> CaptureTool:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def test_frame_file_from_a_capture_tool(tmp_path: Path) -> None:
    state = STATES[1]
    pngs = [
        lcd.render_png(LAYOUT_8, state.segments(LAYOUT_8), noise=4, seed=1, frame=i)
        for i in range(4)
    ]
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(pngs[0])).save(jpeg, format="JPEG", quality=90)
    frame = tmp_path / "lcd.jpg"
    address = frame.as_uri()
    with CameraSegmentReader(
        address, segment_map=PROFILES / "lcd_8digit.yaml", timeout_s=3.0
    ) as reader:
        with pytest.raises(InstrumentGone, match="capture tool"):
            reader.read(timeout_s=0.3)
        frame.write_bytes(jpeg.getvalue())
        # One still frame is one observation, however often it is read.
        with pytest.raises(InstrumentTimeout, match=r"\(1 frames; last frame: '-0.50'"):
            reader.read(timeout_s=0.3)
        with CaptureTool(frame, [jpeg.getvalue(), *pngs]):
            reading = read_as(reader, state)
        assert reading.frame_png.startswith(b"\x89PNG")  # evidence is PNG, whatever came in
        assert reader.identify().serial == str(frame)


def test_readers_leak_nothing(start: Callable[..., tuple]) -> None:
    cam, reader = start()
    reader.read()
    # The camera's request threads close their side a moment after answering.
    assert settles(lambda: not camera_requests())
    threads, fds = threading.active_count(), open_fds()
    for _ in range(50):
        with CameraSegmentReader(cam.url, segment_map=reader.segment_map, consecutive=1) as r:
            r.read()
    assert settles(lambda: not camera_requests())
    assert threading.active_count() <= threads
    assert settles(lambda: open_fds() <= fds)


def camera_requests() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("camera-request-")]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def settles(condition: Callable[[], bool], limit: float = 5.0) -> bool:
    end = time.monotonic() + limit
    while not condition() and time.monotonic() < end:
        time.sleep(0.01)
    return condition()


# -- lighting ------------------------------------------------------------------------------------


def relit(png: bytes, contrast: float, left_light: float) -> Image.Image:
    """A frame with its contrast scaled about grey 120 and lit from the right (the left edge
    gets ``left_light`` of the light), as a poorly lit bench camera sees the display."""
    grey = np.asarray(open_frame(png).convert("L"), float)
    light = np.linspace(left_light, 1.0, grey.shape[1])[None, :]
    out = (120 + (grey - 120) * contrast) * light
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "L")


@pytest.mark.parametrize("state", [STATES[0], STATES[3], STATES[4]])
def test_uneven_low_contrast_lighting_still_reads(state: DisplayState) -> None:
    decoder = SegmentDecoder(SegmentMap.load(PROFILES / "lcd_8digit.yaml"))
    png = lcd.render_png(LAYOUT_8, state.segments(LAYOUT_8), noise=4, blur=0.6, seed=2)
    decode = decoder.decode(relit(png, contrast=0.3, left_light=0.45))
    assert (decode.text, decode.annunciators) == expected(state)
    assert decode.confidence >= 0.5


def test_washed_out_display_is_refused_not_read_as_blank() -> None:
    decoder = SegmentDecoder(SegmentMap.load(PROFILES / "lcd_8digit.yaml"))
    state = STATES[0]
    png = lcd.render_png(LAYOUT_8, state.segments(LAYOUT_8), noise=4, seed=2)
    decode = decoder.decode(relit(png, contrast=0.05, left_light=1.0))
    assert not decode.readable
    assert "too little contrast" in decode.problem


# -- perspective and calibration -----------------------------------------------------------------


def all_segments_frame(cam: CameraServer, meter: Meter) -> bytes:
    meter.show(DisplayState("8." * cam.layout.digit_count, frozenset(cam.layout.annunciators)))
    with urllib.request.urlopen(cam.url, timeout=5) as r:
        return r.read()


def test_layout_map_with_glass_located_in_every_frame(
    meter: Meter, start: Callable[..., tuple]
) -> None:
    _, reader = start(noise="medium", segment_map=PROFILES / "lcd_8digit.yaml", locate_glass=True)
    for state in STATES[:3]:
        meter.show(state)
        read_as(reader, state)


def test_find_glass_matches_the_camera_geometry(meter: Meter, start: Callable[..., tuple]) -> None:
    cam, _ = start(noise="medium", seed=7)
    frame = open_frame(all_segments_frame(cam, meter))
    corners = np.array(find_glass(grey_levels(frame)))
    assert np.abs(corners - np.array(cam.geometry.glass_corners)).max() < 1.0
    with pytest.raises(ValueError, match="no glass brighter"):
        find_glass(np.full((240, 640), 90, np.float32))


def test_calibrate_from_a_skewed_all_segments_frame(
    meter: Meter, start: Callable[..., tuple], tmp_path: Path
) -> None:
    cam, _ = start(noise="medium", seed=7)
    source = PROFILES / "lcd_8digit.yaml"
    text = calibrate(
        all_segments_frame(cam, meter),
        source.read_text(encoding="utf-8"),
        layout_source=str(source),
    )
    assert "Segment contrast" in text and "d8.dp" in text.split("name:")[0]
    calibrated = SegmentMap.parse_yaml(text)
    served = SegmentMap.load(layout_file(cam, tmp_path))
    assert calibrated.size == served.size
    assert np.abs(np.array(calibrated.glass) - np.array(served.glass)).max() < 1.0
    assert SegmentLayout.parse_yaml(text).segment_ids == LAYOUT_8.segment_ids  # SimLab reads it
    path = tmp_path / "calibrated.yaml"
    path.write_text(text, encoding="utf-8")
    with CameraSegmentReader(cam.url, segment_map=path) as reader:
        for state in STATES[:3]:
            meter.show(state)
            read_as(reader, state)


def test_calibrate_refuses_frames_that_do_not_show_every_segment(
    meter: Meter, start: Callable[..., tuple]
) -> None:
    cam, _ = start(noise="low")
    layout = (PROFILES / "lcd_8digit.yaml").read_text(encoding="utf-8")
    meter.show(DisplayState("8.8.8.8.8.8.8.8.", ALL_ICONS_8 - {"tamper"}))
    with urllib.request.urlopen(cam.url, timeout=5) as r:
        frame = r.read()
    with pytest.raises(CalibrationError, match=r"1 of 70 segments do not read ON.*ann\.tamper"):
        calibrate(frame, layout)
    with pytest.raises(CalibrationError, match="cannot be decoded"):
        calibrate(frame[:500], layout)
    dark = io.BytesIO()
    Image.new("RGB", (640, 240), (30, 30, 30)).save(dark, format="PNG")
    with pytest.raises(CalibrationError, match="cannot locate the display glass"):
        calibrate(dark.getvalue(), layout)
    with pytest.raises(SegmentMapError, match=r"acme\.yaml: size"):
        calibrate(
            frame, layout.replace("size: [640, 240]", "size: [640]"), layout_source="acme.yaml"
        )


# -- segment maps ------------------------------------------------------------------------------


def test_every_shipped_and_served_map_loads(start: Callable[..., tuple], tmp_path: Path) -> None:
    for name in ("lcd_8digit", "lcd_6digit"):
        smap = SegmentMap.load(PROFILES / f"{name}.yaml")
        layout = SegmentLayout.builtin(name)
        assert smap.segment_ids == layout.segment_ids and smap.size == layout.size
        assert SegmentMap.parse_yaml(smap.to_yaml()) == smap
    cam, reader = start(noise="medium")
    assert reader.segment_map.glass == cam.frame_layout.glass


def test_font_agrees_with_the_simulated_meter() -> None:
    for ch, segments in lcd.SEVEN_SEGMENT_FONT.items():
        shown = lcd.CANONICAL_GLYPHS.get(ch, ch)
        assert SEVEN_SEGMENT_FONT[shown] == segments


_SOURCE = (PROFILES / "lcd_8digit.yaml").read_text(encoding="utf-8")
_DP1 = next(line for line in _SOURCE.splitlines() if line.startswith("  dp:"))


@pytest.mark.parametrize(
    ("edit", "key", "message", "line_of"),
    [
        (lambda s: s.replace(_DP1 + "\n", "", 1), "digits[0].dp", "missing", "- a:"),
        (
            lambda s: s.replace(_DP1, "  dp: [[1, 1], [2, 'x'], [3, 3]]", 1),
            "digits[0].dp",
            "[x, y]",
            "  dp:",
        ),
        (
            lambda s: s.replace(_DP1, "  dp: [[1, 1], [700, 1], [3, 5]]", 1),
            "digits[0].dp",
            "outside",
            "  dp:",
        ),
        (
            lambda s: s.replace(_DP1, "  dp: [[40, 90], [80, 90], [60, 99]]", 1),
            "digits[0].dp",
            "overlaps digits[0].a",
            "  dp:",
        ),
        (
            lambda s: s.replace(_DP1, "  dp: [[0, 0], [10, 0], [10, 10]]", 1),
            "digits[0].dp",
            "beyond the glass",
            "  dp:",
        ),
        (lambda s: s.replace("size:", "colour: 1\nsize:", 1), "colour", "unknown key", "colour"),
        (lambda s: s.replace("digits:", "digitz:", 1), "digitz", "unknown key", "digitz"),
        (lambda s: s.replace("[640, 240]", "[640, -1]", 1), "size[1]", "positive", "size:"),
        (
            lambda s: s.replace(
                "glass: [[16.0, 16.0], [624.0, 16.0]", "glass: [[624.0, 16.0], [16.0, 16.0]", 1
            ),
            "glass",
            "top-left, top-right",
            "glass:",
        ),
        (
            lambda s: s.replace("  tamper:", "  Bad-Name:", 1),
            "annunciators.Bad-Name",
            "lower_snake",
            "  Bad-Name",
        ),
    ],
)
def test_bad_segment_map_names_file_key_and_line(
    edit: Callable[[str], str], key: str, message: str, line_of: str, tmp_path: Path
) -> None:
    text = edit(_SOURCE)
    assert text != _SOURCE
    path = tmp_path / "acme.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SegmentMapError) as info:
        CameraSegmentReader("http://127.0.0.1:9/snapshot.png", segment_map=path)
    line = text[: text.index(line_of)].count("\n") + 1
    assert str(info.value).startswith(f"{path}: {key} (line {line}): ")
    assert message in str(info.value)


def test_unreadable_map_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(SegmentMapError, match=r"nope\.yaml: cannot read"):
        SegmentMap.load(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text(_SOURCE.replace("size: [640, 240]", "size: [640, 240", 1), encoding="utf-8")
    with pytest.raises(SegmentMapError, match=r"broken\.yaml: line \d+: invalid YAML"):
        SegmentMap.load(broken)
    with pytest.raises(
        SegmentMapError, match=r"list\.yaml: \(top level\) \(line 1\): a segment map"
    ):
        SegmentMap.parse_yaml("- 1\n- 2\n", source="list.yaml")
