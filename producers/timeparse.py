"""Source time formats -> aware datetimes. Naive times are local to the feed's zone."""

from __future__ import annotations

import re
from datetime import datetime, tzinfo

from schemas.errors import InvalidRecord

_LOCAL_RE = re.compile(
    r"^\s*(\d{4})[-/](\d{1,2})[-/](\d{1,2})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?\s*$"
)


def parse_local_time(text: object, zone: tzinfo, field: str) -> datetime:
    """`2026-10-03 09:15:00` or `2026/10/3 9:07`, read in `zone`."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidRecord(f"{field} is empty: every event needs its time")
    if len(text) == 19 and text[4] == "-" and text[10] == " ":
        try:  # the common "2026-10-03 09:15:00" takes the C fast path
            return datetime.fromisoformat(text).replace(tzinfo=zone)
        except ValueError:
            pass
    match = _LOCAL_RE.match(text)
    if match is None:
        raise InvalidRecord(
            f"{field} {text!r} is not a time like '2026-10-03 09:15:00' or '2026/10/3 9:07'"
        )
    y, mo, d, h, mi, s = (int(x) if x is not None else 0 for x in match.groups())
    try:
        return datetime(y, mo, d, h, mi, s, tzinfo=zone)
    except ValueError as exc:
        raise InvalidRecord(f"{field} {text!r} is not a real time: {exc}") from exc
