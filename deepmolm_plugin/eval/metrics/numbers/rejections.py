"""A number the answer rejects (rule 3 of `reader.py`): `not 3`, `isn't 3`, `rather than
3`, `instead of 3`, skipped with the rest of its range or choice; a number it states again
more precisely (`180 rounded, more precisely 180.16`); and the hedges that keep a number
after `not` (`not exactly 2.1`, `not 2.1 precisely`).

Separate because it is the answer's own word about one number, not the number's syntax."""

import re

# A number the answer rejects: right after `not`, `isn't`, `cannot be`, `rather than`, `instead of`
# (`The LogP is not 3 but 2.1`), maybe with an approximation word between. `not more than 3`
# is a bound (`_BOUND_BEFORE`: `than` stands before the number).
_DENIED_BEFORE = re.compile(r"(?<![^\W\d_])(?:not|isn[’']t|(?:cannot|can[’']t)[^\S\n]+be|rather[^\S\n]+than"
                            r"|instead[^\S\n]+of)[^\S\n]+(?:(?:about|around|approximately|roughly|[~≈])"
                            r"[^\S\n]*)?\Z", re.IGNORECASE)
_DENIED_REACH = 40  # characters
# A hedge, not a rejection: `not exactly 2.1`, `not quite 2.1` (no `_DENIED_BEFORE`: `exactly`
# is not among its words), `not 2.1 precisely`, `not -5.2 eV exactly`: the number is read (was: no value)
_HEDGE_AFTER = re.compile(r"[^\S\n]*(?:[^\W\d_][^\s,;]{0,11}[^\S\n]+)?(?:exactly|precisely|quite)(?![^\W\d_])",
                          re.IGNORECASE)
# A number the answer states again, more precisely, right after it: `180 g/mol rounded, more
# precisely 180.16`, `2 (to be exact, 2.13)`, `-5.2 eV; more exactly -5.21 eV`: the later one
# is the value (was: the first, 180). A word or two may stand between the number and the
# restatement (its unit, `rounded`; not the restatement's own `or`, `more`, `to`). `exactly`
# or `precisely` alone is no restatement: `2.1 (exactly 0.3 higher than ethanol)`. Possessive
# (`*+`): white space that two parts could share made a failing match quadratic in a long run
# of spaces after a number.
_RESTATED_AFTER = re.compile(r"(?:[^\S\n]*+(?!(?:or|and|more|to)(?![^\W\d_]))[^\W\d_][^\s\d,;()]{0,11}+){0,2}+"
                             r"[^\S\n]*+[,;(\u2013\u2014]?+[^\S\n]*+"
                             r"(?:or[^\S\n]++|and[^\S\n]++)?(?:more[^\S\n]++(?:precisely|exactly|accurately)"
                             r"|to[^\S\n]++be[^\S\n]++(?:more[^\S\n]++)?(?:precise|exact))"
                             r"[^\S\n]*+[:,]?+[^\S\n]*+(?=[-+\u2212]?\.?\d)", re.IGNORECASE)
