"""The what-if comparison on the hand-worked grid fixture (as of Wed 2026-10-21 12:00)."""

from __future__ import annotations

import io
from pathlib import Path

from producers.base import Reject
from producers.grid import GridAdapter
from schemas.event import EncodedEvent
from schemas.policy import load_policy
from streams.whatif import WhatIfRow, compare_policies, group_by_case
from tests.conftest import cn, policy_text

FIXTURE = Path(__file__).parent.parent / "fixtures" / "grid_small.jsonl"
LOOSER = policy_text("""
[grid.any]
respond = "2wd"
resolve = "3wd"
feedback = "4wd"
""")


def test_looser_policy_side_by_side(tmp_path, calendar):
    path = tmp_path / "looser.toml"
    path.write_text(LOOSER)
    with open(FIXTURE, "rb") as stream:
        events = [e for e in GridAdapter().parse(stream, "f") if not isinstance(e, Reject)]
    rows = compare_policies(events, [load_policy(), load_policy(path)], calendar,
                            cn(2026, 10, 21, 12, 0))
    # B (unit U03): respond red 10-20 00:00 by default; with 2 wd it is 10-21 00:00 — still late.
    # E (unit U02): feedback red 10-21 00:00 by default; with 4 wd it is 10-22 00:00 — on time.
    # A and C (unit U01) were never red; D was cancelled and does not count.
    assert rows == [
        WhatIfRow("370102", "U01", 2, (0, 0)),
        WhatIfRow("370102", "U02", 1, (1, 0)),
        WhatIfRow("370102", "U03", 1, (1, 1)),
    ]


def test_replay_prints_the_side_by_side_table(tmp_path, capsys):
    from civicflow.commands import print_policy_comparison
    from civicflow.settings import Settings

    path = tmp_path / "looser.toml"
    path.write_text(LOOSER)
    with open(FIXTURE, "rb") as stream:
        events = [e for e in GridAdapter().parse(stream, "f") if not isinstance(e, Reject)]
    cases = [[EncodedEvent.of(e) for e in case] for case in group_by_case(events).values()]
    print_policy_comparison(Settings(policy=path), cases, cn(2026, 10, 21, 12, 0))
    text = capsys.readouterr().out
    assert "overdue: default" in text and "overdue: looser" in text
    total = next(line for line in text.splitlines() if "all" in line)
    assert [cell.strip() for cell in total.strip("│ ").split("│")][-4:] == ["4", "2", "1", "-1"]


def test_chunks_of_whole_cases_sum_to_the_table_over_every_event(tmp_path, calendar):
    """The bounded-memory what-if (cases from runs on disk, a chunk of cases at a time) gives
    the table computed over all events at once, whatever the chunk size."""
    from datetime import date

    from civicflow.commands import policy_comparison
    from producers.event_sort import CaseGrouper
    from producers.simulator import simulate_grid

    path = tmp_path / "looser.toml"
    path.write_text(LOOSER)
    policies = [load_policy(), load_policy(path)]
    data = b"\n".join(simulate_grid(seed=3, start=date(2026, 9, 21), days=20, cases_per_day=8,
                                     districts=3))
    events = [e for e in GridAdapter().parse(io.BytesIO(data), "f") if not isinstance(e, Reject)]
    as_of = cn(2026, 10, 12, 8, 0)
    whole = compare_policies(events, policies, calendar, as_of)
    assert len(whole) > 10 and sum(r.overdue[0] for r in whole) > sum(r.overdue[1] for r in whole) > 0
    for chunk_events in (1, 37, 10**9):
        with CaseGrouper(run_size=150, directory=tmp_path) as grouper:
            for event in events:
                grouper.add(EncodedEvent.of(event))
            assert policy_comparison(grouper.cases(), policies, calendar, as_of, chunk_events) == whole
