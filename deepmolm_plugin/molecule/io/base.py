"""The contract between structure-file readers and ``read_structures``.

A reader knows one format's text and nothing about the 3D policy: it turns an open file
into ``ParsedStructure`` items, one per record, and registers itself for its suffixes
with ``register_reader``. ``read_structures`` finds the reader by suffix
(``reader_for``) and builds each record (``finish.finish`` or the atom/SMILES builders).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, FrozenSet, Iterable, Iterator, Optional, Sequence

import numpy as np
from rdkit import Chem

from ..checks import has_3d_conformer
from ..errors import MoleculeError, atom_names

__all__ = ["READERS", "ParsedStructure", "ReaderSpec", "atoms_named", "check_ascii", "check_control",
           "check_hydrogens_kept", "control_problem", "id_key", "reader_for", "register_reader",
           "short_beside_hydrogens",
           "writes_out_hydrogens",
           "title_of", "unknown_format"]


@dataclass
class ParsedStructure:
    """One record of a structure file as its reader found it; exactly one form is set.

    - ``mol``: a sanitised molecule with the file's bonds and conformer (SDF/MOL, MOL2,
      PDB with CONECT records);
    - ``elements`` + ``coords`` ``[N, 3]`` (+ total ``charge``): atoms whose bonds are still
      to be perceived from the coordinates (XYZ, PDB without CONECT records);
    - ``smiles``: a SMILES string, no coordinates (SMI/TXT, CSV);
    - ``error``: the record cannot be read; ``read_structures`` yields it as it is.

    ``index`` is the record's number in the file (its source is ``path#index``, and
    ``path#index, line`` with ``line``), or None
    for a problem of the whole file (CSV without a ``smiles`` column, text before the first
    MOL2 record). ``notes`` are what the reader already knows (RDKit warnings, a verified
    SMILES field).
    """

    index: Optional[int]
    id: str
    mol: Optional[Chem.Mol] = None
    elements: Optional[Sequence[str]] = None
    coords: Optional[np.ndarray] = None  # [N, 3] angstrom
    charge: Optional[int] = None  # None: not stated (0 for bond perception)
    smiles: Optional[str] = None
    error: Optional[MoleculeError] = None
    notes: list = field(default_factory=list)
    # where the record lies in the file ("line 4"), for readers whose record number is not
    # its line (CSV skips blank lines): the source then names both, ``path#index, line 4``
    line: Optional[str] = None
    # the file line the record starts at (SDF), for messages only: unlike ``line`` it is not
    # put in the source, which stays ``path#index`` (outputs are joined on it)
    start: Optional[int] = None

    def __post_init__(self):
        forms = [self.mol is not None, self.elements is not None, self.smiles is not None,
                 self.error is not None]
        if sum(forms) != 1:
            raise ValueError(f"ParsedStructure {self.id!r}: needs exactly one of mol, "
                             f"elements+coords, smiles, error (got {sum(forms)})")
        if (self.elements is None) != (self.coords is None):
            raise ValueError(f"ParsedStructure {self.id!r}: elements and coords come together")


# reader(handle, file name, **options): handle is the open text file (UTF-8, undecodable
# bytes as U+FFFD), the name makes fallback ids (``file#index``).
Reader = Callable[..., Iterator[ParsedStructure]]


@dataclass(frozen=True)
class ReaderSpec:
    """A registered reader: the function, the option names it takes, and how its files are
    opened (``newline=''`` for CSV, as the ``csv`` module requires)."""

    read: Reader
    options: FrozenSet[str]
    newline: Optional[str]
    # The reader sanitises molecules itself and takes ``max_heavy``, the heavy-atom cap
    # applied before sanitising (``sanitize.sanitize``; ``read_structures`` passes it)
    capped: bool = False


READERS: Dict[str, ReaderSpec] = {}  # suffix (lower case, with the dot) -> reader


def register_reader(*suffixes: str, options: Iterable[str] = (),
                    newline: Optional[str] = None, capped: bool = False) -> Callable[[Reader], Reader]:
    """Register a reader for file suffixes (``'.sdf'``) with the option names it takes
    (``capped``: it takes ``max_heavy`` too, see ``ReaderSpec``)."""

    def deco(fn: Reader) -> Reader:
        for suffix in suffixes:
            if suffix in READERS:
                raise ValueError(f"structure reader for {suffix!r} registered twice")
            READERS[suffix] = ReaderSpec(fn, frozenset(options), newline, capped)
        return fn

    return deco


COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip", ".7z")  # not read: say so, not "unknown format"


def unknown_format(path: Path) -> Optional[str]:
    """Why no reader takes ``path`` (its suffix, any case), or None when one does."""
    suffix = path.suffix.lower()
    if suffix in READERS:
        return None
    if suffix in COMPRESSED:
        return f"compressed file ({suffix}): decompress it first (structure files are read as plain text)"
    return f"unknown structure format {suffix!r}; known: {' '.join(READERS)}"


def reader_for(path: Path, options: dict) -> ReaderSpec:
    """The reader of ``path`` by its suffix (any case); a ``ValueError`` naming the file for
    an unknown suffix or an option that reader does not take (it would be ignored)."""
    problem = unknown_format(path)
    if problem:
        raise ValueError(f"{path}: {problem}")
    suffix = path.suffix.lower()
    spec = READERS[suffix]
    unknown = sorted(set(options) - spec.options)
    if unknown:
        takes = f"it takes {sorted(spec.options)}" if spec.options else "it takes no options"
        raise ValueError(f"{path}: the {suffix} reader has no option(s) {unknown}; {takes}")
    return spec


def title_of(mol: Optional[Chem.Mol], fallback: str) -> str:
    """The molecule's non-blank ``_Name`` (the record title), else ``fallback``."""
    if mol is not None and mol.HasProp("_Name") and mol.GetProp("_Name").strip():
        return mol.GetProp("_Name").strip()
    return fallback



def check_ascii(lines: Sequence[str], id: str, what: str, first: int = 1) -> None:
    """Raise ``MoleculeError`` for a line with non-ASCII text in a fixed-column part of a
    format (numbers and element symbols). Such text is never valid there, and RDKit, which
    cuts these lines by byte position, logs half a UTF-8 character: Python's logging bridge
    then fails with a SystemError instead of an error message. ``first``: the number of
    ``lines[0]`` in the record."""
    for n, line in enumerate(lines, first):
        if not line.isascii():
            raise MoleculeError(id, f"line {n}: non-ASCII text in the {what} ({line.strip()[:40]!r}): "
                                    "a binary or non-UTF-8 file?")


# Control characters (Unicode "Cc": C0, DEL, C1) other than the tab and the line breaks: a
# tab separates or pads fields, and a quoted CSV cell or a JSON string may span lines (a lone
# CR inside a ChEBI-20 description is kept, `data.sources.chebi20._rows`).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def id_key(item_id) -> str:
    """What makes two record ids one: their text in Unicode NFC ('café' typed with a combining
    accent and with 'é' look the same wherever they are shown, and were two records). The one
    rule of deepmolm-prepare (``data.sources``), training records, deepmolm-fingerprint and
    deepmolm-render."""
    return unicodedata.normalize("NFC", str(item_id))


def id_problem(item_id: str) -> Optional[str]:
    """Why the text `item_id` cannot be an id, or None. Ids are shown in tables, messages and
    one-line files: a blank one names nothing, " r1" shows as "r1", and a line break or tab
    (an SDF id field written over two lines) broke the lines it was shown in; evaluation
    refuses such question ids, so they were refused only after training. Training records
    (`data.records.check_id`), prepared items and the records of deepmolm-fingerprint and
    deepmolm-render (an SDF title, a name column) ask this one rule."""
    if not item_id.strip() or item_id != item_id.strip():
        return f"id {item_id!r} is blank or has white space around it"
    control = next((c for c in item_id if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        return f"id {item_id!r} holds a control character ({control!r}: a line break, a tab...)"
    # An invisible format character (U+FEFF of concatenated Excel exports, U+200B, U+202E)
    # made ids that show like another's: "\ufeffx" and "x" were two records looking as one.
    invisible = next((c for c in item_id if unicodedata.category(c) == "Cf"), None)
    if invisible is not None:
        return f"id {item_id!r} holds an invisible format character (U+{ord(invisible):04X})"
    return None


def control_problem(text: str, field: str) -> Optional[str]:
    """Why the text of `field` is not text, or None: it holds a control character other than
    a tab, LF or CR (form feed, vertical tab and NEL count as control characters; a NUL: a
    binary file's bytes, or JSON's "\\u0000"), shown with its position. The one rule of the
    structure readers (a record's name and structure lines: `check_control`) and the dataset
    readers (`data.sources.base`), which fail that record or row with it. Was: the NUL was kept
    (in an answer, a record's name), or, in the first 64 KiB of the file, the whole file was
    refused (`read.not_text`'s old rule for structure files)."""
    found = _CONTROL.search(text)
    if found is None:
        return None
    return (f"{field} holds the control character {found.group()!r} (character {found.start() + 1}): "
            "not text, a binary file's bytes?")


def check_control(lines: Sequence[str], id: str, field_of: Callable[[int], str], first: int = 1,
                  counted_in: str = "") -> None:
    """Raise ``MoleculeError`` for the first of a record's ``lines`` that holds a control
    character (`control_problem`), naming its line and what that line is (``field_of(n)``,
    ``n`` the line's number, ``lines[0]`` being ``first``; ``counted_in``: " of the record"
    when ``n`` is not the file's line number). Split the text at LF only:
    ``str.splitlines`` also breaks at form feed, vertical tab, \\x1c-\\x1e and NEL, and so
    hid them. Was: a NUL in a record passed silently, or refused the whole file when it was
    in the file's first 64 KiB."""
    for n, line in enumerate(lines, first):
        if _CONTROL.search(line):  # `field_of` is asked only then: it may look around the line
            raise MoleculeError(id, f"line {n}{counted_in}: {control_problem(line, field_of(n))}")


def _plain_hydrogens(atom: Chem.Atom) -> int:
    """How many hydrogen atoms of the file are bonded to ``atom`` (D and T not counted: a
    labelled hydrogen is an atom in any file, next to implicit ones, as in CHD)."""
    return sum(n.GetAtomicNum() == 1 and not n.GetIsotope() for n in atom.GetNeighbors())


def atoms_named(indices: Sequence[int], mol: Chem.Mol) -> str:
    """'atom O4' or 'atoms C5, C6' (``errors.atom_names``, with the word in number)."""
    return f"{'atom' if len(indices) == 1 else 'atoms'} {atom_names(indices, mol)}"


def short_beside_hydrogens(mol: Chem.Mol, short: Optional[Sequence[int]] = None) -> list[int]:
    """The heavy atoms of a sanitised file molecule that are short of bonds although the file
    gives hydrogens as atoms: the file lost bond orders (a converter that writes every bond
    single) or charges (an SDF without its 'M  CHG' line), and RDKit filled the gap with
    implicit hydrogens (benzoic acid read as cyclohexane-methanediol, acetate as acetic acid).
    ``short``: the atoms short of bonds (default: those RDKit gives implicit H; MOL2, which
    gets none, passes its radicals). Suspect is a short atom that has hydrogen atoms itself,
    or any short atom when the file writes out its hydrogens (`writes_out_hydrogens`). Files
    with polar hydrogens only, or a drawing's stereo H (one per stereocentre), do not: their
    short atoms without H atoms (an OH's O, a carbon's) are the format's implicit H. The one
    rule of the SDF, MOL2 and PDB readers; was: PDB only, and only when its CONECT records
    repeated no pair."""
    if short is None:
        short = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1 and a.GetNumImplicitHs()]
    if not short:
        return []
    written_out = writes_out_hydrogens(mol, short)
    return [i for i in short if written_out or _plain_hydrogens(mol.GetAtomWithIdx(i))]


def writes_out_hydrogens(mol: Chem.Mol, short: Sequence[int]) -> bool:
    """Whether the file writes out its hydrogens as atoms, not only a drawing's stereo H: a
    carbon carries two or more (a CH2 or CH3 written out), or the coordinates are 3D
    (``checks.has_3d_conformer``: a drawing's stereo H sit in a 2D layout) and some carbon
    carries H atoms while none is in ``short`` (benzoate or phenolate that lost its charge: every
    carbon a CH or H-free). Was: "a carbon has H atoms and no carbon is short" in 2D too,
    which held for a drawing that wedges the H of every H-bearing carbon (L-tartaric acid:
    its OH oxygens became "short"), and failed when the lost double bonds joined H-free
    carbons (hexamethylbenzene written all single was read, silently, as
    hexamethylcyclohexane; tetramethylethylene as 2,3-dimethylbutane)."""
    carbons = [a for a in mol.GetAtoms() if a.GetAtomicNum() == 6]
    if any(_plain_hydrogens(a) >= 2 for a in carbons):
        return True
    return (any(_plain_hydrogens(a) for a in carbons) and not any(a.GetIdx() in short for a in carbons)
            and has_3d_conformer(mol))


def check_hydrogens_kept(mol: Chem.Mol, id: str, lost: str, short: Optional[Sequence[int]] = None,
                         write_with: str = "its bond orders and charges") -> None:
    """A ``MoleculeError`` naming the atoms of ``short_beside_hydrogens``, if any; ``lost``:
    what the file likely lost, in its format's words ("bond orders (bond types written 1)");
    ``write_with``: what to write the file again with (the SDF's radicals too). Was: the
    record was read, silently, as another molecule (SDF), or told to "give all hydrogens"
    (MOL2)."""
    suspect = short_beside_hydrogens(mol, short)
    if suspect:
        are = "is" if len(suspect) == 1 else "are"
        raise MoleculeError(id, f"{atoms_named(suspect, mol)} {are} short of bonds though the file gives hydrogens "
                                f"as atoms: it lost {lost}, and would be read as another molecule; write the file "
                                f"again with {write_with}")
