"""The simulated IP camera, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from PIL import Image

from simlab.camera import CameraServer
from simlab.faults import TransportFaults
from simlab.lcd import DisplayState, SegmentLayout

LAYOUT = SegmentLayout.builtin("lcd_8digit")
TIMEOUT = 0.5  # the client's timeout in fault tests; faults last far longer


class Meter:
    """A stand-in for the simulated meter: whatever it was last told to show."""

    def __init__(self, state: DisplayState) -> None:
        self.state = state

    def __call__(self) -> DisplayState:
        return self.state


@pytest.fixture
def meter() -> Meter:
    return Meter(DisplayState("123.45", {"kwh", "credit_low"}))


@pytest.fixture
def camera(meter: Meter) -> Iterator[CameraServer]:
    with CameraServer(LAYOUT, meter, noise="low", seed=5) as cam:
        yield cam


def get(url: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, dict(response.headers), response.read()


def decode(png: bytes) -> Image.Image:
    """Decode as a careful reader does: check every chunk's CRC, then the pixels."""
    Image.open(io.BytesIO(png)).verify()
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def read_state(image: Image.Image, frame_layout: SegmentLayout) -> DisplayState:
    """Read a frame with the camera's own calibrated segment map (served as /layout.yaml)."""
    label = frame_layout.label_image().ravel()
    grey = np.asarray(image.convert("L"), float).ravel()
    sums = np.bincount(label, weights=grey)
    counts = np.bincount(label)
    means = sums / np.maximum(counts, 1)
    threshold = (means[0] + means[1]) / 2  # between bezel and glass
    lit = {sid for k, sid in enumerate(frame_layout.segment_ids) if means[k + 2] < threshold}
    return DisplayState.from_segments(frame_layout, lit)


def base(cam: CameraServer) -> str:
    return f"http://127.0.0.1:{cam.port}"


def wait_until(condition: Callable[[], bool], limit: float = 5.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        return False  # queued on the listener as it closed: not yet refused, ask again
    return False


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    except OSError:
        return False
    return True


# -- serving -----------------------------------------------------------------------------------


def test_snapshot_shows_the_current_state(camera: CameraServer, meter: Meter) -> None:
    assert camera.url == f"http://127.0.0.1:{camera.port}/snapshot.png"
    status, headers, body = get(camera.url)
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert headers["X-Frame"] == "1"
    _, _, yaml_text = get(base(camera) + "/layout.yaml")
    frame_layout = SegmentLayout.parse_yaml(yaml_text.decode("utf-8"), source="layout.yaml")
    image = decode(body)
    assert image.size == LAYOUT.size
    assert read_state(image, frame_layout) == DisplayState("123.45", {"kwh", "credit_low"})

    meter.state = DisplayState("-0.50", {"relay_open", "tamper"})
    _, headers, body = get(camera.url + "?t=2")
    assert headers["X-Frame"] == "2"
    assert read_state(decode(body), frame_layout) == meter.state
    assert camera.frames == 2


def test_layout_yaml_is_the_map_in_frame_pixels(camera: CameraServer) -> None:
    _, headers, text = get(base(camera) + "/layout.yaml")
    assert headers["Content-Type"] == "application/yaml"
    served = SegmentLayout.parse_yaml(text.decode("utf-8"))
    assert served == camera.frame_layout == LAYOUT.warped(camera.geometry)
    # Low noise skews the view: the served map is not the design layout.
    assert served.glass != LAYOUT.glass


def test_status_document(camera: CameraServer) -> None:
    get(camera.url)
    _, headers, body = get(base(camera) + "/")
    assert headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    assert doc["model"] == LAYOUT.name and doc["digits"] == 8 and doc["frames"] == 1
    assert doc["snapshot"] == "/snapshot.png" and doc["noise"] == "low"
    assert doc["glass_corners"] == [list(p) for p in camera.geometry.glass_corners]


def test_unknown_path_is_404(camera: CameraServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        get(base(camera) + "/snapshot.jpg")
    assert info.value.code == 404
    info.value.close()


def test_failing_meter_side_is_503(meter: Meter) -> None:
    def broken() -> DisplayState:
        raise RuntimeError("display bus down")

    with CameraServer(LAYOUT, broken) as cam:
        with pytest.raises(urllib.error.HTTPError) as info:
            get(cam.url)
        assert info.value.code == 503
        assert "display bus down" in info.value.read().decode()
        info.value.close()


def test_same_seed_same_frames(meter: Meter) -> None:
    with (
        CameraServer(LAYOUT, meter, noise="medium", seed=9) as a,
        CameraServer(LAYOUT, meter, noise="medium", seed=9) as b,
    ):
        assert get(a.url)[2] == get(b.url)[2]
        assert a.geometry == b.geometry


def test_bad_construction_and_lifecycle(meter: Meter) -> None:
    with pytest.raises(ValueError, match="unknown noise preset 'foggy'"):
        CameraServer(LAYOUT, meter, noise="foggy")
    cam = CameraServer(LAYOUT, meter)
    with pytest.raises(RuntimeError, match="not started"):
        _ = cam.url
    cam.start()
    try:
        with pytest.raises(RuntimeError, match="starts once"):
            cam.start()
    finally:
        cam.stop()
    assert refuses(cam.port)


# -- transport faults --------------------------------------------------------------------------


def recovers(cam: CameraServer) -> None:
    """After the fault is cleared the very next request works."""
    cam.faults.clear()
    _, _, body = get(cam.url)
    decode(body)


def test_delay_times_the_client_out(camera: CameraServer) -> None:
    camera.faults.delay_s = 30.0
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        get(camera.url, timeout=TIMEOUT)
    recovers(camera)


def test_small_delay_still_answers(camera: CameraServer) -> None:
    camera.faults.delay_s = 0.05
    _, _, body = get(camera.url)
    decode(body)


def test_silent_accepts_but_never_answers(camera: CameraServer) -> None:
    camera.faults.silent = True
    with socket.create_connection(("127.0.0.1", camera.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET /snapshot.png HTTP/1.0\r\n\r\n")
        with pytest.raises(TimeoutError):
            sock.recv(1)
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        get(camera.url, timeout=TIMEOUT)
    recovers(camera)


def test_vanished_stops_listening_and_returns_on_the_same_port(camera: CameraServer) -> None:
    port = camera.port
    camera.faults.vanished = True
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        get(camera.url, timeout=TIMEOUT)
    assert wait_until(lambda: refuses(port))
    camera.faults.clear()
    assert wait_until(lambda: accepts(port))
    assert camera.port == port
    recovers(camera)


def test_garble_breaks_the_png(camera: CameraServer) -> None:
    camera.faults.garble_rate = 0.01
    for _ in range(3):
        status, headers, body = get(camera.url, timeout=TIMEOUT)
        assert status == 200 and len(body) == int(headers["Content-Length"])
        # Pillow reports a garbled PNG as SyntaxError, OSError or (a chunk type that is no
        # longer ASCII) UnicodeDecodeError, a ValueError.
        with pytest.raises((SyntaxError, OSError, ValueError)):
            decode(body)
    recovers(camera)


def test_dropped_bytes_leave_the_body_short(camera: CameraServer) -> None:
    camera.faults.drop_rate = 0.01
    with pytest.raises(http.client.IncompleteRead):
        get(camera.url, timeout=TIMEOUT)
    recovers(camera)


def test_faults_object_can_be_shared() -> None:
    faults = TransportFaults(seed=1)
    with CameraServer(LAYOUT, Meter(DisplayState("1")), faults=faults) as cam:
        assert cam.faults is faults


# -- resources ---------------------------------------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def camera_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("camera-")]


def test_start_stop_50_times_leaks_nothing(meter: Meter) -> None:
    with CameraServer(LAYOUT, meter) as warm:  # first use loads codecs and caches
        get(warm.url)
    threads, fds = threading.active_count(), open_fds()
    for _ in range(50):
        with CameraServer(LAYOUT, meter) as cam:
            get(cam.url)
            assert camera_threads()
    assert camera_threads() == []
    assert threading.active_count() <= threads
    assert open_fds() <= fds


def test_stop_ends_held_and_idle_connections(meter: Meter) -> None:
    threads, fds = threading.active_count(), open_fds()
    cam = CameraServer(LAYOUT, meter).start()
    idle = socket.create_connection(("127.0.0.1", cam.port), timeout=TIMEOUT)
    held = socket.create_connection(("127.0.0.1", cam.port), timeout=TIMEOUT)
    cam.faults.silent = True
    held.sendall(b"GET /snapshot.png HTTP/1.0\r\n\r\n")
    assert wait_until(lambda: threading.active_count() >= threads + 3)
    cam.stop()
    assert camera_threads() == []
    assert threading.active_count() <= threads
    assert held.recv(1) == b"" and idle.recv(1) == b""  # the camera hung up on both
    idle.close()
    held.close()
    assert open_fds() <= fds
