"""Where an answer names a property: the known properties' names and aliases
(`PROPERTY_RANGES`) and those of properties the report does not score (`_OTHER_PROPERTIES`:
pKa, IC50, melting point, exact mass, ionization potential, counts such as `heavy atoms`),
and whether a mention is the asked property's own (`_is_own`).

Separate from `labels.py` because finding the names is one scan of the answer; telling which
mention labels which number is another."""

from __future__ import annotations

import bisect
import functools
import re
from typing import Dict, Iterator, Optional, Tuple

from ...names import name_key
from .properties import _BY_KEY, PROPERTY_RANGES, PropertySpec


def _mentions(text: str, spec: "PropertySpec") -> list:
    """(start, end, as written, whether it names `spec`: `_is_own`) of each known property's
    name or alias in the normalised text, longest first where they overlap (`HOMO-LUMO gap`
    is the gap, not the LUMO), and of the asked property's own name where it labels a number
    (`_own_labels`), in order."""
    found = _known(text, spec)
    extra = _own_labels(text, spec, found)
    return sorted(found + extra) if extra else found


def _known(text: str, spec: "PropertySpec") -> list:
    """`_mentions` of the known properties' names and aliases alone (`_MENTION`)."""
    global _MENTION
    if _MENTION is None:
        labels = sorted({label for spec in PROPERTY_RANGES.values() for label in (spec.name,) + spec.aliases}
                        | {label for names in _OTHER_PROPERTIES for label in names}, key=len, reverse=True)
        # the lookahead for a name's first letter spares the alternatives at every other word
        firsts = "".join(sorted({c for label in labels for c in (label[0].lower(), label[0].upper())}))
        _MENTION = re.compile(r"(?<![^\W_])(?=[" + re.escape(firsts) + r"])(?:" + "|".join(
            r"[ \t_-]?".join(re.escape(word) for word in re.findall(r"[^\W_]+", label)) for label in labels)
                              + r")(?![^\W_])", re.IGNORECASE)
    own: Dict[str, bool] = {}  # by the name as written: an answer repeats few names many times
    return [(m.start(), m.end(), m.group(0), own[m.group(0)] if m.group(0) in own
             else own.setdefault(m.group(0), _is_own(m.group(0), spec))) for m in _MENTION.finditer(text)
            if _names_a_property(text, m.start(), m.end())]


def _own_names(text: str, spec: "PropertySpec", known: list) -> Iterator[Tuple[int, int, str]]:
    """The asked property's own name (`_own_name`) where no known name stands (`known`:
    `_known`, in order and apart): (start, end, as written) of each place; none for a known
    property, whose names `_MENTION` finds. Each place is compared with its neighbours among
    `known` alone (was: with every one, quadratic: 16,000 names in an answer took 30 s)."""
    pattern = _own_name(spec.name) if PROPERTY_RANGES.get(spec.name) is not spec else None
    if pattern is None:
        return
    starts = [k[0] for k in known]
    for m in pattern.finditer(text):
        i = bisect.bisect_right(starts, m.start())  # known[i - 1] starts at or before it, known[i] after
        if (i and known[i - 1][1] > m.start()) or (i < len(known) and known[i][0] < m.end()):
            continue
        yield m.start(), m.end(), m.group(0)


# What follows an own name that labels a number: a value cue, or for a name of two characters
# or more nothing, then the number (`y is 0.5`, `p_np: 0`, `NR-AR = 1`, `p np 1`)
_CUED_NUMBER = re.compile(r"[ \t*_`]*(?:[:=≈~]|is|was|equals)(?![^\W_])[ \t*_`]*[+\-−]?\.?\d", re.IGNORECASE)
_CUED_OR_BARE_NUMBER = re.compile(_CUED_NUMBER.pattern + r"|[ \t*_`]*[+\-−]?\.?\d", re.IGNORECASE)


def _own_labels(text: str, spec: "PropertySpec", found: list) -> list:
    """Mentions (as `_mentions` gives them) of the asked property's own name where no known
    name stands (a labelled column's `y`, `p_np`, `expt`): without them, `The molecular weight
    is 180 g/mol and y is 0.5` had no value for y, the molecular weight's mention labelling
    every number to its clause's end. Only where the name labels a number right after it
    (`_CUED_NUMBER`) and does not qualify a known name before it: such names are often words
    of every answer (`value`, `score`, `label`, `x`), and as mentions anywhere they labelled
    other numbers (a review: `| Property | Value |` over `| LogP | 2.1 |` read 2.1 for
    `value`, `The molecular weight value is 180 g/mol; the value is 3.1.` 180, `FDA approved
    in 1998; FDA_APPROVED = 1` 1998, `In the y direction the dipole is 1.2 D` 1.2)."""
    out, known_ends = [], {k[1] for k in found}
    for start, end, written in _own_names(text, spec, found):
        if not (_CUED_NUMBER if len(name_key(written)) < 2 else _CUED_OR_BARE_NUMBER).match(text, end):
            continue
        before = start
        while before and text[before - 1] in " \t":
            before -= 1
        if before in known_ends:  # `LogP value is 2.1`: the name qualifies the known one
            continue
        out.append((start, end, written, True))
    return out


def own_mention_end(text: str, spec: "PropertySpec") -> Optional[int]:
    """Where the first mention of the property `spec` itself ends in `text` (its name or an
    alias; for a name no known property has, the name wherever it stands), or None when the
    text does not name it."""
    known = _known(text, spec)
    first_name = next(_own_names(text, spec, known), None)
    ends = [end for _, end, _, own in known if own][:1] + ([first_name[1]] if first_name else [])
    return min(ends) if ends else None


# Words a label could be named that are words of every sentence: never looked for as a name
_FUNCTION_WORDS = frozenset("a an the i is it in of on or and to at as be by".split())


@functools.lru_cache(maxsize=256)
def _own_name(name: str) -> Optional["re.Pattern"]:
    """The pattern of a property's name that `_MENTION` does not find (a name no known
    property or alias has), its words joined by nothing, a space, `_` or `-` (`p_np`, `p
    np`, `NR-AR`), not inside a longer word; None for a known name or a function word."""
    words = re.findall(r"[^\W_]+", name)
    if not words or name.strip().casefold() in _FUNCTION_WORDS or name_key(name) in _BY_KEY:
        return None
    return re.compile(r"(?<![^\W_])" + r"[ \t_-]?".join(map(re.escape, words)) + r"(?![^\W_])", re.IGNORECASE)


_MENTION: Optional["re.Pattern"] = None  # built on first use from PROPERTY_RANGES (`_mentions`)
# Properties the report does not score that answers state beside the asked one, each a name
# and its aliases: their mentions label numbers as the known properties' do (`_Labels`), so
# `pKa 4.2, LogP 2.1` is 2.1 for LogP (was 4.2: pKa was no property's name, and its number
# the first), `IC50 = 5 nM, LogP 2.1` 2.1, `Density 1.2 g/cm³, molecular weight 180.16
# g/mol` 180.16. Words that often name no property (`Ki`, `charge`, `dipole` as in `dipole-bound`) are left out.
# Counts among them: a whole number right before their name is theirs (`13 heavy atoms`, `2 HBD`)
_COUNT_PROPERTIES = (
    ("rotatable bonds", "rotatable bond", "rotatable bond count"),
    ("hydrogen bond donors", "hydrogen bond donor", "H-bond donors", "H-bond donor", "HBD"),
    ("hydrogen bond acceptors", "hydrogen bond acceptor", "H-bond acceptors", "H-bond acceptor", "HBA"),
    ("heavy atoms", "heavy atom", "heavy atom count"),
)
_OTHER_PROPERTIES = (
    ("pKa", "pKa1", "pKa2"), ("pKb",), ("pKi",), ("pKd",), ("pIC50", "IC50"), ("pEC50", "EC50"),
    ("melting point", "mp"), ("boiling point", "bp"), ("flash point",), ("freezing point",),
    ("density",), ("refractive index",), ("dipole moment",), ("polarizability", "polarisability"),
    ("vapor pressure", "vapour pressure"),
    ("formal charge",),
    # quantities stated beside the one asked that are not it: `The exact mass is 180.06 and the
    # molecular weight is 180.16` is 180.16 for the molecular weight, `The ionization potential is
    # 6.1 eV, so the HOMO is -6.1 eV` -6.1 for the HOMO (were 180.06 and 6.1)
    ("exact mass", "monoisotopic mass"), ("ionization potential", "ionisation potential", "ionization energy",
                                          "ionisation energy"), ("electron affinity",),
) + _COUNT_PROPERTIES
_OTHER_BY_KEY = {name_key(label): tuple(name_key(n) for n in names) for names in _OTHER_PROPERTIES for label in names}
_COUNTS = frozenset(name_key(label) for names in _COUNT_PROPERTIES for label in names)
# Words around `density` that make it no property (`density functional theory`, `electron density`)
_NOT_DENSITY_BEFORE = re.compile(r"(?<![^\W\d_])(?:electron|charge|spin|probability|current|energy|number|state|"
                                 r"orbital)[ \t-]*\Z", re.IGNORECASE)
_NOT_DENSITY_AFTER = re.compile(r"[ \t-]*(?:functionals?|fitting|matrix|matrices|of[ \t]+states|plots?|maps?|"
                                r"surfaces?|isosurfaces?|distributions?)(?![^\W\d_])", re.IGNORECASE)


def _is_other(mention: tuple) -> bool:
    """Whether a mention (`_mentions`) names a property the report does not score (`_OTHER_PROPERTIES`)."""
    return not mention[3] and name_key(mention[2]) in _OTHER_BY_KEY


def _names_a_property(text: str, start: int, end: int) -> bool:
    """Whether a mention at text[start:end] names a property: not `density` in `density
    functional`, `electron density`, `charge density` (was: it labelled the HOMO's number)."""
    if name_key(text[start:end]) != "density":
        return True
    return not (_NOT_DENSITY_BEFORE.search(text, max(0, start - 16), start) or _NOT_DENSITY_AFTER.match(text, end))


def _is_own(mention: str, spec: "PropertySpec") -> bool:
    """Whether a mention (`_mentions`) names the property `spec`: its name or an alias; for a
    property that is not a known one (`property:homo_ev`, a question file's `pKa`), a name
    inside the other (`HOMO` and `homo_ev`, `logP` and `logp_exp`), so that its own name is
    never taken for another property's."""
    key, own = name_key(mention), name_key(spec.name)
    if PROPERTY_RANGES.get(spec.name) is spec:
        return key in _BY_KEY and _BY_KEY[key].name == spec.name
    if key in _OTHER_BY_KEY:
        # `bp` names a question file's `Boiling Point`, and `boiling point` a `property:bp_celsius`;
        # a short alias only as a word of the name (`mp` is inside `complexity`)
        words = re.findall(r"[^\W_]+", spec.name.casefold())
        return bool(own) and any(alias == own or alias in words or (len(alias) > 3 and alias in own)
                                 for alias in _OTHER_BY_KEY[key])
    return bool(key) and bool(own) and (key in own or own in key)
