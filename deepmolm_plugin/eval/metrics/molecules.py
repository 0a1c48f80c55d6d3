"""Molecule answers: SMILES generation metrics (as MolT5's evaluation) and IUPAC names.

SMILES (`smiles_metrics(preds, refs)`), after `extract_smiles` on both sides:

- validity: predictions RDKit parses into a molecule with at least one atom, over all
  scored pairs (MolT5's validity);
- exact_match: RDKit canonical isomeric SMILES equal (`Chem.MolToSmiles`), over all
  scored pairs, an invalid prediction being a miss (MolT5 compares InChI strings; the
  canonical SMILES keeps what InChI normalises away, such as tautomers);
- maccs_fts, rdk_fts, morgan_fts: mean Tanimoto similarity over the pairs whose
  prediction is valid (MolT5's "fingerprint Tanimoto similarity"), with MACCS keys
  (`MACCSkeys.GenMACCSKeys`), the RDKit fingerprint (`Chem.RDKFingerprint`, defaults) and
  Morgan bits of radius 2 in 2048 bits (`rdFingerprintGenerator.GetMorganGenerator(
  radius=2, fpSize=2048)`; MolT5 used unfolded Morgan counts, which score a little
  differently). Scores in [0, 1] are reported x100, like every other score here. Two
  empty fingerprints (no bit set: the RDK fingerprint of a molecule without a bond, `O`,
  `[Na+]`; the MACCS keys of `[H][H]`) have no Tanimoto similarity (0/0; RDKit says 0, so
  `O` against `O` scored 0): such a pair is left out of that fingerprint's mean and
  counted (`n_undefined_<metric>`, e.g. `n_undefined_rdk_fts`, and a line in `undefined`,
  {metric: why}); a mean over no pair is None;
- bleu, levenshtein: MolT5's string scores of the SMILES as written (extracted, not
  canonicalised), over all scored pairs, an invalid prediction included: corpus BLEU-4 on
  characters (nltk corpus_bleu, one reference, no smoothing: `text.bleu` on character
  lists; None when no prediction has 4 characters) and the mean Levenshtein edit distance
  in characters (`edit_distance`). MolT5 scores its model's raw output string; ours
  answers in sentences, so the SMILES `extract_smiles` reads is scored.

A SMILES holding anything but printable ASCII (a space, a control character, `é`, a
full-width letter) does not parse: RDKit would stop there and read the rest as a name, so
`CCOé` was ethanol. What exact match ignores and keeps: aromatic and Kekulé forms, atom
order, explicit hydrogens (`[H]OC`, `[CH3][OH]`) are one molecule; stereo (`C/C=C/C` vs
`CC=CC`), charges, isotopes and salts or other fragments (`CC(=O)[O-].[Na+]` vs `CC(=O)O`)
make another one.

A pair whose reference SMILES does not parse is left out of every score and counted
(`n_invalid_references`): it is a data problem, not a model error. A SMILES of more than
`MAX_ATOMS` atoms counts as not parsing: RDKit's canonical writer recurses once per atom of
a chain and overflows the C stack (a segmentation fault, no Python error) near 19,000.

Both extractors first remove markdown: a fenced code block becomes its contents, and
emphasis pairs their contents (`**CCO**`, `__CCO__`; a single `*` pair only in IUPAC names:
in a SMILES, `*CC*` is a dummy atom at each end).

`extract_smiles(text)`: the answer's SMILES. If the text names it ("The SMILES is X.",
"SMILES: X", "SMILES of the molecule = X", case-insensitive), the whitespace-free run after
an `is`, `:` or `=` (`is:` and `is =` count as one; a hedge, an adverb or an aside right
after it is skipped: "is probably X", "is, I think, X") following the word SMILES on its line:
the first such run that is a molecule, so a real separator wins over a `=` in the prose
before it ("The SMILES for a molecule with a terminal C=C bond is C=CCC." was `C=C`, "The
SMILES string (containing a C=O carbonyl) is CC(=O)C." `C=O`, "The SMILES for this
compound, which is an alcohol, is CCO." `an`). A `:` or `=` with a non-space character on
both sides, not right after the word SMILES, is no separator but part of a run that is the
SMILES itself, and that run is taken whole ("SMILES string C=CC(=O)O" is `C=CC(=O)O`,
"SMILES [CH3:1][OH:2]" is `[CH3:1][OH:2]`: the `=` or `:` inside was read as the
separator, giving the valid but wrong `CC(=O)O` and `1][OH:2]`) when it comes before any
separator and no separator names a molecule ("SMILES string C=CC(=O)O is acrylic acid"),
while "SMILES: X", "SMILES = X", "SMILES:X", "SMILES =X" and "The SMILES of it: X" name X.
When no run named is a molecule, the first one is the answer (invalid: a SMILES is not
guessed), and a `:` or `=` inside it names nothing ("SMILES: XC=CCO" is no `CCO`). Lone
SMILES tokens after the run on its line, one an atom, make it a SMILES written with spaces,
which does not parse ("SMILES: C C O" was methane; "C C O" alone never parsed); "I" and
tokens without an atom ("CCO ( ethanol )") are prose. Else, or when the run named is no
molecule, a fenced code block the text announces, by its info string (```smiles) or by the
SMILES named on the line before it ("The SMILES for the compound is shown below." was
`shown`), is the answer; another block is not. Else, when the text is a single
whitespace-free run, that run; else the whole text (which will not parse: a SMILES is not
guessed out of prose). Surrounding quotes/backticks and trailing `.`, `,`, `;` are removed
(a SMILES never ends with them), and so is a trailing `)` or `]` that opens nowhere in the
run, the bracket the SMILES was named in (`Ethanol (SMILES: CCO)` is `CCO`; was `CCO)`,
invalid); then a run that is no molecule loses the rest of its sentence's end (`!`, `?`,
`:`, a quote) when that makes it one ("The SMILES is CCO!" was `CCO!`, invalid), a `)` the
SMILES opened staying. Invisible format characters (Unicode Cf: zero-width space, soft
hyphen, word joiner, BOM) are removed first, as the text metrics and the number reader do
(`CCO` and a zero-width space was an invalid SMILES).

IUPAC names (`iupac_metrics`): `extract_iupac` takes what follows "IUPAC name ... is" (or
"is:") or "IUPAC name:" to the end of its sentence (else the whole text, as written): the
first separator outside an aside opened after the keyword, a bracket or a comma and a
prose word up to the next comma ("The IUPAC name for this compound, which is an alcohol, is
ethanol" was `an alcohol, is ethanol`); the name ends at a comma, a space and a prose word
(`also`, `which`, `a`, `the`, ...: "ethanol, also known as ethyl alcohol"), at ". " before
a capital or at "; ", and loses a molecular formula in brackets after it ("ethanol
(C2H6O)"). Commas, brackets and spaces inside a name stay (`2,3-dimethylbutane`,
`(2S)-2-aminopropanoic acid`, `ethyl (2S)-2-aminopropanoate`, `propanoic acid, 2-methyl-,
ethyl ester`). Then it collapses whitespace, strips
quotes and a final period, after words-v2's normalisation (`text.without_format_nfkc`:
format characters removed, NFKC) and U+2010/U+2011 hyphens written `-` (a zero-width space,
soft hyphen, word joiner or non-breaking hyphen made a right name a miss); exact_match
(x100) compares these strings exactly (case matters: `(2r)` and `(2R)` are different
descriptors; an empty name matches nothing, so an empty answer to an empty reference is no
hit), and the text metrics (`metrics.text`)
are computed on them. Empty reference names are counted (`n_empty_references`).
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .text import without_format_characters, without_format_nfkc

SCALE = 100.0
MORGAN_RADIUS, MORGAN_BITS = 2, 2048
# Atoms of the largest molecule scored: far above any small molecule or peptide in the
# data, far below the ~19,000-atom chain whose MolToSmiles kills the process (8 MB stack).
MAX_ATOMS = 5000

# "<keyword> ... <separator> <value>": keyword and separator on one line. Searched in steps
# (one keyword's line at a time), not as one regex: `keyword[^\n]*?separator` restarts at
# every keyword and scans to the line's end each time, quadratic in a degenerate answer
# repeating the keyword (a 100k-character "SMILES SMILES ..." took 46 s).
_SMILES_KEY = re.compile(r"\bSMILES\b", re.IGNORECASE)
# "is:" and "is =" are one separator ("The SMILES is: CCO" gave the SMILES ":"). A `:` or
# `=` inside a whitespace-free run is a bond or an atom map of the SMILES itself
# (`_bond_run`).
# A verb phrase names the value as `is` does: "The SMILES can be written as CCO", "is given by",
# "is represented as", "would be", "reads" (each read the next word, `given`, or no SMILES).
_SMILES_SEP = re.compile(r"\b(?:(?:is|are|was|(?:would|will|can|may|could)\s+be)\s+(?:given|written|represented|"
                         r"expressed|denoted|shown)\s+(?:as|by)|(?:would|will)\s+be|becomes|reads|is)\b"
                         r"(?:\s*[:=])?|:|=", re.IGNORECASE)
_SMILES_VALUE = re.compile(r"\s*(\S+)")
# Words between a separator and its value that are the sentence's, not the SMILES: a hedge or
# an adverb ("The SMILES is probably CCO", "is therefore CCO") and an aside in commas or
# brackets ("The SMILES is, I think, CCO", "is (canonical) CCO", lowercase words only, not
# `(E)-C/C=C/C` or `(CCO)`); the value read was the word, `probably`, or the empty text
# before the comma. A SMILES never starts with one of these words.
_SEPARATOR_ASIDE = re.compile(
    r"(?:\s*(?:(?:most\s+|very\s+)?(?:probably|likely|possibly|presumably|perhaps|maybe|therefore|thus|hence|then"
    r"|simply|just|indeed|clearly|actually|basically|essentially|exactly|precisely|roughly|approximately)(?![\w-])"
    r"[ \t]*[,:]?"
    r"|,[ \t]*(?:I|we|in|as|to|according|if|therefore|thus|hence|then|probably|likely|perhaps|maybe|presumably"
    r"|roughly|approximately|essentially|basically|again)(?![\w-])[^,\n]{0,40},"
    r"|\([a-z]+(?:[ \t]+[a-z]+){0,5}\)(?=\s)))+")
_QUOTES = "\"'`“”‘’"
# One SMILES token alone between spaces: an organic-subset or aromatic atom (group 2; not
# `I`, which prose writes: "CCO I think"), a bracket atom, a bond, a branch, a ring digit,
# and the sentence's punctuation after it (group 3). A SMILES written with spaces between
# its tokens ("C C O", "C C ( = O ) O") is no SMILES: "SMILES: C C O" was methane.
_SPACED_TOKEN = re.compile(r"[ \t]+((Cl|Br|[BCNOSPFcnops]|\[[^\s\]]+\])|[()=#]|\d|%\d\d)([.,;:!?]?)(?=\s|$)")
# What ends a SMILES's sentence and never a SMILES: RDKit parses none of `CCO.`, `CCO!`,
# `CCO:`, and a closing quote or backtick is the one the SMILES was quoted in.
_SENTENCE_END = ".,;:!?" + _QUOTES
_IUPAC_KEY = re.compile(r"\bIUPAC\s+name\b", re.IGNORECASE)
_IUPAC_SEP = re.compile(r"\bis\b(?:\s*:)?|:", re.IGNORECASE)
_IUPAC_VALUE = re.compile(r"\s*([^\n]+)")
# Prose after an IUPAC name: a comma, a space and one of these lowercase words ends the name
# ("ethanol, also known as ethyl alcohol" was the name) and opens an aside up to the next
# comma ("The IUPAC name for this compound, which is an alcohol, is ethanol" named "an
# alcohol, is ethanol"). A comma inside a name has no space after it (`2,3-dimethylbutane`,
# `N,N-dimethylformamide`), and what follows a comma in a CAS-style name (", 2-amino-",
# ", ethyl ester", ", sodium salt") is none of these words.
_PROSE_WORDS = ("also", "which", "that", "who", "whose", "where", "while", "whereas", "and", "or", "but",
                "a", "an", "the", "is", "it", "its", "this", "as", "known", "commonly", "often", "being",
                "with", "not", "i.e.", "e.g.")
_NAME_PROSE = re.compile(r",\s+(?:" + "|".join(map(re.escape, _PROSE_WORDS)) + r")(?![\w-])")
# A name ends with its sentence: ". " before a capital ("ethanol. It is ..."), or "; ".
# A name holds no period but in a bicyclic descriptor (`bicyclo[2.2.2]octane`), with no
# space after it, and no semicolon.
_NAME_END = re.compile(_NAME_PROSE.pattern + r"|\.\s+(?=[A-Z])|;\s")
_ASIDE_MARK = re.compile(r"[()]|" + _NAME_PROSE.pattern + r"|,")
# A molecular formula, in brackets after a name ("ethanol (C2H6O)"): two element symbols or
# more and a digit; `(R)`, `(2S)` or `(E)` are no formula (they open a name, never end one).
_FORMULA = re.compile(r"(?=\D*\d)(?:[A-Z][a-z]?\d*){2,}")
# Markdown a model writes around its answer. A fenced block is its contents without the
# fence's info string (group 1; "```smiles\nCCO\n```" gave "smiles\nCCO"). Emphasis pairs go
# (`**CCO**` was a valid molecule: RDKit reads `*` as a dummy atom; `**SMILES:** CCO` gave
# `**`): `**`, `***`, `_`, `__`, `___`, and in IUPAC names `*` as well. A single `*` pair
# stays in a SMILES, where `*CC*` is a dummy atom at each end (a polymer's repeat unit).
# The content holds no `*`, `_` or line break, so each try stops at the next one (linear).
_FENCE = re.compile(r"```([^\n`]*)\n(.*?)```", re.DOTALL)
_SMILES_EMPHASIS = re.compile(r"(?<![\w*])(\*{2,3}|_{1,3})([^*_\n]+)\1(?![\w*])")
_IUPAC_EMPHASIS = re.compile(r"(?<![\w*])(\*{1,3}|_{1,3})([^*_\n]+)\1(?![\w*])")


def _strip(text: str, trailing: str) -> str:
    text = text.strip().strip(_QUOTES).strip()
    text = text.rstrip(trailing)
    return text.strip().strip(_QUOTES).strip()


def _line_end(text: str, position: int) -> int:
    end = text.find("\n", position)
    return len(text) if end < 0 else end


def _bond_run(text: str, keyword: "re.Match", separator: "re.Match") -> Optional[Tuple[int, int]]:
    """The span of the run a `:` or `=` separator match lies in when it is a bond or an atom
    map of a molecule (`C=CC(=O)O`, `[CH3:1]`): non-space on both sides, not right after the
    keyword, in a run that parses; else None (`SMILES code:C1=CC=CC=C1`, `SMILES
    (canonical):CCO`: no molecule, the `:` is the separator). The run is scanned back to the
    keyword at most, once per run (`_smiles_on_line` goes on after it)."""
    begin, end = separator.span()
    if separator.group()[0] not in ":=" or begin == keyword.end():
        return None
    if text[begin - 1].isspace() or end == len(text) or text[end].isspace():
        return None
    start = begin
    while start > keyword.end() and not text[start - 1].isspace():
        start -= 1
    run = _SMILES_VALUE.match(text, start)
    return run.span(1) if mol_from_smiles(_cleaned(run.group(1))) is not None else None


def _value_span(text: str, start: int) -> Optional[Tuple[int, int]]:
    """Where the value named at `start` runs: its whitespace-free run, with the lone SMILES
    tokens after it on its line when they hold an atom (a SMILES written with spaces, which
    then does not parse, as the same text without the keyword: `SMILES: C C O`). Tokens
    without an atom ("CCO ( ethanol )") and a run ending the sentence (`C,`) add nothing."""
    value = _SMILES_VALUE.match(text, start)
    if value is None:
        return None
    begin, end = value.span(1)
    position, atom = end, False
    while text[position - 1] not in _SENTENCE_END:
        token = _SPACED_TOKEN.match(text, position)
        if token is None:
            break
        position, atom = token.end(), atom or token.group(2) is not None
    return begin, position if atom else end


def _smiles_on_line(text: str, keyword: "re.Match") -> Optional[str]:
    """The SMILES the keyword's line names, or None when no separator follows the keyword.

    Left to right, the first value after a separator that is a molecule wins: a real
    separator is preferred to a `=` in prose before it ("The SMILES for a molecule with a
    terminal C=C bond is C=CCC." was `C=C`). A run whose `:` or `=` is a bond or an atom map
    (`_bond_run`) before any separator is the SMILES when no separator names a molecule
    ("SMILES string C=CC(=O)O is acrylic acid"); after a separator it is prose. Else the
    first separator's value, which does not parse: a SMILES is not guessed. A `:` or `=`
    inside a value just read is that value's ("SMILES: XC=CCO" is no `CCO`)."""
    first = bond_run = None
    line_end, position, value_end = _line_end(text, keyword.end()), keyword.end(), -1
    while True:
        separator = _SMILES_SEP.search(text, position, line_end)
        if separator is None:
            return bond_run or first
        position = separator.end()
        if position < value_end:
            continue
        run = _bond_run(text, keyword, separator)
        if run is not None:
            bond_run = bond_run or (None if first else _cleaned(text[run[0]:run[1]]))
            position = run[1]
            continue
        aside = _SEPARATOR_ASIDE.match(text, position, line_end)
        span = _value_span(text, position if aside is None else aside.end())
        if span is None:
            continue
        value = _cleaned(text[span[0]:span[1]])
        if mol_from_smiles(value) is not None:
            return value
        first, value_end = first or value, span[1]


def _named_smiles(text: str) -> Optional[str]:
    """The SMILES the first keyword line with a separator names (`_smiles_on_line`), or None."""
    return _first_named(text, _SMILES_KEY, _smiles_on_line)


def _first_named(text: str, key: "re.Pattern", on_line: Callable) -> Optional[str]:
    """What `on_line(text, keyword)` names for the first match of `key` whose line names
    something, or None. In linear time: a keyword whose line names nothing leaves nothing
    for the later keywords of that line either, so they are skipped."""
    position = 0
    while True:
        keyword = key.search(text, position)
        if keyword is None:
            return None
        named = on_line(text, keyword)
        if named is not None:
            return named
        position = _line_end(text, keyword.end())


def _announced_block(text: str) -> Optional[str]:
    """The content of the first fenced code block announced as the SMILES: by its info
    string (```smiles), or by the line before it naming the SMILES ("The SMILES for the
    compound is shown below." and a block: was `shown`). Another block is no SMILES."""
    for fence in _FENCE.finditer(text):
        if fence.group(1).strip().lower() == "smiles":
            return fence.group(2)
        end = fence.start()
        while end > 0 and text[end - 1].isspace():
            end -= 1
        if _SMILES_KEY.search(text, text.rfind("\n", 0, end) + 1, end):
            return fence.group(2)
    return None


def _without_markdown(text: str, emphasis: "re.Pattern") -> str:
    return emphasis.sub(r"\2", _FENCE.sub(r"\2", text or "")).strip()


def extract_smiles(text: str) -> str:
    # invisible format characters (Unicode Cf) removed, as the text metrics and the number
    # reader do: `CCO\u200b` and `\ufeffc1ccccc1O` were invalid SMILES (not printable ASCII)
    text = without_format_characters(text or "")
    flat = _without_markdown(text, _SMILES_EMPHASIS)
    named = _named_smiles(flat)
    if named is None or mol_from_smiles(named) is None:
        # "```smiles\nCCO\n```\nThis is ethanol." was the whole text, invalid
        block = _announced_block(text)
        if block is not None:
            return _cleaned(_without_markdown(block, _SMILES_EMPHASIS))
    return _cleaned(flat) if named is None else named


def _cleaned(value: str) -> str:
    """`value` without the quotes, `.`, `,`, `;` and unclosed brackets around it, and then
    without the rest of its sentence's end (`!`, `?`, `:`, a quote after them) only when
    that makes it a molecule ("The SMILES is CCO!" was `CCO!`, invalid). A `)` or `]` the
    SMILES opened stays (`C(C)!` is `C(C)`)."""
    plain = _without_unmatched_closers(_strip(value, ".,;"), ".,;" + _QUOTES)
    if mol_from_smiles(plain) is not None:
        return plain
    bare = _without_unmatched_closers(plain, _SENTENCE_END)
    return bare if mol_from_smiles(bare) is not None else plain


def _without_unmatched_closers(smiles: str, punctuation: str) -> str:
    """`smiles` without the `)` and `]` at its end that open nowhere in it, and the
    `punctuation` and spaces between them: the bracket the SMILES was named in (`Ethanol
    (SMILES: CCO)`, `[SMILES: c1ccccc1]`; was: `CCO)`, invalid). A SMILES never closes a
    bracket it did not open. Counted once, so linear in a run of thousands of `)`."""
    opened = {")": smiles.count("("), "]": smiles.count("[")}
    closed = {")": smiles.count(")"), "]": smiles.count("]")}
    end = len(smiles)
    while end:
        last = smiles[end - 1]
        if last in closed and closed[last] > opened[last]:
            closed[last] -= 1
        elif not (last in punctuation or last.isspace()):
            break
        end -= 1
    return smiles[:end]


# Hyphens a name may be typed or copied with: U+2010 (NFKC's form of the non-breaking U+2011)
_NAME_HYPHENS = str.maketrans({"\u2010": "-", "\u2011": "-"})


def _iupac_separator(text: str, keyword: "re.Match") -> Optional["re.Match"]:
    """The first separator after the keyword on its line outside an aside opened after the
    keyword (a bracket; a comma and a prose word up to the next comma: "The IUPAC name for
    this compound, which is an alcohol, is ethanol"); the first one when all are inside."""
    first, depth, aside, position = None, 0, False, keyword.end()
    for separator in _IUPAC_SEP.finditer(text, keyword.end(), _line_end(text, keyword.end())):
        for mark in _ASIDE_MARK.finditer(text, position, separator.start()):
            if mark.group() in "()":
                depth = depth + 1 if mark.group() == "(" else max(depth - 1, 0)
            elif aside or len(mark.group()) > 1:
                aside = not aside  # a comma closes an aside; a comma and a prose word open one
        position = separator.end()
        if depth == 0 and not aside:
            return separator
        first = first or separator
    return first


def _named_iupac(text: str) -> Optional[str]:
    """The name the first keyword line with a separator names, to the end of its sentence
    (`_NAME_END`), or None (`_first_named`)."""
    return _first_named(text, _IUPAC_KEY, _iupac_on_line)


def _iupac_on_line(text: str, keyword: "re.Match") -> Optional[str]:
    """The name after `keyword`'s separator on its line, to the end of its sentence."""
    separator = _iupac_separator(text, keyword)
    value = None if separator is None else _IUPAC_VALUE.match(text, separator.end())
    if value is None:
        return None
    end = _NAME_END.search(value.group(1))
    return value.group(1) if end is None else value.group(1)[:end.start()]


def _without_formula(name: str) -> str:
    """`name` without a molecular formula in brackets after it, a space before ("ethanol
    (C2H6O)" was the name; `propan-2-ol(C3H8O)` is left as written)."""
    start = name.rfind("(")
    formula = start > 0 and name.endswith(")") and name[start - 1].isspace()
    return name[:start] if formula and _FORMULA.fullmatch(name, start + 1, len(name) - 1) else name


def _without_final_period(name: str) -> str:
    name = _strip(name, "")
    return _strip(name[:-1] if name.endswith(".") else name, "")


def extract_iupac(text: str) -> str:
    # words-v2's normaliser (format characters removed, NFKC) and one hyphen: a zero-width
    # space, soft hyphen, word joiner or U+2011 made a right name an exact-match miss, while
    # the text metrics of the same pair said identical
    text = without_format_nfkc(text or "").translate(_NAME_HYPHENS)
    text = _without_markdown(text, _IUPAC_EMPHASIS)
    named = _named_iupac(text)
    candidate = _without_final_period(" ".join((text if named is None else named).split()))
    if named is not None:  # "is ethanol (C2H6O)." was `ethanol (C2H6O)`
        candidate = _without_final_period(_without_formula(candidate))
    return candidate


def mol_from_smiles(smiles: str):
    """An RDKit molecule with 1 to MAX_ATOMS atoms, or None (RDKit's parse errors silenced)."""
    from rdkit import Chem, rdBase

    # Printable ASCII only: RDKit stops at a space or a non-ASCII byte and takes the rest as
    # a name, so "CCOé" was ethanol, an exact match (as molecule.sanitize.check_smiles_text).
    if not smiles or not all(33 <= ord(c) <= 126 for c in smiles):
        return None
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
    if mol is None or not 0 < mol.GetNumAtoms() <= MAX_ATOMS:
        return None
    # Atom-map numbers label atoms (reaction-derived references carry them); they are not
    # chemistry: `[CH3:1][CH2:2][OH:3]` is ethanol, and was no exact match for `CCO`.
    for atom in mol.GetAtoms():
        atom.SetAtomMapNum(0)
    return mol


# a SMILES's characters: organic-subset atoms, bracket atoms, bonds, branches, ring closures
_SMILES_LIKE = re.compile(r"(?:Cl|Br|[BCNOPSFIcnops]|\[[^\s\[\]]*\]|[-=#$:/\\()%.*~@+\d])+")


def smiles_like(text: str) -> bool:
    """Whether `text` is written in SMILES's characters alone (`C1CC`, `[Xx]CO`), a SMILES
    whether or not it parses, unlike a name (`propyne`, `ethanol`)."""
    return bool(text) and _SMILES_LIKE.fullmatch(text) is not None


def canonical_smiles(smiles: str) -> Optional[str]:
    from rdkit import Chem

    mol = mol_from_smiles(smiles)
    return None if mol is None else Chem.MolToSmiles(mol)


def fingerprints(mol) -> Dict[str, object]:
    from rdkit import Chem
    from rdkit.Chem import MACCSkeys, rdFingerprintGenerator

    morgan = rdFingerprintGenerator.GetMorganGenerator(radius=MORGAN_RADIUS, fpSize=MORGAN_BITS)
    return {"maccs": MACCSkeys.GenMACCSKeys(mol), "rdk": Chem.RDKFingerprint(mol), "morgan": morgan.GetFingerprint(mol)}


def smiles_metrics(preds: Sequence[str], refs: Sequence[str], extract: bool = True) -> Dict[str, object]:
    """validity, exact_match and MACCS/RDK/Morgan FTS (x100) of predicted SMILES answers."""
    from rdkit import Chem, DataStructs

    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions but {len(refs)} references")
    n = n_valid = n_exact = n_bad_refs = 0
    written: List[Tuple[str, str]] = []  # the scored pairs' SMILES as written, for the string scores
    sims: Dict[str, List[float]] = {"maccs": [], "rdk": [], "morgan": []}
    undefined = dict.fromkeys(sims, 0)  # pairs of two empty fingerprints, per fingerprint
    for pred, ref in zip(preds, refs):
        if extract:
            pred, ref = extract_smiles(pred), extract_smiles(ref)
        ref_mol = mol_from_smiles(ref)
        if ref_mol is None:
            n_bad_refs += 1
            continue
        n += 1
        written.append((pred, ref))
        pred_mol = mol_from_smiles(pred)
        if pred_mol is None:
            continue
        n_valid += 1
        n_exact += Chem.MolToSmiles(pred_mol) == Chem.MolToSmiles(ref_mol)
        fp_pred, fp_ref = fingerprints(pred_mol), fingerprints(ref_mol)
        for key in sims:
            if fp_ref[key].GetNumOnBits() == fp_pred[key].GetNumOnBits() == 0:
                undefined[key] += 1  # 0/0, which RDKit returns as 0 (module docstring)
            else:
                sims[key].append(DataStructs.TanimotoSimilarity(fp_ref[key], fp_pred[key]))
    result: Dict[str, object] = {
        "n": n, "n_valid": n_valid, "n_invalid_references": n_bad_refs,
        "validity": SCALE * n_valid / n if n else None,
        "exact_match": SCALE * n_exact / n if n else None,
        **string_scores(written),
    }
    for key, values in sims.items():
        result[f"{key}_fts"] = SCALE * sum(values) / len(values) if values else None
        result[f"n_undefined_{key}_fts"] = undefined[key]
    result["undefined"] = {f"{key}_fts": f"leaves out {count} of {n_valid} valid pair(s): both fingerprints "
                                         "empty, no Tanimoto similarity (0/0)"
                           for key, count in undefined.items() if count}
    if n and result["bleu"] is None:
        result["undefined"]["bleu"] = "no predicted SMILES has 4 characters (no 4-gram to score)"
    return result


def string_scores(pairs: Sequence[Tuple[str, str]]) -> Dict[str, Optional[float]]:
    """MolT5's character BLEU-4 (x100) and mean Levenshtein distance of (predicted,
    reference) SMILES strings; None for no pair."""
    from .text import bleu

    if not pairs:
        return {"bleu": None, "levenshtein": None}
    return {"bleu": bleu([list(p) for p, _ in pairs], [list(r) for _, r in pairs])["bleu4"],
            "levenshtein": sum(edit_distance(p, r) for p, r in pairs) / len(pairs)}


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions, each 1) of two strings:
    Myers' bit-parallel algorithm (Hyyrö's form), one pass over the longer string with the
    shorter one's columns as bits of an integer, so a runaway 100,000-character answer
    against a 60-character reference costs 100,000 steps, not a 6-million-cell table."""
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if not m:
        return len(a)
    full, top = (1 << m) - 1, 1 << (m - 1)
    positions: Dict[str, int] = {}  # character -> the bits of its places in b
    for i, char in enumerate(b):
        positions[char] = positions.get(char, 0) | 1 << i
    plus, minus, distance = full, 0, m  # vertical +1 / -1 deltas of the current column
    for char in a:
        eq = positions.get(char, 0)
        xv = eq | minus
        xh = (((eq & plus) + plus) ^ plus) | eq
        hplus = minus | (~(xh | plus) & full)
        hminus = plus & xh
        if hplus & top:
            distance += 1
        elif hminus & top:
            distance -= 1
        hplus = (hplus << 1 | 1) & full
        hminus = (hminus << 1) & full
        plus = hminus | (~(xv | hplus) & full)
        minus = hplus & xv
    return distance


def iupac_metrics(preds: Sequence[str], refs: Sequence[str], tokenizer=None, wordnet=None,
                  nltk_data=None) -> Dict[str, object]:
    """Exact match (x100) of extracted IUPAC names, plus the text metrics on those names."""
    from .text import text_metrics

    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions but {len(refs)} references")
    names = [extract_iupac(p) for p in preds]
    targets = [extract_iupac(r) for r in refs]
    result: Dict[str, object] = {
        "n": len(names),
        # `a and`: an empty answer to an empty reference (a data problem) is not a right name
        "exact_match": SCALE * sum(bool(a) and a == b for a, b in zip(names, targets)) / len(names)
        if names else None,
        "n_empty_references": sum(not b for b in targets),
    }
    result.update(text_metrics(names, targets, tokenizer=tokenizer, wordnet=wordnet, nltk_data=nltk_data))
    return result
