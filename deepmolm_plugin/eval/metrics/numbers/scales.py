"""Temperature scales (K, °C, °F): the scale a unit or a property's name states, and a
temperature converted, with its offset, to the scale the name states (`bp_celsius`).

Separate because a scale is no factor: the unit tables (`units.py`) convert by one factor,
a temperature needs an offset too, and only a property named as a temperature uses it."""

from __future__ import annotations

import re
from typing import Optional, Tuple

# Temperature scales, as (how a name or a unit writes it, offset and factor to °C)
_SCALES = {"°C": (0.0, 1.0), "K": (-273.15, 1.0), "°F": (-32.0, 5.0 / 9.0)}
_SCALE_WORDS = {"c": "°C", "celsius": "°C", "degc": "°C", "centigrade": "°C", "k": "K", "kelvin": "K",
                "f": "°F", "fahrenheit": "°F", "degf": "°F"}


def _scale(written: str) -> Optional[str]:
    """The temperature scale a unit as written (`°C`, `° F`, `K`, `kelvins`, `degrees
    Celsius`) or a name's word names, or None (`degrees` alone names none)."""
    words = re.findall(r"[^\W\d_]+", written.casefold())
    scales = {_SCALE_WORDS[word] for word in words if word in _SCALE_WORDS}
    if not scales and re.fullmatch(r"kelvins?", written.strip(), re.IGNORECASE):
        scales = {"K"}
    return scales.pop() if len(scales) == 1 else None


def _in_named_scale(value: float, written: str, name: str) -> Tuple[Optional[float], Optional[str]]:
    """A temperature stated in `written` (`423.15 K`) for a property whose name implies a
    temperature: converted, with the offset, to the scale the name states (`bp_celsius`,
    `Melting Point (°C)`, `mp_K`: 150 for `423.15 K`); taken as stated where the name states
    none (its note says so: `_implied_note`). Was: taken as stated in every case, so `423.15
    K` against a reference in °C counted 273.15 off without a word. A unit whose scale is not
    told (`100 degrees`) makes the answer invalid where the name states one."""
    named = _scale(" ".join(re.findall(r"[^\W\d_]+", name)[1:]))
    if named is None:
        return value, None
    stated = _scale(written)
    if stated is None:
        return None, f"states '{value:g} {written}', a temperature in no scale it names, for {name} (in {named})"
    offset, factor = _SCALES[stated]
    to_offset, to_factor = _SCALES[named]
    return (value + offset) * factor / to_factor - to_offset, None
