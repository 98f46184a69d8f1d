"""labgrid's exporter, with serial ports that are ready as soon as ser2net listens.

labgrid's own exporter starts ser2net when a place is acquired and then waits a fixed half
second per serial port (to see that it did not exit at once), after asking ser2net for its
version each time: a bench with three serial devices costs every campaign 1.5 s before its
first token. Here ser2net's version is asked once, and a port is ready when ser2net listens
on it (read from the kernel's socket table, without connecting: a connection would open the
device); ser2net exiting before that is still an error. Everything else is labgrid's
exporter as it is. Run as ``python -m stslab.lab.exporter`` with ``labgrid-exporter``'s
arguments (``stslab lab export`` does).
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from pathlib import Path

#: How long ser2net may take to listen on its port.
LISTEN_S = 10.0
#: The kernel's tables of TCP sockets (IPv4 and IPv6).
TCP_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
LISTEN_STATE = "0A"


def listening(port: int, tables: tuple[Path, ...] = TCP_TABLES) -> bool | None:
    """Whether some socket listens on TCP ``port``; None when the kernel does not say."""
    wanted = f":{port:04X}"
    found_table = False
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        found_table = True
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[1].endswith(wanted) and fields[3] == LISTEN_STATE:
                return True
    return False if found_table else None


@functools.cache
def ser2net_version(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False).stdout
    try:
        return tuple(int(x) for x in out.split()[-1].split("."))
    except (IndexError, ValueError):
        return ()


def ser2net_argv(binary: str, port: int, device: str, speed: int) -> list[str]:
    """ser2net (4.2 or later, YAML configuration on the command line) serving ``device`` as
    an RFC 2217 port on TCP ``port``, in the foreground, without a configuration file."""
    lines = [
        "connection: &stslab",
        f"  accepter: telnet(rfc2217,mode=server),tcp,{port}",
        f"  connector: serialdev(nouucplock=true),{device},{speed}n81,local",
        "  options:",
        "    max-connections: 10",
    ]
    argv = [binary, "-d", "-n"]
    for line in lines:
        argv += ["-Y", line]
    return argv


def _serial_export_class() -> type:
    from labgrid.remote.exporter import ExporterError, SerialPortExport
    from labgrid.util import get_free_port

    class ReadyWhenListening(SerialPortExport):  # type: ignore[misc, valid-type]
        """A serial port served by ser2net, ready when ser2net listens on its port."""

        def _start(self, start_params: dict) -> None:
            tables = any(t.exists() for t in TCP_TABLES)
            if ser2net_version(self.ser2net_bin) < (4, 2) or not tables:
                return super()._start(start_params)  # old ser2net, or no socket table
            assert self.local.avail and self.child is None
            device = start_params["path"]
            self.port = get_free_port()
            argv = ser2net_argv(self.ser2net_bin, self.port, device, self.local.speed)
            self.logger.info("Starting ser2net with: %s", " ".join(argv))
            self.child = subprocess.Popen(argv)
            deadline = time.monotonic() + LISTEN_S
            while not listening(self.port):
                if self.child.poll() is not None:
                    self.child = None
                    raise ExporterError(f"ser2net for {device} exited at once")
                if time.monotonic() > deadline:
                    self.child.kill()
                    self.child.wait()
                    self.child = None
                    raise ExporterError(f"ser2net for {device} did not listen within "
                                        f"{LISTEN_S:g} s")  # fmt: skip
                time.sleep(0.005)
            self.logger.info("started ser2net for %s on port %d", device, self.port)

    return ReadyWhenListening


def main() -> None:
    from labgrid.remote import exporter

    ready = _serial_export_class()
    for cls in ("RawSerialPort", "USBSerialPort"):
        exporter.exports[cls] = ready
    sys.argv[0] = "labgrid-exporter"
    exporter.main()


if __name__ == "__main__":
    main()
