"""The category catalog (data in categories.toml): item name -> stable code, and who responds."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class CategoryItem:
    code: str
    major: str
    item: str
    responder: str


@dataclass(frozen=True)
class Catalog:
    items: dict[str, tuple[CategoryItem, ...]]  # source -> items

    def code_for(self, source: str, major: str | None, item: str | None) -> str:
        """The catalog code of an item, or `other:<raw>` for an item the catalog lacks."""
        for entry in self.items.get(source, ()):
            if entry.item == item and (major is None or major == entry.major):
                return entry.code
            if entry.code == item:  # already a catalog code
                return entry.code
        raw = "/".join(x for x in (major, item) if x)
        return f"other:{raw}"


@cache
def load_catalog() -> Catalog:
    text = resources.files("schemas").joinpath("categories.toml").read_text("utf-8")
    data = tomllib.loads(text)
    return Catalog({src: tuple(CategoryItem(**row) for row in rows) for src, rows in data.items()})
