"""Which property's mention labels a number (`_Labels`): the nearest mention before it in
its clause, else one right after it, else a line above that holds only a label; a count's
name right after a whole number (`13 heavy atoms`). The reader skips a number another
property's mention labels (`HOMO: -5.2 eV; LUMO: -1.1 eV` is -1.1 for the LUMO).

Separate because it is built once per answer (`_Labels.of_answer`) and asked per number."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Optional

from ...names import name_key
from .mentions import _COUNTS, _is_other, _mentions
from .properties import PropertySpec
from .syntax import _UNCERTAINTY
from .unit_headers import _HEADER_TOKEN
from .units import _UNIT_REACH, stated_unit

# What stands between an unscored property's name and a number it labels: a bracketed unit,
# emphasis and value cues (`pKa 4.2`, `pKa = 4.2`, `melting point (°C): 150`, `IC50 of 5 nM`)
_ATTACHED = re.compile(r"(?:[^\S\n]*[*_`]*[^\S\n]*\([^()\n]{1,20}\))?" + _HEADER_TOKEN + r"{0,4}[^\S\n*_`]*",
                       re.IGNORECASE)
_BARE = re.compile(r"[^\S\n*_`]*")  # `pKa 4.2`: the name and the number, nothing but spaces and emphasis between
# Where a clause ends, for labels (`_Labels`): `;`, a line's end, a comma before a space, or
# a sentence's end (`.`, `!`, `?` before a capital: `approx. -5.2` and `ca. 5` go on)
_CLAUSE_BREAK = re.compile(r"[;\n]|,(?=\s)|[.!?](?=[^\S\n]+[*_#>`\"'(\[]*[A-Z])")
_LABEL_REACH = 120  # characters before a number in which the mention that labels it is looked for
# Mentions that qualify the one before them label nothing: `the energy gap between the HOMO and
# LUMO is 4.1 eV` (the gap), and one of several in a bracket (`Gap (HOMO-LUMO): 4.1`); a bracket
# that holds one mention alone restates the name before it (`Lipophilicity (LogP): 2.1`)
_QUALIFIER_BEFORE = re.compile(r"(?<![^\W\d_])between[ \t]+(?:the[ \t]+)?(?:[^\W\d_][\w-]*[ \t]+(?:and|&)[ \t]+"
                               r"(?:the[ \t]+)?)?\Z", re.IGNORECASE)
_QUALIFIER_REACH = 48  # characters
_ALONE_IN_BRACKET_BEFORE = re.compile(r"[(\[][ \t]*(?:the[ \t]+)?\Z", re.IGNORECASE)
_ALONE_IN_BRACKET_AFTER = re.compile(r"[ \t]*[)\]]")
# A number, its unit word and closing emphasis right before such a bracket (`-5.2 eV (HOMO)`)
# A bracket closed, then a value cue and a number: `(LUMO) = -1.1`, `(HOMO): -5.2`, `(LUMO) is -1.1`
_BRACKET_HEADER = re.compile(r"[ \t]*[)\]][ \t*_`]*(?:[:=]|(?:is|was)(?![^\W\d_]))[ \t*_`]*[+−-]?\d", re.IGNORECASE)
_NUMBER_BEFORE_BRACKET = re.compile(r"(?<![^\W\d_])\d+(?:\.\d+)?(?:[ \t]*[^\W\d_][^\s()\[\]\d]{0,15})?[ \t*_`]*\Z")
_JOINED = re.compile(r"[ \t]*(?:/|&|(?<![^\W\d_])and(?![^\W\d_]))[ \t]*(?:the[ \t]+)?", re.IGNORECASE)
# A mention right after a number, its uncertainty, unit and closing emphasis, that labels it:
# `-1.1 eV (LUMO)`, `-5.2 eV (the HOMO; ...)`, `-5.2 eV is the HOMO energy`, `-5.2 eV for the HOMO`
_CLOSING_EMPHASIS = re.compile(r"[*_`]*")
_LABEL_AFTER = re.compile(r"[^\S\n]*(?:(?P<bracket>[(\[])[^\S\n]*|(?:is|was|for)[^\S\n]+)(?:(?:the|its)[^\S\n]+)?",
                          re.IGNORECASE)
_BRACKET_LABEL_END = re.compile(r"[^\S\n]*[)\];,]")  # `(LUMO)`, `(the HOMO;`: not `(LUMO: -1.1 eV)`
# A line that holds only a label (`### LUMO`, `**LUMO:**`) labels a number that starts the next line
_LABEL_LINE_BEFORE = re.compile(r"[ \t#>*_|]*(?:the[ \t]+)?", re.IGNORECASE)
_LABEL_LINE_AFTER = re.compile(r"[ \t*_:|]*(?:\n[ \t]*)+[>*_|]*(?:[-+*][ \t]+)?[ \t]*")


@dataclass(frozen=True)
class _Labels:
    """The known properties an answer names (`_mentions`) and where its clauses end
    (`_CLAUSE_BREAK`), to tell which property's mention labels a number (`label`)."""
    text: str
    mentions: list
    starts: list  # each mention's start, in order
    breaks: list  # each clause break's position, in order

    @classmethod
    def of_answer(cls, text: str, spec: "PropertySpec") -> Optional["_Labels"]:
        """The labels of an answer that names another known property than `spec`'s, else None:
        then nothing is told apart and the first number that is a value decides."""
        mentions = _mentions(text, spec)
        if all(m[3] for m in mentions):
            return None
        return cls(text, mentions, [m[0] for m in mentions], [m.start() for m in _CLAUSE_BREAK.finditer(text)])

    def label(self, start: int, end: int) -> Optional[tuple]:
        """The mention (`_mentions`) that labels the number at text[start:end], or None: the
        nearest one before it in its clause (`HOMO: -5.2`, `the LUMO is -1.1`; one inside a
        bracket closed before the number qualifies the name before it, `Gap (HOMO-LUMO): 4.1`),
        else one right after it (`_LABEL_AFTER`: `-1.1 eV (LUMO)`, `-5.2 eV is the HOMO`), else
        a line above that holds only a label (`### LUMO` then `-1.1 eV`). A number that comes
        before the asked property's mention is not skipped for that (was, 4a2dea4: reading
        started after the first mention of the asked property, so `-5.2 eV. The HOMO energy
        is high, ... HOMO-LUMO gap.` had no value, and `Answer: -5.2 eV (the HOMO; the LUMO
        would be near -1 eV)` read -1)."""
        return self._count(start, end) or self._before(start) or self._after(end) or self._line_above(start)

    def _count(self, start: int, end: int) -> Optional[tuple]:
        """A count's name right after a whole number (`13 heavy atoms`, `2 HBD`), which labels
        it before any mention before it (was: `With 13 heavy atoms, the molecular weight is
        180.16` read 13 as the molecular weight)."""
        if not self.text[start:end].isdigit():
            return None
        gap = _BARE.match(self.text, end).end()
        i = bisect.bisect_left(self.starts, gap)
        if gap == end or i == len(self.starts) or self.starts[i] != gap:
            return None
        mention = self.mentions[i]
        return mention if _is_other(mention) and name_key(mention[2]) in _COUNTS else None

    def _before(self, start: int) -> Optional[tuple]:
        at = bisect.bisect_right(self.breaks, start - 1) - 1
        floor = max(self.breaks[at] + 1 if at >= 0 else 0, start - _LABEL_REACH)
        text = self.text
        for i in range(bisect.bisect_left(self.starts, start) - 1, -1, -1):
            mention = self.mentions[i]
            if mention[0] < floor:
                return None
            if mention[1] > start or _QUALIFIER_BEFORE.search(text, max(0, mention[0] - _QUALIFIER_REACH), mention[0]):
                continue
            if _is_other(mention) and not self._attached(i, start, floor):
                continue
            if self._closed_after(mention[1], start) and not self._restates(mention):
                continue
            return self._group(i)
        return None

    def _attached(self, i: int, start: int, floor: int) -> bool:
        """Whether the unscored property's mention `i` labels the number at `start`: only one
        attached to it (`_ATTACHED`: `pKa 4.2`, `pKa = 4.2`, `IC50 of 5 nM`), and through a cue
        (`:`, `is`, ...) only where the asked property is not named before it in the clause:
        `The LogP accounting for the hydrogen bond donors is 2.1` is the LogP's 2.1. Was: the
        nearest mention before a number in its clause labelled it, and these answers had no value."""
        mention, text = self.mentions[i], self.text
        if _BARE.fullmatch(text, mention[1], start):
            return True
        if not _ATTACHED.fullmatch(text, mention[1], start):
            return False
        # only the mentions in the clause, walking back (all of them, for each number, was quadratic)
        return not any(self.mentions[j][3] for j in range(i - 1, bisect.bisect_left(self.starts, floor) - 1, -1))

    def _restates(self, mention: tuple) -> bool:
        """Whether a mention alone in a bracket restates the name before it (`Lipophilicity
        (LogP): 2.1`), so labels the number after the bracket; one right after a number labels
        that number (`_after`), not the next: `4.2 (pKa) and 2.1 (LogP)` and `-5.2 eV (HOMO) and
        -1.1 eV (LUMO)` read the pKa's and HOMO's label for the second number (was: no value)."""
        text = self.text
        bracket = _ALONE_IN_BRACKET_BEFORE.search(text, max(0, mention[0] - 8), mention[0])
        if not bracket or not _ALONE_IN_BRACKET_AFTER.match(text, mention[1]):
            return False
        if _BRACKET_HEADER.match(text, mention[1]):
            # `MO 43 (LUMO) = -1.1 eV`: a header for the number after it, whatever stands before
            # the bracket (was: the 43 took the label, and the LUMO read the HOMO's -5.2)
            return True
        return not _NUMBER_BEFORE_BRACKET.search(text, max(0, bracket.start() - _UNIT_REACH), bracket.start())

    def _group(self, i: int) -> tuple:
        """The mention `i`, or the asked property's mention among those joined to it (`HOMO/LUMO:
        -5.2 / -1.1`, `The HOMO and LUMO are -5.2 and -1.1 eV`: which number is whose is not
        told, and the first is read, as before 4a2dea4)."""
        first = i
        while first > 0 and _JOINED.fullmatch(self.text, self.mentions[first - 1][1], self.mentions[first][0]):
            first -= 1
        return next((m for m in self.mentions[first:i + 1] if m[3]), self.mentions[i])

    def _closed_after(self, position: int, start: int) -> bool:
        """Whether text[position:start] closes a bracket it did not open (the mention before
        `position` stands inside it)."""
        depth = 0
        for char in self.text[position:start]:
            if char in "([":
                depth += 1
            elif char in ")]":
                if depth == 0:
                    return True
                depth -= 1
        return False

    def _after(self, end: int) -> Optional[tuple]:
        text = self.text
        uncertainty = _UNCERTAINTY.match(text, end)
        position = uncertainty.end() if uncertainty else end
        rest = text[position:position + _UNIT_REACH]
        unit = stated_unit(rest)
        if unit is not None:
            position += len(rest) - len(rest.lstrip()) + len(unit[2])
        position = _CLOSING_EMPHASIS.match(text, position).end()
        cue = _LABEL_AFTER.match(text, position)
        if cue is None:
            return None
        i = bisect.bisect_left(self.starts, cue.end())
        if i == len(self.starts) or self.starts[i] != cue.end():
            return None
        mention = self.mentions[i]
        if cue.group("bracket") and not _BRACKET_LABEL_END.match(text, mention[1]):
            return None
        return mention

    def _line_above(self, start: int) -> Optional[tuple]:
        i = bisect.bisect_left(self.starts, start) - 1
        if i < 0 or start - self.mentions[i][1] > _LABEL_REACH:
            return None
        mention = self.mentions[i]
        line_start = self.text.rfind("\n", 0, mention[0]) + 1
        if (_LABEL_LINE_BEFORE.fullmatch(self.text, line_start, mention[0])
                and _LABEL_LINE_AFTER.fullmatch(self.text, mention[1], start)):
            return mention
        return None
