"""Topic names (DESIGN §7) and the control-record convention shared by every stage."""

from schemas.enums import Source

EVENT_TOPICS: dict[Source, str] = {s: f"events.{s.value}" for s in Source}
INVALID_TOPIC = "events.invalid"
SNAPSHOTS_TOPIC = "cases.snapshots"
ALERTS_TOPIC = "alerts.sla"
ALL_TOPICS = [*EVENT_TOPICS.values(), INVALID_TOPIC, SNAPSHOTS_TOPIC, ALERTS_TOPIC]
COMPACTED_TOPICS = (SNAPSHOTS_TOPIC,)

# A control record travels in-band on a partition, after the data it speaks for. It carries
# the event-time clock (`clock`) and, for a replay, the run id and whether input has ended.
CONTROL_HEADER = "civicflow-control"
CONTROL_KEY = b"\x00control"


def is_control(key: bytes | None, headers: object = None) -> bool:
    """A control record: our control key, or the control header (headers as a list or dict)."""
    if key == CONTROL_KEY:
        return True
    if not headers:
        return False
    items = headers.items() if isinstance(headers, dict) else headers
    return any(name == CONTROL_HEADER for name, _ in items)  # type: ignore[attr-defined]
