"""Serial side of the edge reader: open a TIC dongle with pyserial, read raw bytes, and decide
the baud rate from what decodes.

* ``open_port(url, baud)``: a path (``/dev/ttyUSB0``, ``/dev/serial/by-id/...``,
  ``/dev/ttyAMA0``) or any pyserial URL (``socket://host:port``, ``rfc2217://host:port``),
  7E1, no flow control, exclusive on POSIX paths (protocol.md §5.4, §6.1).
* ``BaudDetector``: sans-IO. It is told how many bytes arrived and how many valid groups the
  decoder found, and says when to try the other rate. TIC is 1200 Bd (historic) or 9600 Bd
  (standard), both 7E1; a wrong rate gives garbage, never an error (protocol.md §1.8), so the
  only signal is "valid checksums or not". The rate that worked is remembered and tried first
  after a reconnect; a meter switched to the other mode shows up as bytes without valid groups,
  which triggers a new detection.
* ``classify_error``: a short reason for logs and ``linky_edge_device_errors_total``.
"""

from __future__ import annotations

import errno
import os
import select
import termios
from dataclasses import dataclass, field

import serial

__all__ = ["BAUD_RATES", "open_port", "read_chunk", "poll_fd", "read_available",
           "BaudDetector", "classify_error", "SERIAL_ERRORS", "POLL_SECONDS"]

BAUD_RATES = (1200, 9600)  # historic first: the factory default of a Linky (54E §3.3)
# pyserial raises SerialException for most things, but some termios/OS errors escape it
# (linkytic const.py LINKY_IO_ERRORS; protocol.md §5.4).
SERIAL_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, termios.error, OSError)
READ_TIMEOUT = 0.2  # seconds a read waits for more bytes; bounds wake-ups to ~5/s per device
# Local ports are polled, not waited on: a wake-up per arrival (a USB adapter delivers every
# few ms) costs more CPU than reading what piled up every 0.2 s (192 bytes at 9600 Bd, far
# below the kernel's 4 KiB tty buffer). Measured in bench/edge_reader.py.
POLL_SECONDS = 0.2
READ_SIZE = 4096


def open_port(url: str, baud: int, *, timeout: float = READ_TIMEOUT) -> serial.SerialBase:
    """Open ``url`` at ``baud`` 7E1 for reading; raises one of ``SERIAL_ERRORS``."""
    kwargs: dict[str, object] = dict(
        baudrate=baud, bytesize=serial.SEVENBITS, parity=serial.PARITY_EVEN,
        stopbits=serial.STOPBITS_ONE, timeout=timeout, xonxoff=False, rtscts=False,
        dsrdtr=False,
    )
    if "://" not in url:
        # flock: a second reader on the same port would steal bytes from the first and make
        # both see "device reports readiness to read but returned no data" (protocol.md §5.4).
        kwargs["exclusive"] = True
    port = serial.serial_for_url(url, do_not_open=True, **kwargs)
    try:
        port.open()
    except termios.error as exc:
        if "://" in url or not exc.args or exc.args[0] != errno.EINVAL:
            raise
        # A pseudo-terminal (the simulator, socat, a container's pty) cannot do 7E1: Linux
        # forces CS8 without parity on ptys, and a recent kernel answers EINVAL to a
        # tcsetattr of which nothing could be applied, i.e. when the speed is already the
        # one asked for (a reopen). Changing the speed first makes pyserial's settings
        # applicable again. Real UARTs never get here.
        _nudge_speed(url)
        port.open()
    return port


def _nudge_speed(path: str) -> None:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        attrs = termios.tcgetattr(fd)
        attrs[4] = attrs[5] = termios.B38400
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    finally:
        os.close(fd)


def read_chunk(port: serial.SerialBase) -> bytes:
    """Whatever arrives within ``READ_TIMEOUT`` (up to 4 KiB); b"" when the line is quiet.

    Blocking: the edge daemon runs it in a worker thread. Reading a large chunk with a timeout
    (rather than ``in_waiting or 1``) keeps the wake-ups per device at a few per second.
    """
    return port.read(READ_SIZE)


def poll_fd(port: serial.SerialBase) -> int | None:
    """The file descriptor to poll without a thread (local POSIX ports), else None."""
    fd = getattr(port, "fd", None)
    return fd if isinstance(fd, int) and fd >= 0 else None


def read_available(fd: int) -> bytes:
    """Non-blocking: every byte already received on ``fd`` (b"" if none).

    Same disconnect test as pyserial's ``read``: the descriptor polls readable but yields no
    data (a USB adapter that was pulled, a pty whose other side closed).
    """
    chunks = []
    while True:
        readable, _, _ = select.select([fd], [], [], 0)
        if not readable:
            break
        try:
            data = os.read(fd, READ_SIZE * 16)
        except BlockingIOError:
            break
        if not data:
            if chunks:
                break
            raise serial.SerialException(
                "device reports readiness to read but returned no data "
                "(device disconnected or multiple access on port?)")
        chunks.append(data)
        if len(data) < READ_SIZE * 16:
            break
    return b"".join(chunks)


def classify_error(exc: BaseException) -> str:
    """``absent`` | ``permission`` | ``busy`` | ``disconnected`` | ``io`` | ``other``."""
    err = getattr(exc, "errno", None)
    text = str(exc).lower()
    if err == errno.ENOENT or "no such file" in text:
        return "absent"
    if err in (errno.EACCES, errno.EPERM) or "permission denied" in text:
        return "permission"
    if err == errno.EBUSY or "could not exclusively lock" in text or "resource busy" in text:
        return "busy"
    if "returned no data" in text or "disconnected" in text or err == errno.EIO or \
            "input/output error" in text or "read failed" in text:
        return "disconnected"
    if isinstance(exc, (OSError, termios.error, serial.SerialException)):
        return "io"
    return "other"


@dataclass
class BaudDetector:
    """Decide which baud rate to use from decoding results (no I/O, no clock of its own).

    ``probe_seconds[baud]``: how long a rate is given, counted from the first byte received at
    that rate, before trying the other one. At 1200 Bd a historic frame lasts about 2.3 s and
    the first one after opening is usually partial, hence ~5 s; a 9600 Bd standard frame is at
    most 1.5 s. ``relock_seconds``: a locked rate that receives bytes but no valid group for
    this long is re-detected (the meter was switched to the other mode). A silent line never
    triggers a switch: silence says nothing about the rate.
    """

    preferred: int | None = None  # remembered rate (or forced with ``fixed``)
    fixed: bool = False
    probe_seconds: dict[int, float] = field(default_factory=lambda: {1200: 5.0, 9600: 3.0})
    relock_seconds: float = 10.0
    baud: int = 0
    locked: bool = False
    _since: float | None = None  # first byte at this rate since the last valid group/switch

    def __post_init__(self) -> None:
        self.baud = self.preferred or BAUD_RATES[0]
        self.locked = self.fixed

    def observe(self, now: float, received: int, valid_groups: int) -> int | None:
        """Report one read; returns the rate to switch to, or None to keep the current one."""
        if valid_groups > 0:
            self.locked = True
            self.preferred = self.baud
            self._since = None
            return None
        if self.fixed or received <= 0:
            return None
        if self._since is None:
            self._since = now
            return None
        limit = self.relock_seconds if self.locked else self.probe_seconds.get(self.baud, 5.0)
        if now - self._since < limit:
            return None
        self.locked = False
        self.baud = BAUD_RATES[1] if self.baud == BAUD_RATES[0] else BAUD_RATES[0]
        self._since = None
        return self.baud

    def reopened(self) -> None:
        """After a reconnect: start from the remembered rate, give it a fresh probe window."""
        self.baud = self.preferred or self.baud
        self.locked = self.fixed
        self._since = None
