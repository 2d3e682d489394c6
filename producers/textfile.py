"""Reading district files as streams, record by record, in bounded memory.

JSON Lines files are read line by line; CSV files record by record, each record decoded on its
own (UTF-8 with or without BOM, or GBK / GB18030), so one bad byte costs its record only.
A record longer than `MAX_RECORD_BYTES` is not kept whole: its first bytes and its size come
back so that it becomes a truncated dead letter.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

# the webhook's body limit: no real record of any feed comes near it
MAX_RECORD_BYTES = 64 * 1024
CHUNK_BYTES = 1 << 20
ENCODINGS = ("utf-8", "gb18030")  # GB18030 is the superset of GBK


class Line(NamedTuple):
    number: int  # 1-based
    data: bytes  # without its line end; only the first `limit` bytes when not `complete`
    size: int  # bytes of the whole line in the file, line end excluded

    @property
    def complete(self) -> bool:
        return len(self.data) == self.size


def lines(stream: BinaryIO, limit: int = MAX_RECORD_BYTES, chunk: int = CHUNK_BYTES) -> Iterator[Line]:
    """The lines of a binary stream split at b"\\n" (a "\\r" before it is dropped), read in
    chunks: memory stays within `chunk` + `limit` whatever the file holds."""
    number = 0
    carry = b""
    skipping: tuple[bytes, int] | None = None  # (head, size so far) of a line over the limit
    while True:
        block = stream.read(chunk)
        if not block:
            break
        start = 0
        if skipping is not None:
            head, size = skipping
            end = block.find(b"\n")
            if end < 0:
                skipping = (head, size + len(block))
                continue
            number += 1
            yield Line(number, head, size + _without_cr(block, 0, end))
            skipping = None
            start = end + 1
        if carry:
            block = carry + block[start:]
            start = 0
            carry = b""
        while True:
            end = block.find(b"\n", start)
            if end < 0:
                break
            stop = end - 1 if end > start and block[end - 1] == 0x0D else end
            number += 1
            if stop - start > limit:
                yield Line(number, block[start:start + limit], stop - start)
            else:
                yield Line(number, block[start:stop], stop - start)
            start = end + 1
        rest = block[start:]
        if len(rest) > limit:
            skipping = (rest[:limit], len(rest))
        else:
            carry = rest
    if skipping is not None:
        number += 1
        yield Line(number, *skipping)
    elif carry:
        number += 1
        data = carry[:-1] if carry.endswith(b"\r") else carry
        yield Line(number, data, len(data))


def _without_cr(block: bytes, start: int, end: int) -> int:
    """Length of block[start:end] without a "\\r" just before the line end."""
    return end - start - (1 if end > start and block[end - 1] == 0x0D else 0)


def _quoted_at_end(line: bytes, quoted: bool) -> bool:
    """Whether a CSV record is inside a quoted field at the end of `line`, given whether it
    was at its start: the csv module's rule (a quote opens a field only at its start; "" in
    a quoted field is a quote). GBK and GB18030 trail bytes are never '"' or ',' bytes."""
    position = 0
    at_field_start = not quoted
    while True:
        if at_field_start:
            if line[position:position + 1] == b'"':
                position += 1
                quoted = True
            at_field_start = False
        if quoted:
            close = line.find(b'"', position)
            if close < 0:
                return True
            if line[close + 1:close + 2] == b'"':
                position = close + 2
                continue
            position = close + 1
            quoted = False
        comma = line.find(b",", position)
        if comma < 0:
            return False
        position = comma + 1
        at_field_start = True


def _column_at(record: bytes, offset: int) -> int:
    """The 1-based CSV column that holds byte `offset` of a record."""
    column, position, quoted = 1, 0, False
    while position < offset:
        byte = record[position]
        if byte == 0x22:
            quoted = not quoted
        elif byte == 0x2C and not quoted:
            column += 1
        position += 1
    return column


class CsvRecord(NamedTuple):
    first_line: int
    line: int  # the line the record ends on (what csv.reader's line_num says)
    cells: list[str] | None  # None when the record cannot be read: see `problem`
    problem: str
    text: str  # the record as text (undecodable bytes replaced), for a dead letter
    size: int  # bytes of the record in the file

    @property
    def complete(self) -> bool:
        """False when only the first bytes of an oversized record were kept."""
        return not self.problem.startswith("size")


class _RecordDecoder:
    """Decodes each record on its own, trying first the encoding the file used so far."""

    def __init__(self) -> None:
        self.order = list(ENCODINGS)

    def decode(self, data: bytes) -> str | UnicodeDecodeError:
        first_error: UnicodeDecodeError | None = None
        for encoding in self.order:
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError as exc:
                first_error = first_error or exc
                continue
            if encoding != self.order[0] and not data.isascii():
                self.order.remove(encoding)
                self.order.insert(0, encoding)
            return text
        assert first_error is not None
        return first_error

    def damaged(self, data: bytes) -> str:
        return data.decode(self.order[0], "replace")


def split_cells(text: str) -> list[str]:
    """One CSV record's cells, as csv.reader reads them ([] for a blank line)."""
    if '"' not in text and "\r" not in text:
        return text.split(",") if text else []
    return next(csv.reader([text]), [])


def csv_records(stream: BinaryIO, limit: int = MAX_RECORD_BYTES) -> Iterator[CsvRecord]:
    """Every record of a CSV file, the header first, each decoded on its own: a record with
    bytes neither UTF-8 nor GBK, or one csv cannot read, comes back with its problem and costs
    that record only. A record over `limit` bytes is cut at the next line end."""
    decoder = _RecordDecoder()
    header: list[str] = []
    parts: list[bytes] = []
    size = first_line = 0
    quoted = False
    for line in lines(stream, limit):
        data = line.data
        if not parts:
            first_line = line.number
            if line.number == 1 and data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8):]
        size += line.size + (1 if parts else 0)
        parts.append(data)
        if not line.complete or size > limit:
            yield CsvRecord(first_line, line.number, None,
                            f"size: record of {size} bytes (lines {first_line}-{line.number}) is "
                            f"over the {limit // 1024} KiB limit: is a quote left open?",
                            decoder.damaged(b"\n".join(parts)[:limit]), size)
            parts, size, quoted = [], 0, False
            continue
        if quoted or b'"' in data:
            quoted = _quoted_at_end(data, quoted)
            if quoted:
                continue
        record = _read_record(decoder, parts[0] if len(parts) == 1 else b"\n".join(parts),
                              first_line, line.number, header, size)
        if not header and record.cells is not None:
            header = [cell.strip() for cell in record.cells]
        yield record
        parts, size = [], 0
    if parts:  # a quote left open to the end of the file
        yield _read_record(decoder, b"\n".join(parts), first_line, first_line + len(parts) - 1,
                           header, size)


def _read_record(decoder: _RecordDecoder, data: bytes, first_line: int, last_line: int,
                 header: list[str], size: int) -> CsvRecord:
    text = decoder.decode(data)
    if isinstance(text, UnicodeDecodeError):
        start = text.start
        column = _column_at(data, start)
        name = f" ({header[column - 1]})" if 0 < column <= len(header) else ""
        line = first_line + data.count(b"\n", 0, start)
        return CsvRecord(first_line, last_line, None,
                         f"encoding: line {line}: bytes {data[start:start + 4]!r} at column {column}"
                         f"{name} are neither UTF-8 nor GBK: re-export the file as UTF-8 or GBK",
                         decoder.damaged(data), size)
    try:
        cells = split_cells(text)
    except csv.Error as exc:
        return CsvRecord(first_line, last_line, None, f"csv: {exc}", text, size)
    return CsvRecord(first_line, last_line, cells, "", text, size)
