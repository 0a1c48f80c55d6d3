"""A number the answer rejects (rule 3 of `reader.py`): `not 3`, `isn't 3`, `rather than
3`, `instead of 3`, skipped with the rest of its range or choice; and the hedges that keep a
number after `not` (`not exactly 2.1`, `not 2.1 precisely`).

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
