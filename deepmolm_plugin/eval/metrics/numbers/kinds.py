"""The kind of unit a property's name implies (`Boiling Point`: a temperature, `homo_ev`: an
energy, `logP`: no unit), for a property whose unit is not known, and the note that says so.

Separate because it reads names, not answers: `properties.py` writes its note into the
spec, `conditions.py` and `value.py` take the kind. ("PropertySpec" is only an annotation
here: properties.py imports this module.)"""

from __future__ import annotations

import re
from typing import Optional

from ...names import name_key
from .scales import _scale
from .units import _NO_UNIT_KIND

# What a property's name says its kind is, for a property whose unit is not known (a
# question file's `Boiling Point`, `property:bp_celsius`, `property:logp_exp`): then a
# number stated in a unit of another kind is not its value (`1.5 eV` for a boiling point,
# `300 K` for `property:homo`). Was: every unit taken as stated. Each kind: the first words
# that name it (`bp_celsius`, `homo_ev`), the whole names (`tm`, `energy`: `tm_score`,
# `energy_rank` name no kind), and the starts of the name's key (`name_key`: `Boiling Point`,
# `melting_temperature_c`). Was: any word anywhere (`temperature_sensitive_yield` was a temperature).
_IMPLIED_WORDS = (
    ("temperature", frozenset({"bp", "mp"}), frozenset({"tm", "tb", "tg", "temperature", "temp"}),
     ("boilingpoint", "meltingpoint", "freezingpoint", "flashpoint", "boilingtemp", "meltingtemp")),
    ("pressure", frozenset(), frozenset({"pressure"}), ("vaporpressure", "vapourpressure")),
    ("molar mass", frozenset({"mw", "molwt"}), frozenset(), ("molecularweight", "molarmass", "molecularmass")),
    ("energy", frozenset({"homo", "lumo", "gap", "scf"}), frozenset({"energy", "enthalpy", "freesolv"}),
     ("freeenergy", "totalenergy", "hydrationfreeenergy")),
    (_NO_UNIT_KIND, frozenset({"pka", "pkb", "pki", "pkd", "pic50", "pec50"}), frozenset({"complexity"}), ()),
)
# A log's first word: `log`, `logP`, `xlogp3`, `log10`, `logKow`; not `logistic`, `login`
_LOG_WORD = re.compile(r"x?log(?:[a-z]{1,3}\d*|\d+)?")


def _implied_kind(spec: "PropertySpec") -> Optional[str]:
    """The kind of unit a property's name implies (`_IMPLIED_WORDS`; a first word `log...`,
    `_LOG_WORD`, is a log: no unit), or None."""
    return implied_kind(spec.name)


def implied_kind(name: str) -> Optional[str]:
    """The kind of unit a property name implies, from its first word or the whole name only
    (`_implied_kind`), or None."""
    words = re.findall(r"[^\W_]+", name.casefold())
    if not words:
        return None
    key = name_key(name)
    if _LOG_WORD.fullmatch(words[0]):
        return _NO_UNIT_KIND
    for kind, firsts, wholes, starts in _IMPLIED_WORDS:
        if words[0] in firsts or (len(words) == 1 and words[0] in wholes) or key.startswith(starts):
            return kind
    return None


def _implied_note(name: str) -> str:
    """The note (metrics.json) saying which kind of unit a property's name implies, or ""."""
    kind = implied_kind(name)
    if kind is None:
        return ""
    if kind == _NO_UNIT_KIND:
        return "its name implies no unit: a number stated with a unit is invalid"
    note = f"its name implies {_a(kind)}: a number stated in a unit of another kind is invalid"
    if kind != "temperature":
        return note + f"; one in {_a(kind)} is taken as stated, not converted"
    named = _scale(" ".join(re.findall(r"[^\W\d_]+", name)[1:]))
    if named is not None:
        return note + f"; a temperature in K, °C or °F is converted to {named}, the scale its name states"
    return note + ("; its name states no scale, so a temperature is taken as stated in K, °C or °F alike, "
                   "not converted: name the scale (`Melting Point (°C)`, `mp_celsius`) to have it converted")


def _a(kind: str) -> str:
    """`kind` with its article: "an energy", "a unit with a prefix"."""
    return f"{'an' if kind[0] in 'aeio' else 'a'} {kind}"
