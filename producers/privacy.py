"""Personal data never enters Kafka: phone numbers become a keyed hash, names are dropped,
phone and ID-card numbers in free text are masked, dead letters keep records redacted."""

from __future__ import annotations

import csv
import hashlib
import hmac
import re
from collections.abc import Collection, Mapping, Sequence

import orjson

from producers.textfile import split_cells
from schemas.errors import InvalidRecord

# 18-digit resident ID (last may be X), mobile numbers (+86 optional), landlines with area code
_ID_CARD = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)")
_MOBILE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)0\d{2,3}-?\d{7,8}(?!\d)")
_ANY = re.compile("|".join(f"(?:{p.pattern})" for p in (_ID_CARD, _MOBILE, _LANDLINE)))
# in an id or code, only what is surely a number of a person: a resident ID with a real birth
# date, a mobile number, a landline written with its area code and a dash (an order numbered
# "202610030000000123" or "0012345678901" is no ID card or landline)
_PERSONAL_IN_ID = re.compile(
    r"(?<!\d)[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?!\d)"
    rf"|(?:{_MOBILE.pattern})|(?<!\d)0\d{{2,3}}-\d{{7,8}}(?!\d)")
MASK = "＊＊＊"

# fields that hold a person's name, phone or ID number, whatever the feed calls them: a dead
# letter drops them whole (a name has no pattern to mask)
PERSONAL_FIELDS = frozenset({
    "诉求人", "来电人", "来电号码", "来电电话", "联系人", "联系电话", "联系方式", "姓名", "报修人",
    "上报人", "反映人", "投诉人", "举报人", "当事人", "业主", "业主姓名", "住户", "手机", "手机号",
    "手机号码", "电话", "电话号码", "身份证", "身份证号", "身份证号码", "证件号码",
    "name", "full_name", "contact", "contact_name", "contact_phone", "caller", "caller_name",
    "caller_phone", "reporter", "reporter_name", "owner", "owner_name", "resident", "phone",
    "phone_number", "mobile", "tel", "telephone", "id_card", "id_number",
})
_FIELD_NAMES = "|".join(sorted(map(re.escape, PERSONAL_FIELDS), key=len, reverse=True))
_PERSONAL_VALUE = re.compile(
    r"""(?<!\w)(["']?(?:""" + _FIELD_NAMES + r""")["']?\s*[:=：]\s*)("(?:[^"\\]|\\.)*"?|[^,，;；\s}\]]*)""",
    re.IGNORECASE)
# a number cut at the end of a kept head could still show most of its digits
_CUT_NUMBER = re.compile(r"[\d+\- ]+$")
FREE_TEXT_LIMIT = 40


def normalize_phone(raw: str) -> str:
    digits = raw if raw.isdigit() and raw.isascii() else re.sub(r"\D", "", raw)
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return digits


def caller_hash(raw_phone: str | None, key: bytes) -> str | None:
    """Keyed HMAC-SHA256 of the normalized number: repeat callers match, numbers stay unknown."""
    if not raw_phone or not raw_phone.strip():
        return None
    digits = normalize_phone(raw_phone)
    if not digits:
        return None
    return hmac.digest(key, digits.encode(), hashlib.sha256).hex()


def mask_text(text: str) -> str:
    text = _ID_CARD.sub(MASK, text)
    text = _MOBILE.sub(MASK, text)
    return _LANDLINE.sub(MASK, text)


REASON_LIMIT = 500  # Event.reason's max_length


def stated_reason(text: str | None) -> str | None:
    """A unit's free-text reason (说明) as an event may carry it: phone and ID numbers masked,
    then cut to the model's limit (cutting first could leave half a number unmasked)."""
    if text is None or not text.strip():
        return None
    return mask_text(text.strip())[:REASON_LIMIT]


def contains_personal_data(text: str) -> bool:
    return _ANY.search(text) is not None


def cut(text: str, limit: int) -> str:
    """`text` up to `limit` characters, without the digits of a number cut in two."""
    if len(text) <= limit:
        return text
    return _CUT_NUMBER.sub("", text[:limit])


def cut_bytes(text: str, limit: int) -> str:
    """`text` up to `limit` bytes of UTF-8, without the digits of a number cut in two."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return _CUT_NUMBER.sub("", encoded[:limit].decode("utf-8", "ignore"))


def safe_text(text: str, limit: int = FREE_TEXT_LIMIT) -> str:
    """Free text that becomes part of an event (an unknown category): masked, then cut."""
    return cut(mask_text(text), limit)


def safe_category(code: str) -> str:
    """A catalog code as it is, or `other:<raw>` with its raw text masked and cut."""
    if code.startswith("other:"):
        return "other:" + safe_text(code[len("other:"):])
    return code


def identifier(field: str, value: str) -> str:
    """An id or code that goes into events as it is: refused when it holds a phone or ID
    number, which would then reach every topic, table and report."""
    if _PERSONAL_IN_ID.search(value) is not None:
        raise InvalidRecord(f"{field} holds a phone or ID number: personal data cannot be an id "
                            "or a code; fix the record at the source")
    return value


def is_personal_field(name: str) -> bool:
    return name.strip().lower() in PERSONAL_FIELDS


def redact_record(record: Mapping[str, object] | Sequence[str] | str | bytes,
                  columns: Sequence[str] | None = None, keep: Collection[str] | None = None) -> str:
    """A source record as a dead letter may keep it: fields that hold a name, phone or ID
    number dropped, phone and ID numbers masked everywhere else.

    - a JSON object (dict): by key; with `keep`, only those keys are kept at all;
    - a CSV row (list of cells) with its `columns`: by column, and when the row has more or
      fewer cells than the header (an unquoted comma), every position a personal column could
      have shifted to is dropped too;
    - text that did not even parse: masked whole, values after a personal key ("诉求人": …)
      dropped, and with `columns`, read as one CSV row when it splits into cells.
    """
    if isinstance(record, bytes):
        record = record.decode("utf-8", "replace")
    if isinstance(record, str):
        if columns is not None:
            cells = _cells(record)
            if len(cells) > 1:
                return _redact_cells(cells, columns)
        return _PERSONAL_VALUE.sub(r'\1""', mask_text(record))
    if isinstance(record, Mapping):
        return orjson.dumps(_redact_json(record, keep)).decode()
    return _redact_cells(list(record), columns or [])


def _cells(text: str) -> list[str]:
    try:
        return split_cells(text)
    except csv.Error:  # text that is not even one CSV row stays text
        return []


def _redact_cells(cells: list[str], columns: Sequence[str]) -> str:
    shift = len(cells) - len(columns)
    dropped: set[int] = set()
    for index, name in enumerate(columns):
        if is_personal_field(name):
            low, high = sorted((index, index + shift))
            dropped.update(range(max(low, 0), high + 1))
    kept: dict[str, str] = {}
    for index, value in enumerate(cells):
        if index in dropped:
            continue
        name = columns[index].strip() if index < len(columns) else f"column {index + 1}"
        if name in kept or not name:
            name = f"{name or 'column'} {index + 1}"
        kept[mask_text(name)] = mask_text(value)
    return orjson.dumps(kept).decode()


def _redact_json(value: object, keep: Collection[str] | None = None) -> object:
    if isinstance(value, Mapping):
        return {mask_text(str(key)): _redact_json(item) for key, item in value.items()
                if not is_personal_field(str(key)) and (keep is None or key in keep)}
    if isinstance(value, list):
        return [_redact_json(item) for item in value]
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return MASK if contains_personal_data(str(value)) else value
    return value
