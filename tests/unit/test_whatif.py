"""The what-if comparison on the hand-worked grid fixture (as of Wed 2026-10-21 12:00)."""

from __future__ import annotations

from pathlib import Path

from producers.base import Reject
from producers.grid import GridAdapter
from schemas.policy import load_policy
from streams.whatif import WhatIfRow, compare_policies
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
    print_policy_comparison(Settings(policy=path), events, cn(2026, 10, 21, 12, 0))
    text = capsys.readouterr().out
    assert "overdue: default" in text and "overdue: looser" in text
    total = next(line for line in text.splitlines() if "all" in line)
    assert [cell.strip() for cell in total.strip("│ ").split("│")][-4:] == ["4", "2", "1", "-1"]
