"""Which property's mention labels a number (`_Labels`): a parallel list's i-th name its i-th
number (`HOMO/LUMO: -5.2/-1.1 eV`, `_parallel_items`), a count's name right after a whole
number (`13 heavy atoms`), a table's header over its column (`| LogP | MW |` over `| 2.1 |
180.16 |`), a mention a number is stated relative to (`5.1 eV above the HOMO`: a difference,
no property's value), the nearest mention before it in its clause (a number in a bracket right
after a mention is that mention's, `between HOMO (-6.1 eV) and LUMO`), else one right after
it, else a line above that holds only a label. The reader skips a number another property's
mention labels (`HOMO: -5.2 eV; LUMO: -1.1 eV` is -1.1 for the LUMO) and, where the asked
property is named, reads the number its own mention labels before any other (`reader.py`).

Separate because it is built once per answer (`_Labels.of_answer`) and asked per number."""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass
from typing import Optional

from ...names import name_key
from .mentions import _COUNTS, _is_other, _mentions
from .one_value import _range_or_choice_length
from .properties import _BY_KEY, PropertySpec
from .syntax import _NUMBER, _UNCERTAINTY
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
# The first of two may carry its own number in brackets: `between HOMO (-6.1 eV) and LUMO (-1.0
# eV) is 5.1 eV` is the gap's 5.1 (was: the LUMO labelled it, and the gap read -6.1)
_QUALIFIER_BEFORE = re.compile(r"(?<![^\W\d_])between[ \t]+(?:the[ \t]+)?(?:[^\W\d_][\w-]*(?:[ \t]*\([^()\n]{0,24}\))?"
                               r"[ \t]+(?:and|&)[ \t]+(?:the[ \t]+)?)?\Z", re.IGNORECASE)
_QUALIFIER_REACH = 72  # characters
# A number alone in a bracket opened right after a mention is that mention's, qualifier or not:
# `between HOMO (-6.1 eV) and ...` (was: the gap's mention before it labelled the -6.1)
# also past a hedge or a method's word: `The TPSA (about 40.5 Å²) is below the 90 Å² ...` is 40.5
# (a first version: 90), `The LogP (calculated: 2.1) indicates ...`
_BRACKET_AFTER_MENTION = re.compile(r"[ \t]*[(\[][ \t]*(?:(?:about|approximately|approx\.|around|roughly|circa"
                                    r"|ca\.|~|≈|(?:calculated|predicted|estimated|computed)[ \t]*[:=]?)[ \t]*)?",
                                    re.IGNORECASE)
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
# A number stated relative to a property is a difference, no property's value: `The LUMO lies
# 5.1 eV above the HOMO, at -1.0 eV` is -1.0 for the LUMO (was 5.1), `0.4 higher than the LogP`
_RELATIVE = re.compile(r"[^\S\n]*(?:above|below|(?:higher|lower|greater|less|more|smaller|larger)[^\S\n]+than)"
                       r"[^\S\n]+(?:(?:the|its|that[^\S\n]+of(?:[^\S\n]+the)?)[^\S\n]+)?", re.IGNORECASE)
# A number the asked property's mention introduces as a threshold or a comparison is not the asked
# molecule's value: a word of one between the mention and the number (`the molecular weight limit of
# 500 Da`, `a LogP above 5`, `the HOMO of benzene is -6.7 eV`), or a comparison's opening before the
# mention in its sentence (`For comparison, ethanol's LogP is -0.31`, `more lipophilic than
# ethanol (LogP -0.31)`, `natural products often exceed a complexity of 1000`). Such a number is read as an
# unlabelled one (a first version read it before the value stated first: `It weighs 180.16 g/mol, well
# under the molecular weight limit of 500 Da` was 500)
_THRESHOLD_BETWEEN = re.compile(r"(?<![^\W\d_])(?:limits?|thresholds?|cut-?offs?|criteri(?:on|a)|below|above|under|over"
                                r"|exceed(?:s|ing)?|within|less|more|greater|higher|lower|typical(?:ly)?|compared"
                                r"|needed|required)(?![^\W\d_])|[<>≤≥≲≳≪≫]"
                                r"|^[ \t]+of[ \t]+(?!(?:this|the|its|it|that|our|compound|molecule)(?![^\W\d_]))"
                                r"[a-z][\w-]*"
                                r"[ \t]+(?:is|was|has|[:=])", re.IGNORECASE)
_COMPARISON_BEFORE = re.compile(r"(?<![^\W\d_])(?:for|by|in)[ \t]+(?:comparison|reference)|compared[ \t]+(?:to|with)"
                                r"|(?<![^\W\d_])(?:typical(?:ly)?|than|exceed(?:s|ing)?)(?![^\W\d_])",
                                re.IGNORECASE)
# but not where the mention is the asked molecule's: `Like toluene (2.7), its logP is 3.5` is 3.5
_ITS_BEFORE = re.compile(r"(?<![^\W\d_])(?:its|(?:this|the)[ \t]+(?:molecule|compound)['’]s)[ \t]+\Z", re.IGNORECASE)
_SENTENCE_BEFORE = re.compile(r"[.!?](?=\s)|\n")  # a sentence's or line's end (not `40.5`)
_BRACKET_LABEL_END = re.compile(r"[^\S\n]*[)\];,]")  # `(LUMO)`, `(the HOMO;`: not `(LUMO: -1.1 eV)`
# A line that holds only a label (`### LUMO`, `**LUMO:**`) labels a number that starts the next line
_LABEL_LINE_BEFORE = re.compile(r"[ \t#>*_|]*(?:the[ \t]+)?", re.IGNORECASE)
_LABEL_LINE_AFTER = re.compile(r"[ \t*_:|]*(?:\n[ \t]*)+[>*_|]*(?:[-+*][ \t]+)?[ \t]*")
# A markdown table's separator row (`|---|:--:|`, `---|---`): the line above it is the header
_PIPE, _NEWLINE = re.compile(r"\|"), re.compile(r"\n")
_LEADING_PIPE = re.compile(r"\s*\|")
_TABLE_SEPARATOR = re.compile(r"[ \t]*\|?(?:[ \t]*:?-+:?[ \t]*\|)+(?:[ \t]*:?-+:?[ \t]*)?")


# A parallel list: N >= 2 mentions joined by one kind of separator, then (past a word such as
# `energies`, a unit's bracket and a value cue) N numbers joined by that kind, the i-th mention
# the i-th number's label: `HOMO/LUMO: -5.2/-1.1 eV`, `HOMO, LUMO: -5.2, -1.1 eV`, `The HOMO and
# LUMO energies are -5.2 and -1.1 eV, respectively`. Chat models answer quantum-chemistry
# questions so; was: the nearest mention labelled both numbers (the LUMO read -5.2, the HOMO
# -1.1) or `-5.2 and -1.1` was a range (no value). Another count of numbers labels nothing here.
_LIST_JOIN = re.compile(r"[ \t]*[*_`]*[ \t]*(?P<sep>/|,(?:[ \t]*(?:and|&)(?![^\W\d_]))?|(?:and|&)(?![^\W\d_]))"
                        r"[ \t]*[*_`]*[ \t]*(?:the[ \t]+)?[*_`]*", re.IGNORECASE)
_LIST_CUE = re.compile(r"(?:[ \t]+(?:orbital|energy|energies|levels?|values?|eigenvalues?)(?![^\W\d_])){0,3}"
                       r"(?:[ \t]*\([^()\n]{1,20}\))?[ \t]*[*_`]*[ \t]*"
                       r"(?:(?:[:=≈]|(?:is|are|was|were|of)(?![^\W\d_]))[ \t]*[*_`]*[ \t]*)?", re.IGNORECASE)
_LIST_NUMBER_JOIN = {"/": re.compile(r"[ \t]*/[ \t]*"),
                     ",": re.compile(r"[ \t]*(?:,[ \t]*(?:(?:and|&)(?![^\W\d_])[ \t]*)?|(?:and|&)(?![^\W\d_])[ \t]*)",
                                     re.IGNORECASE)}
_OPENING_EMPHASIS = re.compile(r"[*_`]*")


@dataclass(frozen=True)
class _Item:
    """A number of a parallel list (`_LIST_JOIN`): its mention, where it starts and ends, where
    its uncertainty (`unit_from`), its unit (`unit_end`) and its emphasis end, and in the list where the
    first number starts (`first`), the last one's unit starts (`shared_unit`) and it ends."""
    mention: tuple
    start: int
    unit_from: int
    unit_end: int
    end_of_item: int
    first: int
    shared_unit: Optional[int]  # None where the names' properties have different units (`LogP and TPSA`)
    end_of_list: int

    def alone(self, text: str) -> tuple:
        """(the text with this number as the list's only one, where the number starts there):
        read so, its neighbours are no range, choice or fraction (`-5.2 and -1.1`, `-5.2/-1.1`),
        and a number without a unit takes the unit after the last where all the names' properties
        have one unit (`-5.2 and -1.1 eV`; not `LogP and TPSA: 2.1 and 40.5 Å²`)."""
        shared = self.unit_end == self.unit_from and self.shared_unit is not None
        number = text[self.start:self.unit_from if shared else self.unit_end]
        rest = text[self.shared_unit:] if shared else text[self.end_of_list:]
        return text[:self.first] + number + rest, self.first


@dataclass(frozen=True)
class _Labels:
    """The known properties an answer names (`_mentions`) and where its clauses end
    (`_CLAUSE_BREAK`), to tell which property's mention labels a number (`label`)."""
    text: str
    mentions: list
    starts: list  # each mention's start, in order
    breaks: list  # each clause break's position, in order
    lines: list  # each line's start, in order
    pipes: list  # each `|`'s position, in order (for tables)
    # (first row's start, last row's end, header line's start, (whether the header opens with `|`, its
    # cells' bounds)) of each markdown table: the bounds once per table (per number was quadratic:
    # a header of 70,000 cells took 50 s)
    tables: list
    items: dict  # each parallel list's numbers (`_Item`) by where they start

    @classmethod
    def of_answer(cls, text: str, spec: "PropertySpec") -> Optional["_Labels"]:
        """The labels of an answer that names a known property, the asked one or another, else
        None: then nothing is told apart and the first number that is a value decides. Was:
        None where it named the asked one alone, so its mention labelled no number and `The
        molecule has 7 carbon atoms and a molecular weight of 100 g/mol` read 7."""
        mentions = _mentions(text, spec)
        if not mentions:
            return None
        pipes = [m.start() for m in _PIPE.finditer(text)] if "|" in text else []
        lines = [0] + [m.end() for m in _NEWLINE.finditer(text)] if pipes else [0]
        return cls(text, mentions, [m[0] for m in mentions], [m.start() for m in _CLAUSE_BREAK.finditer(text)],
                   lines, pipes, _tables(text, lines, pipes) if pipes else [], _parallel_items(text, mentions))

    def item(self, start: int) -> Optional[_Item]:
        """The parallel list's number (`_Item`) that starts at `start`, or None."""
        return self.items.get(start)

    def names_asked(self) -> bool:
        """Whether the answer names the asked property (a mention of its own)."""
        return any(m[3] for m in self.mentions)

    def label(self, start: int, end: int) -> Optional[tuple]:
        """The mention (`_mentions`) that labels the number at text[start:end], or None: its
        name in a parallel list (`_parallel_items`: `HOMO/LUMO: -5.2/-1.1 eV`), a count's name
        right after it (`13 heavy atoms`), its table column's header (`_column`),
        a mention it is stated relative to (`_relative`: `5.1 eV above the HOMO`, labelled as
        no property's own), the nearest one before it in its clause (`HOMO: -5.2`, `the LUMO
        is -1.1`; one inside a bracket closed before the number qualifies the name before it,
        `Gap (HOMO-LUMO): 4.1`), else one right after it (`_LABEL_AFTER`: `-1.1 eV (LUMO)`,
        `-5.2 eV is the HOMO`), else a line above that holds only a label (`### LUMO` then
        `-1.1 eV`). A number that comes before the asked property's mention is not skipped for
        that (was, 4a2dea4: reading started after the first mention of the asked property, so
        `-5.2 eV. The HOMO energy is high, ... HOMO-LUMO gap.` had no value, and `Answer: -5.2
        eV (the HOMO; the LUMO would be near -1 eV)` read -1)."""
        item = self.items.get(start)
        if item is not None:
            return item.mention  # `HOMO/LUMO: -5.2/-1.1 eV`: the list says whose each number is
        found = self._count(start, end) or self._column(start)
        if found is not None:
            return found
        past = self._past_unit(end)  # where a mention after the number would stand
        found = self._relative(past) or self._before(start) or self._after(past) or self._line_above(start)
        return None if found is not None and found[3] and self._compared(found, start) else found

    def _compared(self, mention: tuple, start: int) -> bool:
        """Whether the asked property's mention introduces the number at `start` as a threshold or
        a comparison (`_THRESHOLD_BETWEEN`, `_COMPARISON_BEFORE`), not the asked molecule's value."""
        text = self.text
        # (a table header's mention stands far above: only a mention near the number is looked at)
        if mention[1] <= start <= mention[1] + _LABEL_REACH and _THRESHOLD_BETWEEN.search(text[mention[1]:start]):
            return True
        floor = max(0, mention[0] - _LABEL_REACH)
        if _ITS_BEFORE.search(text, max(floor, mention[0] - 24), mention[0]):
            return False
        opened = max((m.end() for m in _SENTENCE_BEFORE.finditer(text, floor, mention[0])), default=floor)
        return bool(_COMPARISON_BEFORE.search(text, opened, mention[0]))

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
            if mention[1] > start:
                continue
            if _BRACKET_AFTER_MENTION.fullmatch(text, mention[1], start):
                return self._group(i)  # `HOMO (-6.1 eV)`, `pKa (4.2)`
            if _QUALIFIER_BEFORE.search(text, max(0, mention[0] - _QUALIFIER_REACH), mention[0]):
                continue
            if _is_other(mention) and not self._attached(i, start, floor):
                continue
            if self._closed_after(mention[1], start) and not self._restates(mention):
                continue
            if mention[3] and self._left_open(mention[1], start):
                # `The HOMO (orbital 21 of 40) is -6.1 eV`: a bracket after the asked property's
                # name qualifies the name, its numbers are not the value (was: 40 read)
                return None
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
        -5.2 / -1.1 / 0.3`: which number is whose is not told, and the first is read, as before
        4a2dea4; where as many numbers as names follow, `_parallel_items` tells it)."""
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

    def _left_open(self, position: int, start: int) -> bool:
        """Whether text[position:start] opens a bracket it does not close (the number at `start`
        stands inside it)."""
        depth = 0
        for char in self.text[position:start]:
            if char in "([":
                depth += 1
            elif char in ")]":
                depth = max(0, depth - 1)
        return depth > 0

    def _column(self, start: int) -> Optional[tuple]:
        """The mention in the header cell over a table cell's number (`| LogP | MW |`, `|---|---|`,
        `| 2.1 | 180.16 |`: 180.16 is the MW's; was: 2.1, the first number, for the MW), the
        asked property's where the cell names several; None outside a table or where that
        header cell names none (`| Property | Value |`: the row's name labels it, `_before`)."""
        at = bisect.bisect_right(self.tables, (start, math.inf)) - 1
        if at < 0 or start >= self.tables[at][1]:
            return None
        line = self.lines[bisect.bisect_right(self.lines, start) - 1]
        leading, bounds = self.tables[at][3]
        cell = self._cell(line, start) + (1 if leading else 0)
        if cell < 0 or cell + 1 >= len(bounds):
            return None
        low, high = bounds[cell], bounds[cell + 1]
        named = [m for m in self.mentions[bisect.bisect_left(self.starts, low):bisect.bisect_left(self.starts, high)]
                 if m[1] <= high]
        return next((m for m in named if m[3]), named[0] if named else None)

    def _cell(self, line: int, start: int) -> int:
        """How many `|` stand before `start` on its line, less a leading one: the cell's index."""
        pipes = bisect.bisect_left(self.pipes, start) - bisect.bisect_left(self.pipes, line)
        leading = _LEADING_PIPE.match(self.text, line, start)  # not a copy of the line per cell: quadratic
        return pipes - (1 if leading else 0)

    def _relative(self, past: int) -> Optional[tuple]:
        """The mention a number is stated relative to (`5.1 eV above the HOMO`, `0.4 higher than
        the LogP of ethanol`), as no property's own: a difference is no property's value. `past`:
        where the text goes on after the number (`_past_unit`)."""
        cue = _RELATIVE.match(self.text, past)
        if cue is None:
            return None
        i = bisect.bisect_left(self.starts, cue.end())
        if i == len(self.starts) or self.starts[i] != cue.end():
            return None
        return self.mentions[i][:3] + (False,)

    def _past_unit(self, end: int) -> int:
        """Where the text after a number goes on past its uncertainty, unit and closing emphasis."""
        text = self.text
        uncertainty = _UNCERTAINTY.match(text, end)
        position = uncertainty.end() if uncertainty else end
        rest = text[position:position + _UNIT_REACH]
        unit = stated_unit(rest)
        if unit is not None:
            position += len(rest) - len(rest.lstrip()) + len(unit[2])
        return _CLOSING_EMPHASIS.match(text, position).end()

    def _after(self, past: int) -> Optional[tuple]:
        text = self.text
        cue = _LABEL_AFTER.match(text, past)
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


def _tables(text: str, lines: list, pipes: list) -> list:
    """(first row's start, last row's end, header line's start, header cells) of each markdown
    table: a separator row (`_TABLE_SEPARATOR`) under a header line that holds a `|`, and the
    rows after it that hold one; the header cells as `_header_cells` gives them."""
    tables = []
    ends = lines[1:] + [len(text) + 1]
    i = 1
    while i < len(lines):
        row = text[lines[i]:ends[i] - 1]
        if ("|" not in row or "-" not in row or not _TABLE_SEPARATOR.fullmatch(row)
                or "|" not in text[lines[i - 1]:ends[i - 1] - 1]):
            i += 1
            continue
        last = i + 1
        while last < len(lines) and "|" in text[lines[last]:ends[last] - 1]:
            last += 1
        if last > i + 1:
            tables.append((lines[i + 1], ends[last - 1] - 1, lines[i - 1],
                           _header_cells(text, pipes, lines[i - 1], ends[i - 1] - 1)))
        i = last  # each row is looked at once (a separator in a table's rows starts none)
    return tables


def _header_cells(text: str, pipes: list, header: int, header_end: int) -> tuple:
    """(whether the header line opens with `|`, the bounds of its cells: its start, each `|`,
    its end); the text before a leading `|` is a cell of its own in the bounds."""
    first = bisect.bisect_left(pipes, header)
    bounds = [header] + pipes[first:bisect.bisect_left(pipes, header_end)] + [header_end]
    return bool(_LEADING_PIPE.match(text, header, header_end)), bounds


def _parallel_items(text: str, mentions: list) -> dict:
    """The numbers of each parallel list (`_LIST_JOIN`) by where they start: the mentions joined
    by one kind of separator, not qualifying a name before them (`the gap between the HOMO and
    LUMO is 4.1`), then as many numbers joined by that kind."""
    items: dict = {}
    i = 0
    while i < len(mentions):
        names, kind = [mentions[i]], None
        while i + len(names) < len(mentions):
            join = _LIST_JOIN.fullmatch(text, names[-1][1], mentions[i + len(names)][0])
            if join is None or (kind or _join_kind(join)) != _join_kind(join):
                break
            kind = _join_kind(join)
            names.append(mentions[i + len(names)])
        i += len(names)
        if (len(names) < 2 or _QUALIFIER_BEFORE.search(text, max(0, names[0][0] - _QUALIFIER_REACH), names[0][0])
                or _unnamed_first(text, names[0][0], kind)):
            continue
        numbers = _list_numbers(text, _LIST_CUE.match(text, names[-1][1]).end(), kind, len(names))
        if numbers is not None:
            units = {getattr(_BY_KEY.get(name_key(name[2])), "unit", None) for name in names}
            first, last = numbers[0][0], numbers[-1][3]
            shared = numbers[-1][1] if len(units) == 1 and None not in units else None
            items.update((n[0], _Item(name, n[0], n[1], n[2], n[3], first, shared, last))
                         for name, n in zip(names, numbers))
    return items


# A word joined to the list's first name as its names are joined (`cLogP, TPSA, MW: 2.1, 40.5`,
# `cLogP` no known name): the list may have more names than its mentions, and the numbers
# another owner each (a review: TPSA read 2.1)
_JOINED_BEFORE = re.compile(r"[^\W_][\w.-]*" + _LIST_JOIN.pattern + r"\Z", re.IGNORECASE)


def _unnamed_first(text: str, start: int, kind: str) -> bool:
    """Whether a word no mention names is joined before the list's first name (`_JOINED_BEFORE`)."""
    before = _JOINED_BEFORE.search(text, max(0, start - _QUALIFIER_REACH), start)
    return before is not None and _join_kind(before) == kind


def _more_numbers(text: str, end: int, kind: str) -> bool:
    """Whether a number joined the other way follows the list's last (`-8.12 and -10.10/-7.80
    kcal/mol (two methods)`: the last name has two values, and whose is which is not told)."""
    join = _LIST_NUMBER_JOIN[kind].match(text, end)
    return join is not None and _NUMBER.match(text, _OPENING_EMPHASIS.match(text, join.end()).end()) is not None


def _join_kind(join: "re.Match") -> str:
    """`/`, or `,` for a list's other separators (`,`, `and`, `&`, `, and`): numbers joined so
    follow names joined so."""
    return "/" if join.group("sep") == "/" else ","


def _list_numbers(text: str, position: int, kind: str, count: int) -> Optional[list]:
    """(start, where its uncertainty ends, where its unit ends, where it ends) of `count` numbers
    joined by `kind` (`_LIST_NUMBER_JOIN`) from `position`, or None where fewer or more stand,
    where the last begins a range or choice (`-2.11 and 1.1-2.8`, `112.3 and 4.63 to 6.89`,
    `2.1 and 40 or 50`: a review found the list read the first as `-2.11-2.8`, no value) or
    another number joined the other way follows it (`_more_numbers`), and
    for `/` where every number is a whole number without a unit (`MW/complexity: 1/2` is a
    fraction, no list)."""
    numbers, whole = [], []
    while True:
        number = _NUMBER.match(text, _OPENING_EMPHASIS.match(text, position).end())
        if number is None:
            return None
        uncertainty = _UNCERTAINTY.match(text, number.end())
        unit_from = uncertainty.end() if uncertainty else number.end()
        rest = text[unit_from:unit_from + _UNIT_REACH]
        unit = stated_unit(rest)
        unit_end = unit_from + len(rest) - len(rest.lstrip()) + len(unit[2]) if unit is not None else unit_from
        end = _CLOSING_EMPHASIS.match(text, unit_end).end()
        numbers.append((number.start(), unit_from, unit_end, end))
        whole.append(unit_end == unit_from and number.group(0).isdigit())
        join = _LIST_NUMBER_JOIN[kind].match(text, end)
        if join is None or not _NUMBER.match(text, _OPENING_EMPHASIS.match(text, join.end()).end()):
            after = text[number.end():number.end() + _UNIT_REACH * 4]
            ranged = (_range_or_choice_length(after) > unit_from - number.end()
                      or _more_numbers(text, end, "/" if kind == "," else ","))
            fraction = kind == "/" and all(whole)
            return numbers if len(numbers) == count and not ranged and not fraction else None
        if len(numbers) == count:
            return None  # more numbers than names: whose each is is not told
        position = join.end()
