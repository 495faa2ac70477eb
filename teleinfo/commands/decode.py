"""``teleinfo decode [FILE]``: raw TIC bytes in, one JSON object per complete frame out.

Each line: ``{"mode", "groups", "horodates", "invalid", "reading"}`` in stream order; frames
cut by EOT produce no line. A one-line summary goes to stderr at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import BinaryIO, TextIO

from stream import clock
from teleinfo.protocol import DecoderStats, FrameDecoder
from teleinfo.reading import build_reading

__all__ = ["register", "run", "decode_stream"]

_CHUNK = 1 << 16


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``decode`` sub-command."""
    parser = subparsers.add_parser(
        "decode",
        help="decode raw TIC bytes (file or stdin) into JSON lines",
        description="Decode raw Linky TIC bytes from FILE (or stdin) into one JSON object per "
                    "complete frame on stdout; print a summary line on stderr.",
    )
    parser.add_argument("file", nargs="?", metavar="FILE",
                        help="raw capture to decode (default: stdin)")
    parser.add_argument("--receive-time", action="store_true",
                        help="stamp frames without a DATE with the time they were decoded "
                             "(for a live stream on stdin); default: time is null")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Decode ``args.file`` (or stdin); return the exit code."""
    try:
        if args.file is None or args.file == "-":
            source: BinaryIO = sys.stdin.buffer
            stats = decode_stream(source, sys.stdout, args.receive_time)
        else:
            with open(args.file, "rb") as source:
                stats = decode_stream(source, sys.stdout, args.receive_time)
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        print(f"teleinfo decode: {exc}", file=sys.stderr)
        return 2
    print(
        f"frames={stats.frames} groups={stats.groups} invalid_groups={stats.invalid_groups} "
        f"interrupted_frames={stats.interrupted_frames} skipped_bytes={stats.skipped_bytes} "
        f"parity_stripped_bytes={stats.parity_stripped_bytes} "
        f"oversized_discarded={stats.oversized_discarded}",
        file=sys.stderr,
    )
    return 0


def decode_stream(source: BinaryIO, out: TextIO, receive_time: bool = False) -> DecoderStats:
    """Decode everything readable from ``source`` into JSON lines on ``out``; return stats."""
    decoder = FrameDecoder()
    read = getattr(source, "read1", source.read)  # read1: return what a pipe has, now
    dumps = json.dumps
    while True:
        data = read(_CHUNK)
        if not data:
            break
        frames = decoder.feed(data)
        if not frames:
            continue
        received_at = clock.now() if receive_time else None
        out.write("".join(
            dumps({
                "mode": f.mode,
                "groups": f.groups,
                "horodates": f.horodates,
                "invalid": f.invalid,
                "reading": build_reading(f, received_at),
            }) + "\n"
            for f in frames
        ))
        out.flush()
    return decoder.stats
