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
  {metric: why}); a mean over no pair is None.

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
"SMILES: X", "SMILES of the molecule = X", case-insensitive), the first whitespace-free run
after the first `is`, `:` or `=` (`is:` and `is =` count as one) following the word SMILES
on its line. A `:` or `=` with a non-space character on both sides, not right after the
word SMILES, is no separator but part of a run that is the SMILES itself, and that run is
taken whole ("SMILES string C=CC(=O)O" is `C=CC(=O)O`, "SMILES [CH3:1][OH:2]" is
`[CH3:1][OH:2]`: the `=` or `:` inside was read as the separator, giving the valid but
wrong `CC(=O)O` and `1][OH:2]`), while "SMILES: X", "SMILES = X", "SMILES:X", "SMILES =X"
and "The SMILES of it: X" name X. Else, when the text is a single whitespace-free run, that
run; else the whole text (which will not parse: a SMILES is not guessed out of prose).
Surrounding quotes/backticks and trailing `.`, `,`, `;` are removed (a SMILES never ends
with them), and so is a trailing `)` or `]` that opens nowhere in the run, the bracket the
SMILES was named in (`Ethanol (SMILES: CCO)` is `CCO`; was `CCO)`, invalid). Invisible
format characters (Unicode Cf: zero-width space, soft hyphen, word joiner, BOM) are removed
first, as the text metrics and the number reader do (`CCO` and a zero-width space was an
invalid SMILES).

IUPAC names (`iupac_metrics`): `extract_iupac` takes what follows "IUPAC name ... is" (or
"is:") or "IUPAC name:" to the end of the line (else the whole text), collapses whitespace, strips
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
from typing import Dict, List, Optional, Sequence, Tuple

from .text import without_format_characters, without_format_nfkc

SCALE = 100.0
MORGAN_RADIUS, MORGAN_BITS = 2, 2048
# Atoms of the largest molecule scored: far above any small molecule or peptide in the
# data, far below the ~19,000-atom chain whose MolToSmiles kills the process (8 MB stack).
MAX_ATOMS = 5000

# "<keyword> ... <separator> <value>": keyword and separator on one line. Searched in steps
# (`_named`), not as one regex: `keyword[^\n]*?separator` restarts at every keyword and
# scans to the line's end each time, quadratic in a degenerate answer repeating the
# keyword (a 100k-character "SMILES SMILES ..." took 46 s).
_SMILES_KEY = re.compile(r"\bSMILES\b", re.IGNORECASE)
# "is:" and "is =" are one separator ("The SMILES is: CCO" gave the SMILES ":"). A `:` or
# `=` inside a whitespace-free run is a bond or an atom map of the SMILES itself
# (`_smiles_start`).
_SMILES_SEP = re.compile(r"\bis\b(?:\s*[:=])?|:|=", re.IGNORECASE)
_SMILES_VALUE = re.compile(r"\s*(\S+)")
_IUPAC_KEY = re.compile(r"\bIUPAC\s+name\b", re.IGNORECASE)
_IUPAC_SEP = re.compile(r"\bis\b(?:\s*:)?|:", re.IGNORECASE)
_IUPAC_VALUE = re.compile(r"\s*([^\n]+)")
_QUOTES = "\"'`“”‘’"
# Markdown a model writes around its answer. A fenced block is its contents without the
# fence's info string ("```smiles\nCCO\n```" gave "smiles\nCCO"). Emphasis pairs go
# (`**CCO**` was a valid molecule: RDKit reads `*` as a dummy atom; `**SMILES:** CCO` gave
# `**`): `**`, `***`, `_`, `__`, `___`, and in IUPAC names `*` as well. A single `*` pair
# stays in a SMILES, where `*CC*` is a dummy atom at each end (a polymer's repeat unit).
# The content holds no `*`, `_` or line break, so each try stops at the next one (linear).
_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
_SMILES_EMPHASIS = re.compile(r"(?<![\w*])(\*{2,3}|_{1,3})([^*_\n]+)\1(?![\w*])")
_IUPAC_EMPHASIS = re.compile(r"(?<![\w*])(\*{1,3}|_{1,3})([^*_\n]+)\1(?![\w*])")


def _strip(text: str, trailing: str) -> str:
    text = text.strip().strip(_QUOTES).strip()
    text = text.rstrip(trailing)
    return text.strip().strip(_QUOTES).strip()


def _separator(text: str, key: "re.Pattern", sep: "re.Pattern") -> Optional[Tuple["re.Match", "re.Match"]]:
    """(keyword, separator): the first separator that follows a keyword on its line, or None.

    In linear time: a keyword whose line has no separator after it leaves none for the
    later keywords of that line either, so they are skipped."""
    position = 0
    while True:
        found = key.search(text, position)
        if found is None:
            return None
        line_end = text.find("\n", found.end())
        line_end = len(text) if line_end < 0 else line_end
        separator = sep.search(text, found.end(), line_end)
        if separator is not None:
            return found, separator
        position = line_end


def _named(text: str, key: "re.Pattern", sep: "re.Pattern", value: "re.Pattern") -> Optional[str]:
    """The value after the first separator that follows a keyword on its line, or None."""
    found = _separator(text, key, sep)
    match = None if found is None else value.match(text, found[1].end())
    return match.group(1) if match else None


def _smiles_start(text: str, keyword: "re.Match", separator: "re.Match") -> int:
    """Where the SMILES a separator names begins: after it, unless it is a `:` or `=` with
    a non-space character on both sides, not right after the keyword, inside a run that is
    a molecule, i.e. a bond or an atom map inside the SMILES
    (`C=CC(=O)O`, `[CH3:1]`): then the start of its run. The run is scanned back to the
    keyword at most, once per answer (linear)."""
    begin, end = separator.span()
    if separator.group()[0] not in ":=" or begin == keyword.end():
        return end
    if text[begin - 1].isspace() or end == len(text) or text[end].isspace():
        return end
    start = begin
    while start > keyword.end() and not text[start - 1].isspace():
        start -= 1
    # the whole run when it is a molecule: in `SMILES code:C1=CC=CC=C1` or
    # `SMILES (canonical):CCO` (no molecule) the `:` is the separator
    return start if mol_from_smiles(_strip(_SMILES_VALUE.match(text, start).group(1), ".,;")) is not None else end


def _named_smiles(text: str) -> Optional[str]:
    found = _separator(text, _SMILES_KEY, _SMILES_SEP)
    match = None if found is None else _SMILES_VALUE.match(text, _smiles_start(text, *found))
    return match.group(1) if match else None


def _without_markdown(text: str, emphasis: "re.Pattern") -> str:
    return emphasis.sub(r"\2", _FENCE.sub(r"\1", text or "")).strip()


def extract_smiles(text: str) -> str:
    # invisible format characters (Unicode Cf) removed, as the text metrics and the number
    # reader do: `CCO\u200b` and `\ufeffc1ccccc1O` were invalid SMILES (not printable ASCII)
    text = _without_markdown(without_format_characters(text or ""), _SMILES_EMPHASIS)
    candidate = _named_smiles(text)
    return _without_unmatched_closers(_strip(text if candidate is None else candidate, ".,;"))


def _without_unmatched_closers(smiles: str) -> str:
    """`smiles` without the `)` and `]` at its end that open nowhere in it: the bracket the
    SMILES was named in (`Ethanol (SMILES: CCO)`, `[SMILES: c1ccccc1]`; was: `CCO)`, invalid).
    A SMILES never closes a bracket it did not open."""
    while smiles[-1:] in (")", "]") and smiles.count(smiles[-1]) > smiles.count("(" if smiles[-1] == ")" else "["):
        smiles = _strip(smiles[:-1], ".,;")
    return smiles


# Hyphens a name may be typed or copied with: U+2010 (NFKC's form of the non-breaking U+2011)
_NAME_HYPHENS = str.maketrans({"\u2010": "-", "\u2011": "-"})


def extract_iupac(text: str) -> str:
    # words-v2's normaliser (format characters removed, NFKC) and one hyphen: a zero-width
    # space, soft hyphen, word joiner or U+2011 made a right name an exact-match miss, while
    # the text metrics of the same pair said identical
    text = without_format_nfkc(text or "").translate(_NAME_HYPHENS)
    text = _without_markdown(text, _IUPAC_EMPHASIS)
    candidate = _named(text, _IUPAC_KEY, _IUPAC_SEP, _IUPAC_VALUE)
    candidate = text if candidate is None else candidate
    candidate = " ".join(candidate.split())
    candidate = _strip(candidate, "")
    if candidate.endswith("."):
        candidate = candidate[:-1]
    return _strip(candidate, "")


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
    }
    for key, values in sims.items():
        result[f"{key}_fts"] = SCALE * sum(values) / len(values) if values else None
        result[f"n_undefined_{key}_fts"] = undefined[key]
    result["undefined"] = {f"{key}_fts": f"leaves out {count} of {n_valid} valid pair(s): both fingerprints "
                                         "empty, no Tanimoto similarity (0/0)"
                           for key, count in undefined.items() if count}
    return result


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
