"""Sixteenth round: a configuration marked "unknown" (a molfile's crossed double bond or wavy
bond, a CXSMILES `|w:|`) is the same input as one left unmarked. RDKit's canonical ranking
read the mark, so ETKDG embedded another atom order and the tokens differed from the
SMILES' (geraniol as RDKit's own SDWriter writes it with explicit H: 16 of 44 entries); a
mark on a bond with no E/Z at all was noted as an unassigned E/Z bond; the depiction drew
crossed and wavy bonds the SMILES' did not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rdkit import Chem
from rdkit.Chem import AllChem

from deepmolm_plugin.molecule import fingerprint_record, molecule_from_smiles, read_structures
from deepmolm_plugin.molecule.inputs import InputResolver


def _flat_file(tmp_path: Path, smiles: str, name: str, hydrogens: bool, either_double: bool = False,
               wavy_centres: bool = False) -> Path:
    """A 2D SDF of ``smiles`` as RDKit's SDWriter writes it, optionally with every double
    bond crossed ("either", bond stereo 3) and a wavy bond (bond stereo 4) at every possible
    stereocentre."""
    mol = Chem.MolFromSmiles(smiles)
    if hydrogens:
        mol = Chem.AddHs(mol)
    AllChem.Compute2DCoords(mol)
    lines = Chem.MolToMolBlock(mol).splitlines()
    atoms, bonds = int(lines[3][:3]), int(lines[3][3:6])
    table = range(4 + atoms, 4 + atoms + bonds)
    if either_double:
        for i in table:
            if lines[i][6:9].strip() == "2":
                lines[i] = lines[i][:9] + "  3" + lines[i][12:]
    if wavy_centres:
        centres = {si.centeredOn for si in Chem.FindPotentialStereo(Chem.Mol(mol))
                   if si.type == Chem.StereoType.Atom_Tetrahedral}
        for centre in centres:
            i = next(i for i in table if int(lines[i][:3]) - 1 == centre and lines[i][6:9].strip() == "1")
            lines[i] = lines[i][:9] + "  4" + lines[i][12:]
    path = tmp_path / f"{name}.sdf"
    path.write_text("\n".join(lines) + "\n$$$$\n")
    return path


def _same_input(tmp_path: Path, smiles: str, structure: Path) -> None:
    """The model's inputs for ``structure`` equal those of ``smiles`` (the one door training,
    eval, chat, the GUI and deepmolm-prepare use): tokens, pixels, and the notes besides the
    ones about where the coordinates came from."""
    resolver = InputResolver(structure_folder=str(tmp_path), render_folder=str(tmp_path / "renders"),
                             render_size=128, cache=False)
    from_smiles = resolver.resolve({"smiles": smiles}, "from_smiles")
    from_file = resolver.resolve({"structure": structure.name}, "from_file")
    assert np.array_equal(np.asarray(from_file.molecule_fp), np.asarray(from_smiles.molecule_fp))
    assert np.array_equal(np.asarray(Image.open(from_file.image)), np.asarray(Image.open(from_smiles.image)))
    assert _stereo_notes(from_file.notes) == _stereo_notes(from_smiles.notes)


def _stereo_notes(notes: list[str]) -> list[str]:
    return [n for n in notes if "unassigned" in n]


def test_rdkit_written_sdf_of_geraniol_gives_the_smiles_tokens(tmp_path):
    smiles = "CC(=CCC/C(=C/CO)C)C"  # (E); RDKit's writer marks the (CH3)2C=CH bond "either" with explicit H
    path = _flat_file(tmp_path, smiles, "geraniol", hydrogens=True)
    assert "  2  3" in path.read_text()  # the writer's crossed mark is there
    _same_input(tmp_path, smiles, path)


@pytest.mark.parametrize("smiles", ["CC=CC", "c1ccccc1C=Cc1ccccc1", "CC(C)=CCCC(C)=CC=O", "CC=CC(C)O", "CCC(C)O"])
def test_crossed_and_wavy_bonds_are_the_unmarked_molecule(tmp_path, smiles):
    """Open E/Z bonds and centres, and (CH3)2C= bonds that have none: the marked file is the
    SMILES without stereo, its unassigned-stereo note included (citral's note named its
    (CH3)2C=CH bond as an unassigned E/Z bond)."""
    path = _flat_file(tmp_path, smiles, "marked", hydrogens=False, either_double=True, wavy_centres=True)
    _same_input(tmp_path, smiles, path)


def test_citral_note_names_only_its_one_open_double_bond(tmp_path):
    path = _flat_file(tmp_path, "CC(C)=CCCC(C)=CC=O", "citral", hydrogens=True, either_double=True)
    record = next(iter(read_structures(str(path), policy="auto")))
    (note,) = _stereo_notes(record.notes)
    assert note.startswith("double bond C7=C9 (E/Z) is unassigned"), note


def test_a_cxsmiles_wavy_mark_is_the_plain_smiles():
    plain = molecule_from_smiles("CC=CC(C)O", "plain", policy="auto")
    wavy = molecule_from_smiles("CC=CC(C)O |w:3.2|", "wavy", policy="auto")
    assert np.array_equal(np.asarray(fingerprint_record(wavy)), np.asarray(fingerprint_record(plain)))
    assert _stereo_notes(wavy.notes) == _stereo_notes(plain.notes)
    marks = [b for b in wavy.mol.GetBonds() if b.GetBondDir() == Chem.BondDir.UNKNOWN or b.HasProp("_UnknownStereo")]
    assert not marks


def test_the_rules_that_name_old_outputs_were_raised():
    """Prepared data, render folders and feature caches made before this change are not
    served as this code's (their tokens or pictures of marked files differ)."""
    from deepmolm_plugin.molecule.conformer import CONFORMER_RULES
    from deepmolm_plugin.molecule.io import READER_RULES
    from deepmolm_plugin.molecule.render import DRAWING_RULES

    assert CONFORMER_RULES >= 8 and DRAWING_RULES >= 8 and READER_RULES >= 3
