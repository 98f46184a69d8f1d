"""The IP camera pointed at the simulated meter's LCD.

Like a lab's network camera it serves a still on each request: ``GET /snapshot.png`` renders
what the meter shows right now (``X-Frame`` header: the frame number). ``GET /`` is a small
JSON status and ``GET /layout.yaml`` the segment map as calibrated to this camera's view, i.e.
the meter model's layout warped by the camera's fixed perspective, in frame pixels.

Transport faults (:class:`~simlab.faults.TransportFaults`, at ``.faults``) act per request:
``delay_s`` holds each answer back, ``silent`` accepts the connection and never answers,
``vanished`` closes the listening socket (and drops open connections) until cleared, then
listens again on the same port; ``garble_rate``/``drop_rate`` corrupt the body bytes, so a
PNG no longer decodes (a reader detects it with ``PIL.Image.verify()``, which checks every
chunk's CRC) or arrives short of its ``Content-Length``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import secrets
import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from simlab.faults import TransportFaults
from simlab.lcd import (
    NOISE_LEVELS,
    DisplayState,
    NoiseLevel,
    SegmentLayout,
    frame_geometry,
    render_png,
)

_POLL_S = 0.02
"""How often the serving thread and held requests look at the faults and the stop flag."""


class _Listener(ThreadingHTTPServer):
    """The HTTP listener; request threads are daemons that the camera joins itself."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, camera: CameraServer, address: tuple[str, int]) -> None:
        self.camera = camera
        super().__init__(address, _Handler)
        self.timeout = _POLL_S

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can stall on a
        # machine without DNS; the name is not needed.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"camera-request-{self.camera.port}",
            daemon=True,
        )
        self.camera._track(thread)
        thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up, or a connection dropped by a fault: nothing to report.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Listener
    server_version = "SimLabCamera/1"

    def setup(self) -> None:
        # A client that connects and sends nothing must not hold a thread for ever.
        self.timeout = self.server.camera._request_timeout
        super().setup()
        self.server.camera._connections_add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.camera._connections_discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        camera = self.server.camera
        if not camera._hold_for_faults():
            self.close_connection = True
            return
        path = self.path.split("?", 1)[0]
        if path == "/snapshot.png":
            try:
                body, frame = camera.snapshot()
            except Exception as exc:  # the meter side failed; say so like a camera would
                self._send(503, "application/json", _json({"error": f"no image: {exc}"}))
                return
            self._send(200, "image/png", body, {"X-Frame": str(frame)})
        elif path == "/":
            self._send(200, "application/json", _json(camera.status()))
        elif path == "/layout.yaml":
            self._send(200, "application/yaml", camera.frame_layout_yaml.encode("utf-8"))
        else:
            self._send(404, "application/json", _json({"error": f"no resource {path}"}))

    def _send(
        self, code: int, ctype: str, body: bytes, extra: dict[str, str] | None = None
    ) -> None:
        faults = self.server.camera.faults
        sent = faults.apply(body)
        if faults.silent or faults.vanished:
            self.close_connection = True
            return
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        # The length of what the camera meant to send: dropped bytes show as a short body.
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(sent)


def _json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True).encode("utf-8") + b"\n"


class CameraServer:
    """An HTTP snapshot camera on 127.0.0.1 showing ``state_source()`` on ``layout``.

    ``noise`` is a preset name from :data:`~simlab.lcd.NOISE_LEVELS` or a
    :class:`~simlab.lcd.NoiseLevel`. ``seed`` fixes the camera's perspective and its noise
    sequence (``None``: a random but fixed perspective). ``port=0`` picks a free port.
    ``request_timeout`` bounds how long a connected client may take to send its request.
    """

    def __init__(
        self,
        layout: SegmentLayout,
        state_source: Callable[[], DisplayState],
        *,
        noise: str | NoiseLevel = "none",
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: TransportFaults | None = None,
        request_timeout: float = 5.0,
    ) -> None:
        if isinstance(noise, str):
            if noise not in NOISE_LEVELS:
                known = ", ".join(NOISE_LEVELS)
                raise ValueError(f"unknown noise preset {noise!r} (known: {known})")
            self.noise_name, self.noise = noise, NOISE_LEVELS[noise]
        else:
            self.noise_name, self.noise = "custom", NoiseLevel(*noise)
        self.layout = layout
        self.seed = secrets.randbits(31) if seed is None else seed
        self.geometry = frame_geometry(layout, self.noise.skew, self.seed)
        # Without skew the camera sees the layout as designed.
        self.frame_layout = layout.warped(self.geometry) if self.noise.skew else layout
        self.faults = faults if faults is not None else TransportFaults()
        self._state_source = state_source
        self._host, self._port = host, port
        self._request_timeout = request_timeout
        self._lock = threading.Lock()
        self._frames = 0
        self._stopping = threading.Event()
        self._listener: _Listener | None = None
        self._serve_thread: threading.Thread | None = None
        self._threads: set[threading.Thread] = set()
        self._connections: set[socket.socket] = set()
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> CameraServer:
        """Listen and serve in a daemon thread; the port is known when this returns."""
        if self._started:
            raise RuntimeError("a camera server starts once; make a new one")
        self._started = True
        self._listener = self._listen()
        self._port = self._listener.server_address[1]
        self._serve_thread = threading.Thread(
            target=self._serve, name=f"camera-{self._port}", daemon=True
        )
        self._serve_thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving: close the listening socket and every connection, join all threads."""
        self._stopping.set()
        if self._serve_thread is not None:
            self._serve_thread.join(timeout)
            self._serve_thread = None
        self._close_listener()
        self._drop_connections()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
        with self._lock:
            self._threads = {t for t in self._threads if t.is_alive()}

    def __enter__(self) -> CameraServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if not self._started:
            raise RuntimeError("the camera server is not started")
        return self._port

    @property
    def url(self) -> str:
        """The snapshot URL (``http://127.0.0.1:<port>/snapshot.png``)."""
        return f"http://{self._host}:{self.port}/snapshot.png"

    @property
    def frames(self) -> int:
        """Snapshots rendered so far."""
        with self._lock:
            return self._frames

    # -- what it serves ----------------------------------------------------------------------

    def snapshot(self) -> tuple[bytes, int]:
        """Render the current state: (PNG bytes, frame number counted from 1)."""
        state = self._state_source()
        lit = state.segments(self.layout)
        with self._lock:
            self._frames += 1
            frame = self._frames
        png = render_png(
            self.layout,
            lit,
            noise=self.noise.noise,
            blur=self.noise.blur,
            skew=self.noise.skew,
            seed=self.seed,
            frame=frame,
        )
        return png, frame

    @functools.cached_property
    def frame_layout_yaml(self) -> str:
        """The ``GET /layout.yaml`` document: :attr:`frame_layout` as YAML."""
        return self.frame_layout.to_yaml(
            f"Segment map of {self.layout.name} as seen by this camera (frame pixels)."
        )

    def status(self) -> dict[str, Any]:
        """The ``GET /`` document."""
        return {
            "device": "simlab camera",
            "model": self.layout.name,
            "size": list(self.layout.size),
            "digits": self.layout.digit_count,
            "frames": self.frames,
            "noise": self.noise_name,
            "glass_corners": [list(p) for p in self.geometry.glass_corners],
            "snapshot": "/snapshot.png",
            "layout": "/layout.yaml",
        }

    # -- internals ---------------------------------------------------------------------------

    def _listen(self) -> _Listener:
        return _Listener(self, (self._host, self._port))

    def _serve(self) -> None:
        while not self._stopping.is_set():
            if self.faults.vanished:
                if self._listener is not None:
                    self._close_listener()
                    self._drop_connections()
                self._stopping.wait(_POLL_S)
                continue
            if self._listener is None:
                try:
                    self._listener = self._listen()
                except OSError:
                    # Someone else holds the port for now; a real device would retry too.
                    self._stopping.wait(_POLL_S * 5)
                    continue
            try:
                self._listener.handle_request()
            except (OSError, ValueError):
                if self._stopping.is_set():
                    break

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.server_close()

    def _hold_for_faults(self) -> bool:
        """Apply delay and silence to a request; False when it must go unanswered."""
        faults = self.faults
        if faults.vanished:
            return False
        if faults.delay_s and self._stopping.wait(faults.delay_s):
            return False
        if faults.silent:
            # Keep the connection open and unanswered until the fault clears, then hang up:
            # a request the device ignored stays ignored.
            while faults.silent and not faults.vanished:
                if self._stopping.wait(_POLL_S):
                    break
            return False
        return not (faults.vanished or self._stopping.is_set())

    def _track(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads = {t for t in self._threads if t.is_alive()}
            self._threads.add(thread)

    def _connections_add(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def _connections_discard(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    def _drop_connections(self) -> None:
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
