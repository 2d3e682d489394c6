"""A simulated month through the embedded stack: replays are repeatable, match the pure
reduction, survive a killed worker without losing or duplicating an alert, and a feed with 5 %
malformed records, 10 % duplicates and 10 % out-of-order events gives what its clean feed gives."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date

import orjson
import pytest

from civicflow.embedded import embedded_broker
from civicflow.pipeline import read_feeds, replay
from civicflow.settings import Settings
from producers.simulator import FeedFaults, simulate_grid, write_lines
from schemas.enums import CaseStatus, Milestone, Satisfaction, Source
from schemas.topics import EVENT_TOPICS, INVALID_TOPIC
from sinks.clickhouse import connect
from sinks.migrate import migrate
from streams.calendar import CHINA_TZ
from streams.cases import reduce_case
from streams.whatif import group_by_case
from tests.accounting import account_records, assert_same_results, freeze_merges, raw_copies, read_topic

pytestmark = pytest.mark.integration
ALERT_COLUMNS = "alert_id, fires_at, due_at, retracted"
MONTH = {"seed": 11, "start": date(2026, 9, 21), "days": 30, "cases_per_day": 10, "districts": 2}
# one in 10 clean lines moved later, one in 10 sent twice, malformed lines as 5 % of them
NOISY = FeedFaults(moved_every=10, duplicate_every=10, malformed_every=20)


@pytest.fixture(scope="module")
def month_file(tmp_path_factory):
    """The month as a noisy feed (NOISY); every other test of this module reads it too."""
    path = tmp_path_factory.mktemp("sim") / "grid.jsonl"
    write_lines(str(path), simulate_grid(**MONTH, faults=NOISY))
    return path


@pytest.fixture(scope="module")
def clean_month_file(tmp_path_factory):
    """The same month without a fault: the same clean lines, in time order."""
    path = tmp_path_factory.mktemp("sim") / "grid-clean.jsonl"
    write_lines(str(path), simulate_grid(**MONTH, faults=False))
    return path


def predicted_alerts(events, policy, calendar, as_of):
    rows = []
    for case_events in group_by_case(events).values():
        for p in reduce_case(case_events, policy, calendar).fired(as_of):
            rows.append((p.alert_id, p.fires_at.astimezone(UTC).replace(tzinfo=None),
                         p.due_at.astimezone(UTC).replace(tzinfo=None), False))
    return sorted(rows)


def landed_alerts(client, db, columns=ALERT_COLUMNS):
    return [tuple(r) for r in client.query(
        f"SELECT {columns} FROM {db}.alerts FINAL ORDER BY alert_id").result_rows]


@pytest.fixture(scope="module")
def noisy_run(month_file, chdb_var, tmp_path_factory):
    """The noisy month replayed on a broker of its own, kept up until its topics are read:
    (result, client, database, events.grid records, events.invalid records). Merges are frozen
    so raw rows count every copy the sink wrote."""
    db = "it_month_a"
    client = connect(Settings(var_dir=chdb_var).clickhouse_dsn())
    client.command(f"DROP DATABASE IF EXISTS {db}")
    migrate(client, db)
    freeze_merges(client, db)
    with embedded_broker(tmp_path_factory.mktemp("broker"), 3, 30) as bootstrap:
        settings = Settings(var_dir=chdb_var, partitions=3, database=db, bootstrap=bootstrap)
        result, sink = replay(settings, [("jn-grid", month_file)], None, lambda _m: None)
        events = [r for r in read_topic(bootstrap, EVENT_TOPICS[Source.GRID]) if not r[4]]
        dead = [r for r in read_topic(bootstrap, INVALID_TOPIC) if not r[4]]
    return result, sink.client, db, events, dead


@pytest.fixture(scope="module")
def month_a(noisy_run):
    return noisy_run[:3]


def test_a_noisy_feed_gives_what_its_clean_feed_gives(noisy_run, month_file, clean_month_file,
                                                       chdb_var):
    result, client, db, on_topic, dead_on_topic = noisy_run
    clean_db = "it_month_clean"
    replay(Settings(var_dir=chdb_var, partitions=3, database=clean_db),
           [("jn-grid", clean_month_file)], None, lambda _m: None)
    # the noise, counted from the two files apart from the importer
    clean = [line for line in clean_month_file.read_bytes().splitlines() if line.strip()]
    noisy = [line for line in month_file.read_bytes().splitlines() if line.strip()]
    known = set(clean)
    assert len(known) == len(clean) and known <= set(noisy)
    malformed = sum(1 for line in noisy if line not in known)
    twice = len(noisy) - malformed - len(clean)  # every clean line once, the rest are repeats
    late, latest = 0, ""
    for line in noisy:
        if line in known:
            at = orjson.loads(line)["发生时间"]
            late += at < latest  # came after an event that happened later
            latest = max(latest, at)
    print(f"noisy feed: {len(noisy)} records = {len(clean)} clean + {twice} duplicates + "
          f"{malformed} malformed; {late} events arrived after a later one")
    assert malformed == len(clean) // 20 and twice == len(clean) // 10
    assert late >= len(clean) // 20  # 10 % moved later; some only past events of the same time
    # the importer's accounting agrees, and the records balance in ClickHouse (raw rows)
    tally = result.tally
    assert (tally.read, tally.rejected, tally.duplicates) == (len(noisy), malformed, twice)
    account = account_records(client, db, read=len(noisy), skipped=twice)
    print(account.line())
    assert account.balanced, account.line()
    assert (account.raw_events, account.distinct_events, account.dead_letters) == (
        len(clean), len(clean), malformed)
    # no duplicate reached the topic: each event once on events.grid, each malformed record once
    # on the dead-letter topic
    copies = Counter(orjson.loads(value)["event_id"] for _, _, _, value, _ in on_topic)
    assert len(copies) == len(clean) and max(copies.values()) == 1
    assert len(dead_on_topic) == malformed
    # nor the raw rows of any table the sink writes
    raw = raw_copies(client, db)
    print({table: counts["copies"] for table, counts in raw.items()})
    assert all(counts["copies"] == 0 for counts in raw.values()), raw
    # and what users read equals the clean run's, every column
    sizes = assert_same_results(client, clean_db, db)
    assert sizes["cases"] > 500 and sizes["alerts"] > 50, sizes


def test_two_replays_are_identical_and_match_the_pure_reduction(month_a, month_file, chdb_var,
                                                                policy, calendar):
    result, client, db_a = month_a
    db_b = "it_month_b"
    replay(Settings(var_dir=chdb_var, partitions=3, database=db_b), [("jn-grid", month_file)], None,
           lambda _m: None)
    full = "alert_id, case_id, level, fires_at, due_at, emitted_at, retracted"
    first, second = landed_alerts(client, db_a, full), landed_alerts(client, db_b, full)
    assert first == second and len(first) > 50
    cases = "SELECT * EXCEPT version FROM {db}.cases FINAL ORDER BY case_id"
    assert (client.query(cases.format(db=db_a)).result_rows
            == client.query(cases.format(db=db_b)).result_rows)
    events, _, _ = read_feeds([("jn-grid", month_file)])
    assert landed_alerts(client, db_a) == predicted_alerts(events, policy, calendar, result.as_of)


def plain_python_rates(events, policy, calendar, clock):
    """The 三率 inputs per day/source/district/street/unit/category, from each case's reduced
    state: a milestone is due once met or past due at the clock; cancelled cases never count."""
    rows: dict[tuple, list[int]] = {}
    for case_events in group_by_case(events).values():
        state = reduce_case(case_events, policy, calendar)
        if state.status is CaseStatus.CANCELLED:
            continue
        key = (state.created_at.astimezone(CHINA_TZ).date(), state.source.value, state.district,
               state.street, state.unit, state.category)
        r = rows.setdefault(key, [0] * 9)
        r[0] += 1
        overdue = False
        for offset, milestone in ((1, Milestone.RESPOND), (3, Milestone.RESOLVE)):
            due = state.dues.get(milestone)
            met = state.clock(milestone).met_at
            if due is None:
                continue
            r[offset] += met is not None or due < clock
            r[offset + 1] += met is not None and met <= due
            overdue |= met is None and due < clock
        resolved = state.clock(Milestone.RESOLVE).met_at
        r[5] += resolved is not None
        r[6] += state.satisfaction is not None
        r[7] += state.satisfaction in (Satisfaction.SATISFIED, Satisfaction.BASICALLY_SATISFIED)
        r[8] += state.status is not CaseStatus.CLOSED and overdue
    return {k: tuple(v) for k, v in rows.items()}


def test_unit_rates_daily_matches_plain_python(month_a, month_file, policy, calendar):
    result, client, db = month_a
    view = client.query(
        f"SELECT day, source, district, street, unit, category, created, respond_due_count, "
        f"responded_on_time, resolve_due_count, resolved_on_time, resolved, surveyed, satisfied, "
        f"overdue_open FROM {db}.unit_rates_daily").result_rows
    got = {tuple(r[:6]): tuple(r[6:]) for r in view}
    events, _, _ = read_feeds([("jn-grid", month_file)])
    expected = plain_python_rates(events, policy, calendar, result.as_of)
    assert len(expected) > 100
    assert got == expected


def rate_bars(page: str) -> list[tuple[str, str, float, float, float, str]]:
    """The 三率 chart's bars: (district, rate, its percent, bar height, bar width, colour), and
    the chart's plot height from its 0% and 100% gridlines."""
    import re

    chart = page[page.index('aria-label="三率 per district"'):]
    chart = chart[:chart.index("</svg>")]
    lines = dict((label, float(y)) for y, label in re.findall(
        r'<line [^>]*y1="([\d.]+)"[^>]*/><text [^>]*>(\d+)%</text>', chart))
    plot_h = lines["0"] - lines["100"]
    return [(district, name, float(pct), float(h) / plot_h, float(w), color)
            for w, h, color, district, name, pct in re.findall(
                r'<rect class="bar" [^>]*width="([\d.]+)" height="([\d.]+)" fill="(#\w+)">'
                r'<title>(\S+) (响应率|按期办结率|满意率) ([\d.]+)%</title>', chart)], plot_h


def test_html_report_renders_its_charts_in_chromium(month_a, month_file, tmp_path, policy, calendar):
    import shutil
    import subprocess

    from PIL import Image

    from civicflow.html_report import COLORS, RANKING_COLOR, build_html

    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing: `make tools` installs it"
    result, client, db = month_a
    page = tmp_path / "report.html"
    page.write_text(build_html(client, db), encoding="utf-8")
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    # the 三率 bars, one per district and rate, each as tall as the rate worked out in plain
    # Python from the events (as of the replay's clock)
    # plain_python_rates row: created, respond due, responded on time, resolve due, resolved on
    # time, resolved, surveyed, satisfied, overdue open
    fractions = {"响应率": (2, 1), "按期办结率": (4, 3), "满意率": (7, 6)}
    sums: dict[tuple[str, str], list[int]] = {}
    events, _, _ = read_feeds([("jn-grid", month_file)])
    for (_, _, district, *_), row in plain_python_rates(events, policy, calendar, result.as_of).items():
        for name, (num, den) in fractions.items():
            pair = sums.setdefault((district, name), [0, 0])
            pair[0] += row[num]
            pair[1] += row[den]
    expected = {key: num / den for key, (num, den) in sums.items() if den}
    bars, plot_h = rate_bars(text)
    assert len(expected) >= 6
    assert {(d, name) for d, name, *_ in bars} == set(expected)
    for district, name, pct, height, _, color in bars:
        assert color == COLORS[name]
        assert abs(pct / 100 - expected[(district, name)]) < 0.0006, (district, name)
        assert abs(height - expected[(district, name)]) * plot_h < 0.2, (district, name)
    shot = tmp_path / "report.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", "--window-size=900,1800",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, timeout=120, check=True)
    image = Image.open(shot).convert("RGB")
    counts = {color: n for n, color in image.getcolors(maxcolors=1 << 24) or []}

    def rgb(hex_color: str) -> tuple[int, int, int]:
        return tuple(int(hex_color[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
    # each rate's colour is painted over (nearly) the area its bars cover, plus its legend square;
    # no other chart uses these colours, so a missing rate's bars leave only the 100 px legend
    for name, color in COLORS.items():
        area = sum(max(0.0, w - 2) * h * plot_h for _, n, _, h, w, _ in bars if n == name)
        assert area > 500, f"{name}: bars of {area:.0f} px in the page"
        assert counts.get(rgb(color), 0) >= 0.85 * area + 100, f"{name} bars not painted"
    for color in (RANKING_COLOR, "#c53030"):  # the ranking bars and the red trend line
        assert counts.get(rgb(color), 0) > 300, f"{color} barely visible in the screenshot"
