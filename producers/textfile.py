"""Decoding district files: UTF-8 (with or without BOM) or GBK, told apart per file."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from typing import Protocol, TypeVar

Record = TypeVar("Record", covariant=True)


class CsvReader(Protocol[Record]):
    """csv.reader and csv.DictReader: records, and the line the last one ended on."""

    line_num: int

    def __next__(self) -> Record: ...


def decode_feed(data: bytes) -> tuple[str, str]:
    """(text, encoding). UTF-8 first (a BOM is dropped), then GB18030, the superset of GBK.
    Undecodable bytes become U+FFFD so that one bad row cannot hide the rest of the file;
    the adapter rejects rows that contain it."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8", "replace"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gbk"
    except UnicodeDecodeError:
        return data.decode("utf-8", "replace"), "utf-8 (damaged)"


def csv_records(reader: CsvReader[Record]) -> Iterator[tuple[int, Record | None, str]]:
    """(line, row, "") per record, or (line, None, reason) for a record the csv module cannot
    read; the line is where the record ends."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, None, f"csv: {exc}"
            continue
        yield reader.line_num, row, ""
