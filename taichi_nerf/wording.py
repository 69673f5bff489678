"""How messages count and list things, so every command says it the same way."""
from __future__ import annotations

SHOWN = 3  # names listed in one line; the rest are counted
FROM_PYTHON = "from Python:"  # before the keywords a hint gives a Python caller (flag_or_keyword)


def counted(count: int, noun: str) -> str:
    """"1 image", "3 images"."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def few_names(names: list[str]) -> str:
    """The first SHOWN of ``names``, and how many more: one line however many."""
    return ", ".join(names[:SHOWN]) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def setting_words(value) -> str:
    """A config value as its flag takes it: None (automatic) "not set", a switch on/off, a list its numbers."""
    if value is None:
        return "not set"
    if isinstance(value, bool):  # as the flags say it (--unbounded / --no-unbounded), not Python's True
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return " ".join(f"{v:g}" for v in value) if isinstance(value, (list, tuple)) else str(value)


def flag_or_keyword(flag: str, keyword: str) -> str:
    """An option named in a hint that a command and a Python caller both meet (a loader's refusal, a mesh's
    warning): the flag as the command line takes it, then the keyword as the API does, ``--near/--far (from
    Python: near=/far=)``. A hint only one of them meets names its own spelling alone."""
    return f"{flag} ({FROM_PYTHON} {keyword})"
