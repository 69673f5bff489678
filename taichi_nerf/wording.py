"""How messages count and list things, so every command says it the same way."""
from __future__ import annotations

SHOWN = 3  # names listed in one line; the rest are counted


def counted(count: int, noun: str) -> str:
    """"1 image", "3 images"."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def few_names(names: list[str]) -> str:
    """The first SHOWN of ``names``, and how many more: one line however many."""
    return ", ".join(names[:SHOWN]) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
