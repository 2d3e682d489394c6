"""Feed format name -> adapter."""

from __future__ import annotations

from producers.base import Adapter
from producers.grid import GridAdapter
from schemas.errors import ConfigError

ADAPTERS: dict[str, type] = {"jn-grid": GridAdapter}


def adapter_for(format_name: str) -> Adapter:
    try:
        return ADAPTERS[format_name]()  # type: ignore[no-any-return]
    except KeyError:
        raise ConfigError(
            f"unknown feed format {format_name!r}: use one of {', '.join(sorted(ADAPTERS))}"
        ) from None
