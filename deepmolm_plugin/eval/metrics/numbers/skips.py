"""Rule 3 of the reader (`reader.py`): numbers that are not values and are passed over,
not refused. Locants and ordinals, a unit's power, a name's number (`HOMO-1`), list markers,
citations and basis sets (`_markers`), enumerations and orbital or state indices (`Step 1:`,
`MO 42`, `compound 5 has`), a function's argument (`logD(7.4) = 1.1`), and whole digits that
begin a word (`3D`). And numbers that are likely no value where the answer states another
(`_incidental`): a count of the word after it (`7 carbon atoms`), a rule's number (`rule of
5`), a year, a version.

Separate because each looks only at a few characters around one number and none decides
the answer: the reader skips them and reads on."""

from __future__ import annotations

import re
from typing import Tuple

from .one_value import _MALFORMED, _PRODUCT, _not_one_value_reason
from .syntax import _LETTER, _NUMBER
from .units import _UNIT_REACH, stated_unit

# Matched at a position in the text (pattern.match(text, pos)), not on a copy of its rest:
# a copy per skipped locant or ordinal was quadratic in a long answer.
_LOCANT = re.compile(r"'*(?:,\d+'*)*(?:[A-Z]\*?[,)\]]|[A-Z]?-[^\W\d_(\[]|[A-Z]?-[(\[])")
_ORDINAL = re.compile(r"(?:st|nd|rd|th)\b")
# A list marker at a line's start, after indentation, markdown heading marks or quote
# marks: `1. The HOMO is -5.2 eV`, `1) -5.2 eV`, `### 1. Result` (each read 1). Only with
# more text after it on the line: `5.` alone is an answer. Such a start is a list marker
# only where it is one (`_markers`, `_lone_marker`): after `#`s, or in a list (another line starts
# `n-1.` or `n+1.`, or `1.` again); alone, where the same line goes on to the value. Else
# it is the answer's value: `350. The molecule has 3 rings.` read 3.
_LIST_MARKER = re.compile(r"^(?P<lead>[ \t#>]*)(\d{1,3})[.)](?=[ \t]+\S)", re.MULTILINE)
# What a value follows on a lone marker's line (`1. The HOMO is -5.2 eV`, `1. LogP: 2.1`):
# searched in the few characters before that line's first number.
_VALUE_CUE = re.compile(r"(?:[:=≈~]|(?<![^\W\d_])(?:is|are|was|were|be|equals|of|at|about|around|approximately"
                        r"|roughly|near|circa|ca\.))[^\S\n]*\Z", re.IGNORECASE)
_VALUE_CUE_REACH = 16  # characters
# A bracketed citation: `[1] LogP = 2.1` read 1; `[2, 3]`, `[1-3]`
_CITATION = re.compile(r"\[\d{1,3}(?:[ \t]*[,-][ \t]*\d{1,3})*\]")
# A Pople basis set names the level of theory, no number: `B3LYP/6-31G*`, `6-311+G(d,p)`,
# `3-21G`, `6-311++G(2df,2pd)` (was: `The HOMO (B3LYP/6-31G*) is -5.2 eV` had no value, its
# `6` "a fraction" after the `/`, and `6-31G*` alone "a range"). Every number in it is
# skipped (`_markers`); other names glue their digits to letters (`M06-2X`, `def2-TZVP`,
# `ωB97X-D`, `STO-3G`) and are skipped as words already.
_BASIS_SET = re.compile(r"(?<![\w.])\d{1,2}-\d{2,3}(?P<plus>\+{0,2})(?P<g>[Gg])"
                        r"(?P<polarisation>\*{1,2}|\([^()\s]{1,16}\))?(?![^\W_])")
# A whole number right after one of these words numbers the step, not the value: `Step 1:
# compute. HOMO = -5.2 eV` read 1. Searched in the few characters before the number. Only
# an enumeration: the word capitalised or at a line's start (`Step 1:`, `Table 2 shows
# 3.1`, `In Table 2, the LogP is 3.1`), and more text after the number (`Item 350` alone,
# `For example 350` and `in this case 350` are 350).
_ENUMERATION_BEFORE = re.compile(r"\b(?:step|stage|part|case|example|option|method|approach|scheme|table|figure|fig\."
                                 r"|equation|eq\.|section|entry|item|reference|ref\.)[ \t]?$", re.IGNORECASE)
# An orbital's or state's index, in any case (`MO 42 (HOMO) = -5.2 eV`, `Orbital 1`, `state 2`):
# an enumeration too (was: read as the value, 42, or took the bracket's label)
_INDEX_BEFORE = re.compile(r"(?<![^\W\d_])(?:mo|orbital|state)[ \t]?\Z", re.IGNORECASE)
# A compound's or molecule's number, in any case too (`Compound 5 has MW 300.2`, `The LogP of
# compound 2 is 2.1`: was 5 and 2): an enumeration
_COMPOUND_BEFORE = re.compile(r"(?<![^\W\d_])(?:compound|molecule|cpd\.?)[ \t]?\Z", re.IGNORECASE)
# but not the molecule asked about: `The complexity of this molecule 245 is moderate`, `For this
# compound 245 is the complexity` are 245 (a first version: skipped, no value)
_THIS_COMPOUND_BEFORE = re.compile(r"(?<![^\W\d_])(?:this|the|that|our|its|each|an?)[ \t]+"
                                   r"(?:compound|molecule)[ \t]?\Z", re.IGNORECASE)
_THIS_COMPOUND_REACH = 20  # characters
_ENUMERATION_AFTER = re.compile(r"[\s.]*[^\s.]")  # more text: `Item 350` / `Item 350.` alone is 350
_AFTER_REACH = 64  # characters in which that text is looked for
_LINE_START_BEFORE = re.compile(r"(?:^|(?<=\n))[ \t#>*_-]*\Z")  # searched in a few characters
_ENUMERATION_REACH = 12  # characters: the longest word above and its space
# The power of a unit (`_exponent`): searched in the few characters before a number
_EXPONENT_BEFORE = re.compile(r"[^\W_](?:[^\S\n]*\^[^\S\n]*|\*\*)(?:\([^\S\n]*)?\Z")
_EXPONENT_REACH = 12  # characters
_LABEL_BEFORE = re.compile(r"[^\W\d_][+-]$")  # a whole number glued to a word by a sign: HOMO-1, LUMO+1
# A function's argument, a number alone in a bracket glued to a name and followed by a value cue:
# `logD(7.4) = 1.1` is 1.1 (was: 7.4, the pH the logD is taken at)
_ARGUMENT_BEFORE = re.compile(r"[^\W\d_]\(\Z")
_ARGUMENT_AFTER = re.compile(r"\)[^\S\n]*(?:[:=≈~]|(?:is|was|of)(?![^\W\d_]))", re.IGNORECASE)

# `_incidental`. A count: a whole number, a space and up to three words that are no unit and none
# of the words that follow a value (cue, function and approximation words, `units`, `points`),
# one of them a counted thing's (`_COUNT_WORDS`: `7 carbon atoms`, `2 aromatic rings`, `10 pi
# electrons`, `0 violations`, `3 N atoms`) or, for a number no mention labels, the first a plural
# (`4 stereocentres`). Each was read as the value of the property the answer named after it. Not
# any word: `The complexity is 245 due to the fused ring system` is 245 (a first version: a count, no value)
_COUNTED = re.compile(r"[^\S\n]+([^\W\d_][^\W\d_'’]*)(?:[^\S\n]+([^\W\d_][^\W\d_'’]*))?"
                      r"(?:[^\S\n]+([^\W\d_][^\W\d_'’]*))?")
_COUNT_WORDS = frozenset("""
    atom atoms ring rings group groups bond bonds electron electrons violation violations carbon carbons
    nitrogen nitrogens oxygen oxygens hydrogen hydrogens heteroatom heteroatoms halogen halogens
    substituent substituents stereocenter stereocenters stereocentre stereocentres center centers centre centres
    donor donors acceptor acceptors rule rules residue residues
""".split())
_PLURAL = re.compile(r"[^\W\d_]{2,}[^su]s")  # `rings`, not `mass`, `bonus`, `is`
_NOT_COUNTED = frozenset("""
    a an the this that these those its it it's their his her our your my some any each every no all both
    in at to of on by with from for per as than into onto over under above below between among within without via
    across after before during around about near toward towards through up down off out against along beside
    besides despite except inside outside past since until upon beyond throughout like unlike
    and or nor but so yet if because while whereas although though when where which who whose whom what whether
    then hence thus therefore vs versus
    is are was were be been being has have had do does did can could will would shall should may might must
    indicates indicating indicate suggests suggesting suggest means meaning shows showing show gives giving
    makes making reflects reflecting implies implying corresponds corresponding lies lying remains
    approximately approx roughly nearly circa ca exactly precisely only just also still even very quite rather
    much more less most least higher lower greater smaller larger fold times
    according based compared relative respectively overall predicted calculated computed estimated measured
    experimental experimentally reported observed expected typical typically
    units unit points point pts log arbitrary au
""".split())
_RULE_OF_BEFORE = re.compile(r"(?<![^\W\d_])rules?[ \t]+of[ \t]+\Z", re.IGNORECASE)  # `Lipinski's rule of 5`
_RULE_OF_REACH = 12  # characters
# A year: 1900-2099 in brackets, before `)`, or after in, since, until, from, by (`In 2020 the
# MW was measured as 300.2`, `the Crippen method (1999)`)
_YEAR = re.compile(r"(?:19|20)\d\d")
_YEAR_BEFORE = re.compile(r"(?:[(\[]|(?<![^\W\d_])(?:in|since|until|from|by)[ \t]+)\Z", re.IGNORECASE)
_YEAR_REACH = 8  # characters
# A version: after version, ver., v., release, or a year and month after a name (`RDKit 2023.09`)
_VERSION_BEFORE = re.compile(r"(?<![^\W\d_])(?:version|ver\.|v\.|release)[ \t]*\Z", re.IGNORECASE)
_YEAR_MONTH = re.compile(r"(?:19|20)\d\d\.(?:0[1-9]|1[0-2])")
_NAME_BEFORE = re.compile(r"(?<![^\W\d_])[A-Z][^\W_]*[ \t]+\Z")
_VERSION_REACH = 24  # characters


def _markers(text: str) -> Tuple[frozenset, frozenset]:
    """(the positions of the numbers that list markers and citations are made of, those of
    the lone list markers) (rule 3): a list marker's start, every character of a citation;
    a lone marker (`_lone_marker`) is decided where the scan reaches it."""
    found, lone = set(), set()
    if "." in text or ")" in text:
        starts = [(m.start(2), int(m.group(2)), "#" in m.group("lead")) for m in _LIST_MARKER.finditer(text)]
        numbers = {}
        for _, number, _ in starts:
            numbers[number] = numbers.get(number, 0) + 1
        for position, number, heading in starts:
            # `### 1. Result`; a list: `1.` and `2.`, or markdown's `1.` on every item
            listed = number - 1 in numbers or number + 1 in numbers or (number == 1 and numbers[1] > 1)
            (found if heading or listed else lone).add(position)
    if "[" in text:
        found.update(i for m in _CITATION.finditer(text) for i in range(m.start(), m.end()))
    if "-" in text:
        found.update(i for m in _BASIS_SET.finditer(text) if _is_basis_set(text, m) for i in range(m.start(), m.end()))
    return frozenset(found), frozenset(lone)


def _is_basis_set(text: str, match: "re.Match") -> bool:
    """Whether `_BASIS_SET` found one: a capital `G` (`6-31G`), or a lower-case `g` with a
    `+`, a polarisation (`6-31g*`, `6-311+g(d,p)`) or after a method's `/` (`b3lyp/6-31g`),
    so that a glued mass range (`6-31g`) stays a range."""
    return (match.group("g") == "G" or bool(match.group("plus") or match.group("polarisation"))
            or text[match.start() - 1:match.start()] == "/")


def _lone_marker(text: str, match: "re.Match", markers: Tuple[frozenset, frozenset]) -> bool:
    """Whether a number alone at a line's start as a list marker (`1. `, `1) `: no other
    line starts so) is one: where the first value after it on its line follows it directly
    (`1) -5.2 eV`) or follows a word or sign a value follows (`1. The HOMO is -5.2 eV`, `1.
    LogP: 2.1`). Else it is the value: `350. The molecule has 3 rings.`, `3. It has a
    hydroxyl group.` Looks at that line only; `1.`, which opens a list, is one wherever a
    value follows it (`1. LogP 2.1`, `1. The LogP is:\n2.1`)."""
    gap_start = match.end() + 1  # after the `.` or `)`
    opens = match.group("mant") == "1"  # `1.` opens a list: `1. LogP 2.1`, `1. The LogP is:\n2.1` read 1
    line_end = text.find("\n", match.end())
    # (a lone `1.` is one per answer, `_markers`: looking past its line once stays linear)
    line_end = len(text) if line_end < 0 or opens else line_end
    for later in _NUMBER.finditer(text, gap_start, line_end):
        if _not_a_value(text, later, markers):
            continue
        # another number so placed is a value with a sentence after it, unless the value
        # follows at once or a value's cue
        return (opens or not text[gap_start:later.start()].strip()
                or bool(_VALUE_CUE.search(text, max(gap_start, later.start() - _VALUE_CUE_REACH), later.start())))
    return False


def _not_a_value(text: str, match: "re.Match", markers: Tuple[frozenset, frozenset]) -> bool:
    """Whether a number is one rule 3 skips: a locant, an ordinal, a name's number, a list
    marker or citation (`markers`), a step's number, or whole digits that begin a word.
    Each looks at the few characters around the number only (`pattern.match(text, pos)`,
    windows), a lone list marker at its own line: searching the whole text before it, for
    every number skipped so, took 52 s for an answer of 20,000 "HOMO-1" (quadratic)."""
    start, end = match.start(), match.end()
    if not match.group("exp") and (_LOCANT.match(text, end) or _ORDINAL.match(text, end)):
        return True
    if _exponent(text, match):
        return True  # "TPSA (Å^2): 20.2" read 2
    # the rest skip whole numbers only: `-5.2 eV`, `1.5e3` are values wherever they stand
    whole = not match.group("sign") and not match.group("exp") and match.group("mant").isdigit()
    if _LABEL_BEFORE.search(text, max(0, start - 2), start) and whole:
        return True  # "HOMO-1", "LUMO+1", "CID-702": a name's number, not the value (it made the answer invalid)
    if _ARGUMENT_BEFORE.search(text, max(0, start - 2), start) and _ARGUMENT_AFTER.match(text, end):
        return True  # `logD(7.4) = 1.1`
    if not whole:
        return False
    if start in markers[0]:
        return True  # `1. The HOMO is -5.2 eV` in a list, `### 1. Result`, `[1] LogP = 2.1`
    if start in markers[1]:
        return _lone_marker(text, match, markers)
    if _enumeration(text, start, end):
        return True  # "Step 1: ..."
    # `3D`, `2D`, `1H`, `13C`: digits that begin a word, as `XLogP3` ends one, unless the
    # letters are a unit (`5eV`, `180g/mol`), or start a malformed exponent (`5e`) or a
    # product (`120x100`), which rule 4 refuses
    if not _LETTER.match(text, end):
        return False
    window = text[end:end + _UNIT_REACH]
    return stated_unit(window) is None and not _MALFORMED.match(window) and not _PRODUCT.match(window)


def _exponent(text: str, match: "re.Match") -> bool:
    """Whether a whole number, signed or not, is the power of the unit or word before it:
    right after `^`, `^(` (LaTeX's `^{2}`), `**` or `**(` glued to a letter or digit (`Å^2`,
    `nm**2`, `cm^-1`, `\\AA^{2}`; was: the header `TPSA (Å^2): 20.2` read 2). After `**`
    only glued: `**LogP** 2` closes markdown emphasis."""
    if match.group("exp") or not match.group("mant").isdigit():
        return False
    start = match.start()
    return bool(_EXPONENT_BEFORE.search(text, max(0, start - _EXPONENT_REACH), start))


def _enumeration(text: str, start: int, end: int) -> bool:
    """Whether a whole number numbers a step, table, ... (`_ENUMERATION_BEFORE`): the word
    capitalised or at a line's start, and more text after the number."""
    if (_INDEX_BEFORE.search(text, max(0, start - _ENUMERATION_REACH), start)
            or (_COMPOUND_BEFORE.search(text, max(0, start - _ENUMERATION_REACH), start)
                and not _THIS_COMPOUND_BEFORE.search(text, max(0, start - _THIS_COMPOUND_REACH), start))):
        return bool(_ENUMERATION_AFTER.match(text, end, end + _AFTER_REACH))
    word = _ENUMERATION_BEFORE.search(text, max(0, start - _ENUMERATION_REACH), start)
    if not word or not _ENUMERATION_AFTER.match(text, end, end + _AFTER_REACH):
        return False
    return word.group(0)[0].isupper() or bool(_LINE_START_BEFORE.search(text, max(0, word.start() - 8),
                                                                          word.start()))


def _incidental(text: str, match: "re.Match", labelled: bool = False) -> bool:
    """Whether a number is likely no value where the answer states another: a count of the
    word after it (`_COUNTED`: `7 carbon atoms`, `0 violations`), a rule's number (`rule of
    5`), a year (`in 2020`, `(1999)`) or a version (`version 2.1`, `RDKit 2023.09`). The
    reader reads another number before these and one of them only where there is none
    (`5 pts` alone is 5): `The molecule has 2 rings and weighs 264.32 g/mol` is 264.32 (was 2).
    A number the asked property's mention `labelled` is only a count of a counted thing's name
    (`_COUNT_WORDS`), a rule's number or one after `version`, never a year or a year's version:
    `(complexity: 1985)`, `(MW 2010.05)` are their values (a first version: read another number, or none)."""
    start, end = match.start(), match.end()
    if match.group("sign") or match.group("exp"):
        return False
    mant = match.group("mant")
    if _VERSION_BEFORE.search(text, max(0, start - _VERSION_REACH), start):
        return True  # `XLogP version 3: LogP = 2.1`, labelled or not
    if mant.isdigit():
        window = text[end:end + _UNIT_REACH]
        # not one end of a range, choice or bound (`2 thru 3`): that number's finding decides
        if _counts(text, end, labelled) and stated_unit(window) is None and _not_one_value_reason(window) is None:
            return True
        if _RULE_OF_BEFORE.search(text, max(0, start - _RULE_OF_REACH), start):
            return True
        if labelled:
            return False  # the asked property's own number is no year or version: `(complexity: 1985)`
        if _YEAR.fullmatch(mant) and (_YEAR_BEFORE.search(text, max(0, start - _YEAR_REACH), start)
                                      or text.startswith(")", end)):
            return True
    if labelled:
        return False
    return bool(_YEAR_MONTH.fullmatch(mant) and _NAME_BEFORE.search(text, max(0, start - _VERSION_REACH), start)
                and stated_unit(text[end:end + _UNIT_REACH]) is None)


def _counts(text: str, end: int, labelled: bool) -> bool:
    """Whether the words after a whole number ending at `end` name what it counts (`_COUNTED`)."""
    counted = _COUNTED.match(text, end)
    if counted is None:
        return False
    words = [w.casefold().rstrip("'’") for w in counted.groups() if w]
    if words[0] in _NOT_COUNTED:
        return False
    for word in words:
        if word in _COUNT_WORDS:
            return True
        if word in _NOT_COUNTED:
            break
    return not labelled and bool(_PLURAL.fullmatch(words[0]))
