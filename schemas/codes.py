"""Unit codes ("所有网格统一编码"): 6-digit district + 3 street + 3 community + 3 grid."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.errors import InvalidRecord

DISTRICT_LEN = 6
STREET_LEN = 9
COMMUNITY_LEN = 12
GRID_LEN = 15


@dataclass(frozen=True, slots=True)
class AreaCodes:
    district: str | None = None
    street: str | None = None
    community: str | None = None
    grid: str | None = None


def parse_area_code(code: str) -> AreaCodes:
    """Split a 6, 9, 12 or 15 digit code into its district/street/community/grid prefixes."""
    code = code.strip()
    if not code.isascii() or not code.isdigit() or len(code) not in (
        DISTRICT_LEN,
        STREET_LEN,
        COMMUNITY_LEN,
        GRID_LEN,
    ):
        raise InvalidRecord(
            f"area code {code!r} is not 6, 9, 12 or 15 digits (district/street/community/grid)"
        )
    n = len(code)
    return AreaCodes(
        district=code[:DISTRICT_LEN],
        street=code[:STREET_LEN] if n >= STREET_LEN else None,
        community=code[:COMMUNITY_LEN] if n >= COMMUNITY_LEN else None,
        grid=code if n == GRID_LEN else None,
    )


def parse_grid_code(code: str) -> AreaCodes:
    code = code.strip()
    if len(code) != GRID_LEN or not code.isascii() or not code.isdigit():
        raise InvalidRecord(f"grid code {code!r} is not 15 digits")
    return parse_area_code(code)
