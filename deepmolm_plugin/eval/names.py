"""When two task or property names are one name: `name_key`.

Case, spaces and punctuation do not make another name (`LogP`, `logp`, `log P`, `Log-P`,
full-width `ＬｏｇＰ`): the key is the name in Unicode NFKC, case-folded, with everything
but letters and digits removed. Letters outside ASCII stay (`ΔE gap` is not `gap`).
Every place that compares task or property names (task kinds, property ranges, the
report's one-task-two-spellings check) uses this one key.
"""

from __future__ import annotations

import re
import unicodedata


def name_key(name: object) -> str:
    """`HOMO-LUMO Gap` -> `homolumogap`."""
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", str(name)).casefold())
