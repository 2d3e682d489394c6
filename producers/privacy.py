"""Personal data never enters Kafka: phone numbers become a keyed hash, names are dropped,
phone and ID-card numbers in free text are masked."""

from __future__ import annotations

import hashlib
import hmac
import re

# 18-digit resident ID (last may be X), mobile numbers (+86 optional), landlines with area code
_ID_CARD = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)")
_MOBILE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)0\d{2,3}-?\d{7,8}(?!\d)")
MASK = "＊＊＊"


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
