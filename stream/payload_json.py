"""JSON bytes of the Redis payloads (live, conso, battery, surplus, alerts), with orjson.

About 6x faster than ``json.dumps(..., separators=(",", ":"), ensure_ascii=False).encode()``
on our payloads (18.8 vs 3.0 us each: ``bench/stream_agents.py --payload-json``,
docs/performance.md) and the same bytes: compact separators, UTF-8 without escaping, keys in
insertion order: identical on all 6,997 payloads of that run (2026-12-03) and on the edge cases
of tests/unit/test_payload_json.py.
The one known difference is the spelling of floats below 1e-4 (``0.00001`` instead of
``1e-05``: the same number to every JSON parser); our payloads carry Wh as integers and euros
rounded to the cent.

Whatever orjson would handle differently from the standard library is passed to it instead:
datetimes, dataclasses and subclasses of str/int/dict/list (``OPT_PASSTHROUGH_*``), and what
orjson refuses (non-str keys, ints over 64 bits): the standard library then encodes it, or
raises its own TypeError, exactly as before. The one table value encoded here is the live
table's (its value is the live payload); the other tables' values stay the standard library's.

orjson (3.12 and later) returns its bytes in the buffer it wrote them to, never trimmed: at least
4 KiB, and about 10x the payload's length for larger ones (a 3 KB payload held 32 KiB; see
https://github.com/ijl/orjson/issues/483 and home-assistant/core#181245). Our payloads are kept:
in the publisher's queue, in the write-back buffer, in the live table's decode cache. ``dumps``
returns a right-sized copy (``b"".join``, about 0.2 us): bench/memprobe.py found 3,000 such
payloads holding 23 MB in a worker of 3,000 PDLs (docs/performance.md).
"""

from __future__ import annotations

import json
from typing import Any

from tables.stored_json import orjson_copy


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON of ``obj``: orjson's, else the standard library's."""
    raw = orjson_copy(obj)  # a right-sized copy (module docstring), None when orjson refuses obj
    if raw is not None:
        return raw
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()  # or its TypeError
