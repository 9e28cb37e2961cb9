"""The integer-setting check every config and quantizer shares, so each states its bounds once and all word the
error alike: `<name> must be an integer in lo..hi` or `… ≥ lo`, plus an optional reason, and the value given."""

from __future__ import annotations


def check_int(name: str, value, lo: int, hi: int | None = None, *, why: str = "") -> int:
    """`value` if it is an int (a bool is not) in lo..hi (hi None: no upper bound), else ValueError naming `name`.
    `why` is appended to the bound, e.g. " (both endpoints included)"."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        bound = f"in {lo}..{hi}" if hi is not None else f"≥ {lo}"
        raise ValueError(f"{name} must be an integer {bound}{why}, got {value!r}")
    return value
