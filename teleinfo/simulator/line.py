"""Where simulated meters send their bytes: pseudo-terminals that behave like a dongle's
serial line, or a file.

``PtyLine`` is a real pseudo-terminal (``os.openpty``): the reader opens the slave path (or a
stable symlink to it, like ``/dev/serial/by-id/...``) with pyserial exactly as it would open a
dongle. Like a real line it does not wait for anyone: bytes written while nobody reads, or
while the pty buffer is full, are lost. It also emulates the one serial-level effect the
reader must handle: when the reader's baud rate (read back from the tty settings) is not the
meter's, it delivers garbage instead of the frame, as a UART sampling at the wrong rate does.
``unplug()`` closes the pty (the reader gets an I/O error and the path disappears),
``replug()`` opens a new one behind the same link.
"""

from __future__ import annotations

import errno
import os
import random
import termios
import tty
from pathlib import Path
from typing import BinaryIO, Protocol

__all__ = ["Line", "PtyLine", "FileLine"]

_SPEEDS = {getattr(termios, f"B{b}"): b for b in (300, 600, 1200, 2400, 4800, 9600, 19200,
                                                  38400, 57600, 115200)}
# What a UART sampling a TIC signal at the wrong rate delivers: runs of 0 and 1 bits, framing
# errors read as NUL, bit 7 often set.
_GARBAGE = bytes([0x00, 0x80, 0xC0, 0xE0, 0xF0, 0xF8, 0xFC, 0xFE, 0xFF, 0x78, 0x7E, 0x60])


class Line(Protocol):
    path: str | None

    def write(self, data: bytes) -> int: ...

    def close(self) -> None: ...


class PtyLine:
    """A pseudo-terminal standing in for a dongle at ``baud``; optional stable ``link``."""

    def __init__(self, baud: int, link: Path | None = None, seed: int = 0) -> None:
        self.baud = baud
        self.link = Path(link) if link is not None else None
        self.path: str | None = None
        self.dropped_bytes = 0
        self.garbled_bytes = 0
        self._master: int | None = None
        self._slave: int | None = None
        self._rng = random.Random(seed)
        self.replug()

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def write(self, data: bytes) -> int:
        """Send ``data`` (non-blocking); returns how many of its bytes a reader can get
        (0 when they were garbled by a baud mismatch)."""
        if self._master is None:
            self.dropped_bytes += len(data)
            return 0
        rate = self._reader_baud()
        garbled = rate != self.baud
        if garbled:
            data = self._garble(data, rate)
            self.garbled_bytes += len(data)
        try:
            written = os.write(self._master, data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            if exc.errno not in (errno.EIO, errno.EAGAIN):
                raise
            written = 0
        self.dropped_bytes += len(data) - written
        return 0 if garbled else written

    def unplug(self) -> None:
        """Pull the dongle: close both ends and remove the link."""
        if self.link is not None:
            self.link.unlink(missing_ok=True)
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        self.path = None

    def replug(self) -> None:
        """Plug it back: a new pty, the link pointing to it."""
        if self._master is not None:
            return
        master, slave = os.openpty()
        # Raw from the start: no echo, no CR/LF translation before the reader configures it.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        if self.link is not None:
            self.link.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.link.with_name(self.link.name + ".tmp")
            tmp.unlink(missing_ok=True)
            os.symlink(self.path, tmp)
            os.replace(tmp, self.link)

    def close(self) -> None:
        self.unplug()

    def _reader_baud(self) -> int:
        try:
            attrs = termios.tcgetattr(self._slave)  # shared by every fd of this tty
        except termios.error:
            return self.baud
        return _SPEEDS.get(attrs[5], 0)  # ospeed == ispeed as pyserial sets both

    def _garble(self, data: bytes, rate: int) -> bytes:
        ratio = min(8.0, max(rate, 1) / self.baud)
        n = max(1, int(len(data) * ratio)) if data else 0
        return bytes(self._rng.choice(_GARBAGE) for _ in range(n))


class FileLine:
    """Appends everything to a file (a recording, as ``teleinfo record`` would make)."""

    def __init__(self, path: Path) -> None:
        self.path: str | None = str(path)
        self._f: BinaryIO = open(path, "ab")

    def write(self, data: bytes) -> int:
        self._f.write(data)
        return len(data)

    def close(self) -> None:
        self._f.close()
