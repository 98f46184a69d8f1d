"""A simulated serial device's port: a pseudo-terminal served like a USB-serial adapter.

The harness opens :attr:`PtyEndpoint.path` (or the stable :attr:`PtyEndpoint.link`) with
pyserial exactly as it opens ``/dev/ttyUSB0`` on a bench; the device behind it gets the bytes
the client writes and answers through :meth:`PtyEndpoint.write`, which passes every reply
through the endpoint's :class:`~simlab.faults.TransportFaults`. A simulated device builds
on :class:`PtyDevice`, which serves it on an endpoint, and keeps only its protocol.

Line speed. Bytes cross a pty at any "rate", but a real serial link only works when both ends
agree on the speed. The speed the client set (pyserial's ``baudrate``) is read from the
slave's termios (on Linux, ``tcgetattr`` on the master returns the slave's settings). When the
device declares its own speed (:attr:`PtyEndpoint.baudrate`), a reply written while the
client listens at another speed arrives as garbage: every byte becomes ``0x00``, as a UART
sees a framing error. Received bytes are accepted whatever the client's speed, because a pty
cannot tell at which speed a byte was written (the client may change speed between writing
and our read, as IEC 62056-21's baud switch does).

Hang-up. Until a client opens the slave, and after the last client closes it, the master
reports POLLHUP and reads fail with EIO; the endpoint then drops what the device writes (no
one listens) and calls ``on_hangup`` once per disconnect, so a device releases whatever it
holds (a keypad robot its actuators).

Parity. A pty has neither parity nor character size: Linux forces the slave to CS8 without
PARENB, and some kernels answer EINVAL to a ``tcsetattr`` that changes no flag or speed the
pty keeps (c_cc does not count), which is what a 7E1 client asking for parity gets when its
other settings are already in place. So that a 7E1 client can always open the port, the
endpoint leaves the slave raw with CSTOPB set (no effect on a pty) whenever no client has
it: opening with one stop bit then always changes something. Reconfiguring a 7E1 port
without changing its speed (a new timeout, the same baud rate) can still fail there; a driver
for a 7E1 device is best written 8N1 with even parity carried in bit 7 by the driver, which
puts the same 10-bit frames on a real line and needs nothing from a pty.

Vanish. ``faults.vanished`` closes the pty: the path disappears and an open client gets I/O
errors. Clearing it opens a new pty on a different path; :attr:`link`, when given, is a
symlink re-pointed to the new slave, the way udev's ``/dev/serial/by-id`` names survive a
replug. While vanished the link is removed.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import termios
import threading
import time
import tty
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Self

from simlab.faults import TransportFaults

log = logging.getLogger(__name__)

_RATES = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)
_SPEEDS: dict[int, int] = {
    getattr(termios, f"B{rate}"): rate for rate in _RATES if hasattr(termios, f"B{rate}")
}

_POLL_S = 0.05  # longest the reader sleeps before looking at faults and stop again
_RETRY_S = 0.02  # how often a vanished or client-less endpoint looks again
_WRITE_TIMEOUT_S = 1.0  # a client that stops reading makes the device drop bytes, not block
_GARBAGE = 0x00  # what a byte sent at the wrong line speed arrives as


class PtyEndpoint:
    """One pty pair serving one simulated device.

    ``on_bytes`` gets every chunk the client writes; ``on_hangup`` is called when the client
    goes away (closes the port, or the port vanishes). Both run on the endpoint's reader
    thread, one at a time. The reader thread is a daemon and is joined by :meth:`close`.
    """

    def __init__(
        self,
        on_bytes: Callable[[bytes], None],
        *,
        on_hangup: Callable[[], None] | None = None,
        faults: TransportFaults | None = None,
        link: str | None = None,
        baudrate: int | None = None,
        name: str = "pty",
    ) -> None:
        if link is not None and os.path.lexists(link) and not os.path.islink(link):
            raise FileExistsError(f"link path {link!r} exists and is not a symlink")
        self._on_bytes = on_bytes
        self._on_hangup = on_hangup
        self.faults = faults if faults is not None else TransportFaults()
        self.link = link
        self.baudrate = baudrate
        self._lock = threading.Lock()  # guards _master/_path against vanish and close
        self._stop = threading.Event()
        self._closed = False
        self._connected = False
        self._master: int | None = None
        self._path = ""
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        try:
            self._master, self._path = _open_pty(avoid=None)
            self._point_link()
        except BaseException:
            self._close_fds()
            raise
        self._thread = threading.Thread(target=self._run, name=f"{name}-pty", daemon=True)
        self._thread.start()

    # -- what the client and the device see -------------------------------------------------

    @property
    def path(self) -> str:
        """The slave device the client opens (changes after a vanish/return)."""
        return self._path

    @property
    def address(self) -> str:
        """The address a bench file should name: the stable link if any, else the path."""
        return self.link or self._path

    @property
    def connected(self) -> bool:
        """Whether a client has the port open right now."""
        return self._connected

    def client_baudrate(self) -> int | None:
        """The line speed the client set on its end (None when the pty is gone)."""
        with self._lock:
            if self._master is None:
                return None
            return self._speed_of(self._master)

    def write(self, data: bytes) -> int:
        """Send ``data`` to the client through the transport faults; returns bytes sent.

        Never blocks for long: a delay fault waits ``faults.delay_s``, a client that stops
        reading makes the rest of the reply drop after one second, no client drops it all.
        """
        if not data:
            return 0
        delay = self.faults.delay_s
        if delay > 0 and self._stop.wait(delay):
            return 0
        out = self.faults.apply(data)
        if not out:
            return 0
        with self._lock:
            master = self._master
            if master is None:
                return 0
            if self.baudrate is not None and self._speed_of(master) != self.baudrate:
                out = bytes([_GARBAGE]) * len(out)
            return _write_all(master, out)

    def close(self) -> None:
        """Stop the reader thread and close every descriptor; removes the link. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if threading.current_thread() is not self._thread:
            self._thread.join()
        with self._lock:
            self._close_fds()

    def __enter__(self) -> PtyEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reader thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.faults.vanished:
                if self._master is not None:
                    self._vanish()
                self._stop.wait(_RETRY_S)
                continue
            if self._master is None and not self._restore():
                self._stop.wait(_RETRY_S)
                continue
            self._serve_once()

    def _serve_once(self) -> None:
        master = self._master
        assert master is not None
        poller = select.poll()
        poller.register(master, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        events = dict(poller.poll(int(_POLL_S * 1000)))
        if self._wake_r in events:
            with contextlib.suppress(OSError):
                os.read(self._wake_r, 64)
            return
        ev = events.get(master, 0)
        if ev & select.POLLIN:
            self._read_available(master)
        if ev & (select.POLLHUP | select.POLLERR):
            # No client has the slave open: EIO territory. Wait instead of spinning.
            self._set_connected(False)
            with contextlib.suppress(termios.error):
                _await_client(master)
            self._stop.wait(_RETRY_S)
        else:
            self._set_connected(True)

    def _read_available(self, master: int) -> None:
        while not self._stop.is_set():
            try:
                data = os.read(master, 4096)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EIO:  # the last client closed the slave
                    return
                raise
            if not data:
                return
            self._set_connected(True)
            try:
                self._on_bytes(data)
            except Exception:
                log.exception("device handler failed on %r", data[:64])

    def _set_connected(self, connected: bool) -> None:
        was, self._connected = self._connected, connected
        if was and not connected:
            self._hangup()

    def _hangup(self) -> None:
        if self._on_hangup is None:
            return
        try:
            self._on_hangup()
        except Exception:
            log.exception("device hang-up handler failed")

    def _vanish(self) -> None:
        with self._lock:
            if self._master is not None:
                os.close(self._master)
                self._master = None
            self._remove_link()
        self._set_connected(False)

    def _restore(self) -> bool:
        try:
            master, path = _open_pty(avoid=self._path)
        except OSError:
            log.exception("cannot open a new pty")
            return False
        with self._lock:
            self._master, self._path = master, path
            self._point_link()
        return True

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _speed_of(master: int) -> int | None:
        try:
            ispeed = termios.tcgetattr(master)[4]
        except termios.error:
            return None
        return _SPEEDS.get(ispeed)

    def _point_link(self) -> None:
        if self.link is None:
            return
        tmp = f"{self.link}.{os.getpid()}.{threading.get_ident()}.tmp"
        os.symlink(self._path, tmp)
        os.replace(tmp, self.link)

    def _remove_link(self) -> None:
        if self.link is not None and os.path.islink(self.link):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.link)

    def _close_fds(self) -> None:
        if self._master is not None:
            os.close(self._master)
            self._master = None
        self._remove_link()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1


class PtyDevice(ABC):
    """A simulated serial device served on its own :class:`PtyEndpoint`.

    A device speaks its protocol in :meth:`_on_bytes`, lets go of what a client left behind
    in :meth:`_on_hangup` and answers through ``self._endpoint.write``. A subclass calls
    ``super().__init__`` last: the reader thread starts at once and may call :meth:`_on_bytes`.
    """

    def __init__(
        self,
        *,
        name: str,
        baudrate: int | None,
        link: str | None = None,
        faults: TransportFaults | None = None,
    ) -> None:
        self._endpoint = PtyEndpoint(
            self._on_bytes,
            on_hangup=self._on_hangup,
            faults=faults,
            link=link,
            baudrate=baudrate,
            name=name,
        )

    @property
    def path(self) -> str:
        return self._endpoint.path

    @property
    def address(self) -> str:
        """What a bench file names: the stable link if given, else the pty path."""
        return self._endpoint.address

    @property
    def faults(self) -> TransportFaults:
        return self._endpoint.faults

    @property
    def endpoint(self) -> PtyEndpoint:
        return self._endpoint

    def close(self) -> None:
        """Close the pty and join its thread. Idempotent."""
        self._endpoint.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def _on_bytes(self, data: bytes) -> None:
        """What the client wrote, on the reader thread."""

    @abstractmethod
    def _on_hangup(self) -> None:
        """The client went away (closed the port, or the port vanished), on the reader
        thread."""


def _open_pty(avoid: str | None) -> tuple[int, str]:
    """A raw, non-blocking pty master and its slave path, not named ``avoid``.

    The kernel hands out the lowest free pty number, which is usually the one just closed;
    a re-enumerated USB device gets a new name, and so does this.
    """
    held: list[int] = []
    try:
        while True:
            master, slave = os.openpty()
            try:
                _await_client(slave)
                path = os.ttyname(slave)
            finally:
                os.close(slave)
            if path != avoid:
                os.set_blocking(master, False)
                return master, path
            held.append(master)
    finally:
        for fd in held:
            os.close(fd)


def _await_client(fd: int) -> None:
    """Raw mode plus CSTOPB, so that the next client's open changes a flag (see Parity)."""
    if termios.tcgetattr(fd)[2] & termios.CSTOPB:
        return
    tty.setraw(fd)
    attrs = termios.tcgetattr(fd)
    attrs[2] |= termios.CSTOPB
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _write_all(master: int, data: bytes) -> int:
    """Write to the master; stop on hang-up or after ``_WRITE_TIMEOUT_S`` without progress."""
    poller = select.poll()
    poller.register(master, select.POLLOUT)
    sent = 0
    deadline = time.monotonic() + _WRITE_TIMEOUT_S
    while sent < len(data):
        events = dict(poller.poll(max(0, int((deadline - time.monotonic()) * 1000))))
        ev = events.get(master, 0)
        if ev & (select.POLLHUP | select.POLLERR) or not ev & select.POLLOUT:
            break  # no client listening, or it stopped reading
        try:
            n = os.write(master, data[sent:])
        except BlockingIOError:
            continue
        except OSError:
            break
        sent += n
        deadline = time.monotonic() + _WRITE_TIMEOUT_S
    return sent
