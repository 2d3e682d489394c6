"""Feed format name -> adapter."""

from __future__ import annotations

from producers.base import Adapter
from producers.grid import GridAdapter
from producers.hotline12345 import Hotline12345Adapter
from producers.hotline_flow import HotlineFlowAdapter
from producers.nyc311 import Nyc311Adapter
from producers.wuye import WuyeAdapter
from schemas.errors import ConfigError

FORMATS = ("jn-grid", "12345", "12345-flow", "wuye", "nyc311")


def adapter_for(format_name: str, caller_key: bytes = b"civicflow-dev-key-change-me") -> Adapter:
    if format_name == "jn-grid":
        return GridAdapter()
    if format_name == "12345":
        return Hotline12345Adapter(caller_key)
    if format_name == "12345-flow":
        return HotlineFlowAdapter()
    if format_name == "wuye":
        return WuyeAdapter()
    if format_name == "nyc311":
        return Nyc311Adapter()
    raise ConfigError(f"unknown feed format {format_name!r}: use one of {', '.join(FORMATS)}")
