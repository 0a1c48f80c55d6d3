"""One molecule written more than once into an output: in several splits (a test record
whose picture and tokens are a training record's), or as copies in one split whose
property labels differ. Neither is a failure (published splits are what they are), but
neither passes unsaid (was: no word in any output): the manifest counts them, the summary
prints the counts, and ``overlaps.jsonl`` lists each molecule with its record ids per split
and, for differing labels, the values.

The key is deepmolm-kflm2's copy key (`molecule.standard.molecule_keys`: canonical SMILES
of the largest fragment of the standardised molecule, neutralised), so the two tools count
the same copies. It is computed once per distinct canonical SMILES (`Tally.molecules` already
holds one per SMILES text), never per record: about 2-3 ms of RDKit per distinct molecule
at assembly (some 10 minutes for 300k molecules, against hours of conformers).

Assembly reads the chunks twice (`output.tally`, `output.write_outputs`); so does this:
pass 1 (`note`) keeps per molecule only its splits and per (split, property) its first
label, pass 2 (`collect`) keeps ids, spellings and labels of the flagged molecules only.
A pure function of the chunks, like the rest of the output: a rerun, a resume or --merge
gives the same file and counts.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from ...molecule.errors import rdkit_messages
from ...molecule.standard import molecule_keys

OVERLAPS = "overlaps.jsonl"
KEY = "canonical SMILES of the largest fragment, neutralised (deepmolm-kflm2's copy key)"


def copy_key(identity: str) -> str:
    """deepmolm-kflm2's copy key of a canonical SMILES (`smiles_identity`'s text). A text
    RDKit cannot read (an atom list's own spelling, kept as the record's SMILES) is its own key."""
    from rdkit import Chem

    with rdkit_messages():
        mol = Chem.MolFromSmiles(identity)
    if mol is None:
        return identity
    try:
        return molecule_keys([mol])[0]
    except (RuntimeError, ValueError):
        # RDKit's standardiser refused a molecule it parsed: its canonical SMILES still names
        # it (copies spelt otherwise are still found; only its salt / charge forms are not),
        # where raising would stop the assembly of every chunk, on every rerun
        return identity


class Overlaps:
    """The two passes' bookkeeping (see the module docstring); keys are `copy_key`s."""

    def __init__(self):
        self.keys: Dict[str, str] = {}  # canonical SMILES -> copy key
        self.splits: Dict[str, List[str]] = {}  # copy key -> its splits, in input order
        self.first: Dict[Tuple[str, str, str], float] = {}  # (key, split, property) -> first label
        self.differing: Dict[str, set] = {}  # key -> {(split, property)} with two different labels
        self.listed: Dict[str, dict] = {}  # pass 2: flagged key -> its overlaps.jsonl entry

    def key(self, identity: str) -> str:
        if identity not in self.keys:
            self.keys[identity] = copy_key(identity)
        return self.keys[identity]

    def note(self, key: str, split: str, properties: dict) -> None:
        """Pass 1: a record of molecule `key` in `split` with its labels."""
        splits = self.splits.setdefault(key, [])
        if split not in splits:
            splits.append(split)
        for name, value in properties.items():
            first = self.first.setdefault((key, split, name), value)
            if first != value:
                self.differing.setdefault(key, set()).add((split, name))

    def flagged(self, key: str) -> bool:
        return len(self.splits[key]) > 1 or key in self.differing

    def collect(self, key: str, split: str, record: dict) -> None:
        """Pass 2: a record of a flagged molecule (`flagged`), in input order."""
        entry = self.listed.setdefault(key, {"molecule": key, "smiles": [], "splits": {}})
        if record["smiles"] not in entry["smiles"]:  # the spellings: what a user greps the input for
            entry["smiles"].append(record["smiles"])
        entry["splits"].setdefault(split, []).append(record["id"])
        for name, value in (record.get("properties") or {}).items():
            if (split, name) in self.differing.get(key, ()):
                labels = entry.setdefault("differing_labels", {}).setdefault(split, {}).setdefault(name, [])
                labels.append({"id": record["id"], "value": value})

    def entries(self) -> List[dict]:
        """The overlaps.jsonl lines: molecules in order of their first record."""
        return [self.listed[key] for key in self.splits if key in self.listed]

    def counts(self, file: Optional[str]) -> dict:
        """The manifest's "overlaps": molecules in several splits (also per set of splits)
        and molecules with differing labels within a split."""
        several = [" + ".join(sorted(s)) for s in self.splits.values() if len(s) > 1]
        by_splits: Dict[str, int] = {}
        for names in sorted(several):
            by_splits[names] = by_splits.get(names, 0) + 1
        return {"file": file, "key": KEY, "in_several_splits": len(several), "by_splits": by_splits,
                "differing_labels": len(self.differing)}


def summary_lines(manifest: dict) -> Tuple[str, List[str]]:
    """(the counts for the summary's first line, the detail lines) of a manifest's
    "overlaps"; an output made before the check says so rather than nothing."""
    found = manifest.get("overlaps")
    if found is None:
        return "", ["  molecules in several splits: not checked (output made by an older deepmolm-prepare; "
                    "--overwrite makes it again with the check)"]
    several, differing = found["in_several_splits"], found["differing_labels"]
    head = f", {several} molecules in several splits, {differing} with differing labels within a split"
    lines = []
    if several or differing:
        parts = [f"in several splits: {', '.join(f'{k} {v}' for k, v in found['by_splits'].items())}"] if several else []
        parts += [f"copies with differing labels within a split: {differing}"] if differing else []
        lines.append(f"  same molecule {'; '.join(parts)} (kept: not failures)  (see {found['file']})")
    return head, lines
