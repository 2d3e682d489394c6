"""The ingest's accounting line: what Kafka did not take is in it, and only when there is some."""

from producers.base import ImportTally


def test_the_accounting_line_counts_what_kafka_did_not_acknowledge():
    tally = ImportTally(read=10, produced=7, rejected=2, duplicates=1, events=9)
    plain = "records read 10 = produced 7 + rejected 2 + duplicates skipped 1 (9 events produced)"
    assert tally.line() == plain and tally.balanced
    tally.undelivered_events, tally.undelivered_rejects = 4, 1
    assert tally.line() == plain + "; not delivered to Kafka: 4 events, 1 dead letters"
    tally.undelivered_unknown = 2
    assert tally.line().endswith("4 events, 1 dead letters, 2 messages of either kind")
    assert tally.undelivered == 7
