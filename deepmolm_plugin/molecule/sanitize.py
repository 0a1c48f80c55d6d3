"""RDKit sanitisation and SMILES parsing, with RDKit's own words kept.

Failures (unparseable SMILES, valence errors) are a ``MoleculeError`` whose reason includes
RDKit's message; warnings on a molecule that succeeds become its notes ("RDKit: ...").

A SMILES is checked before RDKit sees it, because RDKit reads some bad strings as another
molecule without a word: it stops at the first whitespace or non-ASCII byte and takes the
rest as a name (``'CC O'`` is ethane, ``'CC(=O)Oé'`` acetic acid, ``'CC\\nO'`` ethane). So
leading and trailing whitespace is stripped, and text after an inner space (other than one
CXSMILES ``|...|`` extension, with nothing after it: ``'CC |$;$|O'`` was ethane too), control
characters and non-ASCII characters are errors.
(Non-ASCII text also crashed RDKit's error log: it cuts messages inside a UTF-8 character.)
"""

from __future__ import annotations

import re

from rdkit import Chem

from ..usage import shortened

from .errors import (MoleculeError, MoleculeTooLarge, as_notes, atom_names, rdkit_messages, sanitization_failed,
                     with_messages)

__all__ = ["check_smiles_text", "parse_smiles", "sanitize"]


# RDKit keeps an atom's explicit valence in a signed byte: 128-255 bonds (a SMILES `C` with
# 130 `(C)` branches, a molfile star of 131 atoms) made SanitizeMol raise a bare RuntimeError
# ("Pre-condition Violation ... called without call to calcExplicitValence()") instead of its
# valence error, and deepmolm-fingerprint, -render, -prepare and -kflm2 stopped with a
# traceback; 127 and 256 give the valence error.
RDKIT_MAX_VALENCE = 127


def sanitize(mol: Chem.Mol, id: str, max_heavy: int | None = None) -> list[str]:
    """Sanitise in place; returns RDKit's warnings as notes (its errors raise).

    ``max_heavy``: the heavy-atom cap (``policy.size_cap``'s refusal, its message), applied
    before RDKit's work: ring perception of a 20,000-atom macrocycle took 52 s and 12 GB, and
    only then did the cap refuse it.
    """
    if max_heavy is not None and mol.GetNumHeavyAtoms() > max_heavy:
        raise MoleculeTooLarge(id, mol.GetNumHeavyAtoms(), max_heavy)
    with rdkit_messages() as messages:
        try:
            Chem.SanitizeMol(mol)
        except Chem.MolSanitizeException as error:  # the exception carries the message
            raise sanitization_failed(id, error) from error
        except RuntimeError as error:  # an invariant RDKit checks (its log holds a stack trace: not kept)
            raise _invariant_failed(mol, id, error) from error
    return as_notes(messages)


def _invariant_failed(mol: Chem.Mol, id: str, error: RuntimeError) -> MoleculeError:
    """A ``MoleculeError`` for a RuntimeError of SanitizeMol: the atoms with more bonds than
    RDKit counts when there are such (see ``RDKIT_MAX_VALENCE``), and RDKit's words."""
    said = "; ".join(line.strip() for line in str(error).splitlines()[:2] if line.strip())
    crowded = [a.GetIdx() for a in mol.GetAtoms()
               if sum(b.GetBondTypeAsDouble() for b in a.GetBonds()) + a.GetNumExplicitHs() > RDKIT_MAX_VALENCE]
    if crowded:
        most = max(mol.GetAtomWithIdx(i).GetDegree() for i in crowded)
        return MoleculeError(id, f"sanitization failed: atom(s) {atom_names(crowded, mol)} with too many neighbours "
                                 f"(up to {most}; RDKit counts a valence up to {RDKIT_MAX_VALENCE}, no element has "
                                 f"more than 8) (RDKit: {said})")
    return MoleculeError(id, f"sanitization failed (RDKit: {said})")


def _shown(text) -> str:
    """`text` quoted for a message, cut to its start and length when long: a line of 2,000 NUL
    bytes (a crash's zero-filled tail read as a SMILES) or a 5,000-atom SMILES was shown whole."""
    quoted = repr(text)
    if not isinstance(text, str) or len(quoted) <= 120:
        return shortened(quoted, 120)
    n = 100
    while len(repr(text[:n])) > 100:  # escapes take 4 characters each
        n //= 2
    return f"{text[:n]!r}... ({len(text)} characters)"


def check_smiles_text(smiles, id: str) -> str:
    """The stripped SMILES, or a ``MoleculeError`` for text RDKit would misread (see above)."""
    if not isinstance(smiles, str):
        raise MoleculeError(id, f"SMILES must be a string, got {type(smiles).__name__} {_shown(smiles)}")
    text = smiles.strip()
    if not text:
        raise MoleculeError(id, "empty SMILES")
    bad = next((i for i, ch in enumerate(text) if not (ch == " " or 32 < ord(ch) < 127)), None)
    if bad is not None:
        what = "non-ASCII" if ord(text[bad]) > 127 else "control"
        raise MoleculeError(id, f"SMILES {_shown(smiles)} has a {what} character {text[bad]!r} at position {bad}")
    head, _, rest = text.partition(" ")
    rest = rest.strip()
    if rest and not rest.startswith("|"):
        raise MoleculeError(id, f"SMILES {_shown(smiles)} has text after a space ({_shown(rest)}); RDKit would "
                                f"ignore it as a name: give the SMILES alone")
    close = rest.find("|", 1)  # the extension's closing bar; -1 when rest is empty or unclosed
    if close > 0 and rest[close + 1:].strip():
        # 'CC |$;$|O' was ethane: RDKit reads the extension, then takes the rest as a name
        raise MoleculeError(id, f"SMILES {_shown(smiles)} has text after its CXSMILES extension "
                                f"({_shown(rest[close + 1:].strip())}); RDKit would ignore it as a name: "
                                "give the SMILES alone")
    return text


def parse_smiles(smiles: str, id: str, max_heavy: int | None = None) -> tuple[Chem.Mol, list[str]]:
    """(sanitised molecule, RDKit warnings as notes). ``max_heavy``: the heavy-atom cap,
    counted on the parsed molecule before it is sanitised (``sanitize``)."""
    text = check_smiles_text(smiles, id)
    with rdkit_messages() as messages:
        mol = Chem.MolFromSmiles(text, sanitize=False)
    if mol is None:
        raise MoleculeError(id, with_messages(f"unparseable SMILES {_shown(smiles)}", messages))
    if mol.GetNumConformers():
        # CXSMILES coordinates `|(x,y,z;...)|` became the 3D conformer without a word (under
        # 'from-file' too, which refuses a SMILES), and RDKit had set the chiral tags from them:
        # the written @@ was silently flipped
        raise MoleculeError(id, f"SMILES {_shown(smiles)} carries CXSMILES coordinates; a SMILES is given a generated "
                                "conformer: drop the coordinates, or give them as a structure file (SDF, XYZ) or "
                                "as `atoms` + `coordinates`")
    written = [a.GetIdx() for a in mol.GetAtoms() if a.GetChiralTag() != Chem.ChiralType.CHI_UNSPECIFIED]
    notes = as_notes(messages) + sanitize(mol, id, max_heavy)
    _relative_stereo(mol)
    note_axial_stereo(mol, written, notes)
    # '[#6]-[#8]', '[C]': a bracket atom has only the hydrogens it writes
    note_radicals(mol, notes, "a bracket atom has only the hydrogens it writes: [CH3] is a methyl radical, [C] a "
                              "bare carbon")
    return mol, notes


def _cxsmiles_fields(mol: Chem.Mol) -> list[str]:
    """The comma-separated fields of the CXSMILES extension RDKit read (``_CXSMILES_Data``),
    without the `$...$` atom labels and quoted values, whose text may hold commas."""
    text = mol.GetProp("_CXSMILES_Data") if mol.HasProp("_CXSMILES_Data") else ""
    text = re.sub(r'\$[^$]*\$|"[^"]*"', "", text.strip().strip("|"))
    return [field.strip() for field in text.split(",")]


def _relative_stereo(mol: Chem.Mol) -> None:
    """The CXSMILES flag `r` (the written configuration is relative: the racemate, as a V2000
    chiral flag of 0) as what it means, one AND stereo group of the specified centres not
    already in a group (RDKit's own rule, ``TranslateChiralFlagToStereoGroups``). RDKit reads
    the flag into nothing, so `|r|` was dropped without the note `|&1:1,3|` gets (finish.py)."""
    if "r" not in _cxsmiles_fields(mol):
        return
    mol.SetIntProp("_MolFileChiralFlag", 0)
    Chem.TranslateChiralFlagToStereoGroups(mol, Chem.StereoGroupType.STEREO_AND)
    mol.ClearProp("_MolFileChiralFlag")  # a SMILES has no molfile flag; only the groups were meant


def note_axial_stereo(mol: Chem.Mol, written: list[int], notes: list[str]) -> None:
    """A note naming the allene (cumulene) atoms whose written `@`/`@@` sanitising cleared:
    RDKit represents no axial stereo, so `C[C@H]=C=[C@H]C` and its mirror image became one
    molecule (the same tokens, the same picture, a generated conformer of one configuration)
    and nothing said so."""
    def cumulated(atom) -> bool:
        return sum(b.GetBondType() == Chem.BondType.DOUBLE for b in atom.GetBonds()) >= 2

    lost = [i for i in written if mol.GetAtomWithIdx(i).GetChiralTag() == Chem.ChiralType.CHI_UNSPECIFIED
            and any(cumulated(a) for a in (mol.GetAtomWithIdx(i), *mol.GetAtomWithIdx(i).GetNeighbors()))]
    if lost:
        notes.append(f"axial (allene) stereo written at {atom_names(lost, mol)} is not kept: RDKit represents "
                     "none, so this molecule and its mirror image get the same tokens and picture, and the "
                     "generated conformer fixes one configuration")


RADICAL_NOTE = "radical: unpaired electrons on atoms"
METAL_NOTE = "unpaired electrons as written on metal atoms"

# s-, d- and f-block metals (atomic numbers): RDKit gives such an atom unpaired electrons by
# the electron count of the element and charge written (Cu2+ is d9, Gd3+ f7; [Na] is a
# neutral atom), not because a hydrogen is missing. A free p-block metal cation ([Pb+2],
# [Sn+2], [Bi+3]) gets the metal note too (`metal_note_atom`; was: the hydrogen advice); a
# neutral or bonded p-block atom ([SnH3], [Al], Cl[Sn+]) keeps the note about hydrogens.
_S_BLOCK_METALS = {3, 4, 11, 12, 19, 20, 37, 38, 55, 56, 87, 88}
# first atomic number of each d-block row, and the group number it has
_D_ROWS = ((21, 30, 3), (39, 48, 3), (72, 80, 4), (104, 112, 4))
_LANTHANIDES, _ACTINIDES = range(57, 72), range(89, 104)


def is_metal(atomic_number: int) -> bool:
    """Whether an element is an s-, d- or f-block metal (``_S_BLOCK_METALS``, ``_D_ROWS``)."""
    return (atomic_number in _S_BLOCK_METALS or atomic_number in _LANTHANIDES or atomic_number in _ACTINIDES
            or any(first <= atomic_number <= last for first, last, _ in _D_ROWS))


# p-block metals: atomic number -> (period, group)
_P_BLOCK_METALS = {13: (3, 13), 31: (4, 13), 49: (5, 13), 81: (6, 13), 32: (4, 14), 50: (5, 14),
                   82: (6, 14), 51: (5, 15), 83: (6, 15), 84: (6, 16)}


def is_p_block_metal(atomic_number: int) -> bool:
    """Whether an element is a p-block metal (Al, Ga, In, Tl, Ge, Sn, Pb, Sb, Bi, Po)."""
    return atomic_number in _P_BLOCK_METALS


def _free_cation(atom: Chem.Atom) -> bool:
    return atom.GetFormalCharge() > 0 and not atom.GetDegree() and not atom.GetTotalNumHs()


def metal_note_atom(atom: Chem.Atom) -> bool:
    """Whether an atom's unpaired electrons get the metal note: an s-, d- or f-block metal, or a
    p-block metal written as a free cation (`[Pb+2]`: its electrons come from the charge, not
    from a missing hydrogen)."""
    z = atom.GetAtomicNum()
    return is_metal(z) or (z in _P_BLOCK_METALS and _free_cation(atom))


def inert_pair(atom: Chem.Atom) -> str | None:
    """`6s2` for a free Pb2+, Bi3+, Tl+ (charge = group - 12): the ion keeps only its outer s
    pair, whose two electrons are paired, though RDKit counts them as 2 unpaired. None otherwise."""
    where = _P_BLOCK_METALS.get(atom.GetAtomicNum())
    if where is None or not _free_cation(atom):
        return None
    period, group = where
    return f"{period}s2" if atom.GetFormalCharge() == group - 12 else None


def ion_name(atom: Chem.Atom) -> str:
    """`Cu2+`, `Na+`, `Fe` (neutral)."""
    q = atom.GetFormalCharge()
    return atom.GetSymbol() + (f"{abs(q) if abs(q) > 1 else ''}{'+' if q > 0 else '-'}" if q else "")


def electron_configuration(atom: Chem.Atom) -> str | None:
    """`d9` for a free Cu2+, `f7` for a free Gd3+: the d (f) electron count of a free d-block
    (lanthanide) ion of charge 2+ or more (group - charge; Z - 54 - charge), the count
    chemists name such an ion by. None where it is not that simple: a bonded metal, whose
    oxidation state the formal charge need not be, a lower charge (Sc+ is d1s1, not d2),
    s-block metals and actinides."""
    z, q = atom.GetAtomicNum(), atom.GetFormalCharge()
    if atom.GetDegree() or atom.GetTotalNumHs() or q < 2:
        return None
    for first, last, group in _D_ROWS:
        if first <= z <= last:
            count = z - first + group - q
            return f"d{count}" if 0 <= count <= 10 else None
    if z in _LANTHANIDES:
        count = z - 54 - q
        return f"f{count}" if 0 <= count <= 14 else None
    return None


def _metal_name(atom: Chem.Atom, mol: Chem.Mol) -> str:
    """`Cu1 (Cu2+, a d9 ion)`, `Pb1 (Pb2+, a 6s2 ion: ...)`, `Cu3 (bonded)`, `Na1 (a neutral atom: ...)`."""
    what = [ion_name(atom)] if atom.GetFormalCharge() else []
    configuration = electron_configuration(atom)
    if configuration:
        what.append(f"{'an' if configuration[0] == 'f' else 'a'} {configuration} ion")
    pair = inert_pair(atom)
    if pair:
        what.append(f"a {pair} ion: its two outer electrons are an inert pair, paired, "
                    f"which RDKit counts as unpaired")
    if atom.GetDegree():
        what.append("bonded")
    elif not atom.GetFormalCharge() and not atom.GetTotalNumHs():
        # `[Na]` is sodium metal's atom; a salt's sodium is `[Na+]`
        what.append("a neutral atom: an ion is written with its charge")
    return atom_names([atom.GetIdx()], mol) + (f" ({', '.join(what)})" if what else "")


def note_radicals(mol: Chem.Mol, notes: list[str], why: str) -> None:
    """A note naming the atoms with unpaired electrons, once (SMILES and structure files).
    Metal atoms get their own note, without ``why`` (was: `[Cu+2]` was "a radical" with the
    advice that "a bracket atom has only the hydrogens it writes", which reads as "your
    SMILES is wrong"): RDKit counts their unpaired electrons from the charge written, which
    for a metal ion is its electron count, not a missing hydrogen."""
    radicals = [a for a in mol.GetAtoms() if a.GetNumRadicalElectrons()]
    organic = [a.GetIdx() for a in radicals if not metal_note_atom(a)]
    metals = [a for a in radicals if metal_note_atom(a)]
    if organic and not any(note.startswith(RADICAL_NOTE) for note in notes):
        notes.append(f"{RADICAL_NOTE} {atom_names(organic, mol)} ({why})")
    if metals and not any(note.startswith(METAL_NOTE) for note in notes):
        notes.append(f"{METAL_NOTE} {', '.join(_metal_name(a, mol) for a in metals[:10])}"
                     + (f" and {len(metals) - 10} more" if len(metals) > 10 else "")
                     + ": from the element and the charge written, not from missing hydrogens")
