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
