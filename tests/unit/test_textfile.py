"""Reading district files as streams: the same records csv and splitlines would give, read in
bounded pieces, never the whole file at once."""

from __future__ import annotations

import csv
import io

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.grid import GridAdapter
from producers.hotline12345 import Hotline12345Adapter
from producers.nyc311 import Nyc311Adapter
from producers.simulator import hotline_csv, simulate_grid, simulate_hotline, simulate_property
from producers.textfile import csv_records, lines
from producers.wuye import WuyeAdapter


class PieceStream(io.RawIOBase):
    """A binary file that hands out at most `most` bytes per read and fails a whole-file read."""

    def __init__(self, data: bytes, most: int) -> None:
        self.data, self.position, self.most, self.largest = data, 0, most, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            raise AssertionError("read() of the whole file")
        size = min(size, self.most)
        self.largest = max(self.largest, size)
        piece = self.data[self.position:self.position + size]
        self.position += len(piece)
        return piece

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        piece = self.read(len(buffer))
        buffer[:len(piece)] = piece
        return len(piece)

    def readall(self) -> bytes:
        raise AssertionError("readall() of the whole file")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=30),
       st.sampled_from([b"\n", b"\r\n"]), st.booleans(), st.integers(1, 17))
def test_lines_are_the_lines_whatever_the_chunking(parts, ending, last_ended, chunk):
    data = ending.join(parts) + (ending if last_ended and parts else b"")
    read = list(lines(io.BytesIO(data), limit=1000, chunk=chunk))
    expected = data.split(b"\n")
    if expected and expected[-1] == b"":
        expected.pop()
    assert [ln.data for ln in read] == [e.removesuffix(b"\r") for e in expected]
    assert [ln.number for ln in read] == list(range(1, len(expected) + 1))


def test_a_line_over_the_limit_keeps_its_head_and_its_size():
    data = b"short\n" + b"x" * 5000 + b"\r\nafter\n" + b"y" * 3000
    read = list(lines(io.BytesIO(data), limit=1000, chunk=64))
    assert [(ln.number, len(ln.data), ln.size, ln.complete) for ln in read] == [
        (1, 5, 5, True), (2, 1000, 5000, False), (3, 5, 5, True), (4, 1000, 3000, False)]


cell = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00"),
               max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(cell, min_size=1, max_size=5), min_size=1, max_size=8),
       st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]), st.sampled_from(["\n", "\r\n"]))
def test_csv_records_are_what_csv_reader_reads(rows, encoding, ending):
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator=ending).writerows(rows)
    text = buffer.getvalue()
    expected = [[c.replace("\r\n", "\n") for c in row]
                for row in csv.reader(io.StringIO(text, newline=""))]
    read = list(csv_records(PieceStream(text.encode(encoding), 7)))
    assert [r.problem for r in read] == [""] * len(read)
    assert [r.cells for r in read] == expected


def test_a_quote_inside_an_unquoted_cell_is_a_character_as_for_csv():
    text = 'a,b"c\nd,"e\nf",g\n"h""i",j\n'
    read = [r.cells for r in csv_records(io.BytesIO(text.encode()))]
    assert read == list(csv.reader(io.StringIO(text, newline="")))
    assert [r.line for r in csv_records(io.BytesIO(text.encode()))] == [1, 3, 4]


def test_an_open_quote_costs_the_lines_up_to_the_limit_then_reading_goes_on():
    text = "h1,h2\n" + '1,"open\n' + "".join(f"{n},filler\n" for n in range(200)) + "last,row\n"
    read = list(csv_records(io.BytesIO(text.encode()), limit=1000))
    oversized = [r for r in read if r.problem]
    assert len(oversized) == 1 and oversized[0].problem.startswith("size:")
    assert oversized[0].first_line == 2 and oversized[0].size > 1000
    assert read[-1].cells == ["last", "row"]


def feeds() -> dict[str, tuple[object, bytes]]:
    return {
        "jn-grid": (GridAdapter(), b"\n".join(simulate_grid(days=1, cases_per_day=20, districts=1))),
        "12345": (Hotline12345Adapter(b"k"),
                  hotline_csv(simulate_hotline(days=1, cases_per_day=30, districts=1), "gbk")),
        "wuye": (WuyeAdapter(), b"\n".join(simulate_property(days=1, cases_per_day=20, districts=1))),
        "nyc311": (Nyc311Adapter(), (
            b"Unique Key,Created Date,Closed Date,Agency,Complaint Type,Status,Due Date,Borough\n"
            + b"".join(b"%d,05/01/2022 01:00:00 PM,,DOT,Pothole,Open,,QUEENS\n" % n
                       for n in range(50)))),
    }


@pytest.mark.parametrize("format_name", ["jn-grid", "12345", "wuye", "nyc311"])
def test_adapters_read_their_stream_in_pieces_with_the_same_results(format_name):
    adapter, data = feeds()[format_name]
    stream = PieceStream(data, 4096)
    in_pieces = [(line, [i.to_json() for i in items])
                 for line, items in adapter.parse_rows(io.BufferedReader(stream, 512), "f")]  # type: ignore[attr-defined]
    whole = [(line, [i.to_json() for i in items])
             for line, items in adapter.parse_rows(io.BytesIO(data), "f")]  # type: ignore[attr-defined]
    assert in_pieces == whole and len(whole) > 10
    assert 0 < stream.largest <= 1 << 20
    assert orjson.loads(whole[0][1][0])  # the first record made real output
