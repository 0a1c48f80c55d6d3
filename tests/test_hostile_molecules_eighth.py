"""Hostile molecules, eighth sweep: what was wrong, and what happens now.

- CXSMILES link nodes (`C1CCCCC1 |LN:1:1.3|`, a Markush "atom 2 one to three times") and a
  V3000 LINKNODE line became plain cyclohexane without a word; they are refused as polymer
  repeat units are: not one concrete molecule.
- A double bond whose E/Z is open (`CC=CC`, or a wavy bond `|w:0.0|`) silently got the
  generated conformer's configuration; the note on open stereo now names it ("double bond
  C2=C3"), and not bonds that cannot be E/Z (CH2=, symmetric ends, rings under 8 atoms).
- The CXSMILES flag `|r|` (the written configuration is relative: a racemate) was dropped;
  it is now one AND stereo group and gets the enhanced-stereo note `|&1:1,3|` gets.
- A stereo group (`|&1:1,3|`, `|o1:1,3|`) changed a level-2 token and the picture of the
  same configuration: RDKit's canonical ranking read the groups, so the conformer was
  embedded in another atom order, and the drawing wrote "and1" labels; both now equal the
  plain spelling's.
- Norbornane's bridgeheads were "unassigned stereocentres" although it has one
  stereoisomer; a bridged system's bridgeheads are now counted as flipped together.
- fingerprint.py gave cisplatin, whose spellings are refused (dative bonds) or another
  molecule, as a molecule with level 0 only; its example is now one that is fingerprinted.
- RDKit's UFF-typer notes gave 0-based atom numbers of the renumbered copy with hydrogens
  ("atom: 8" for the Pt of `Cl[Pt](Cl)(N)N`); they name the atom as other notes do (Pt2).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from rdkit import Chem

from deepmolm_plugin.molecule import MoleculeError, fingerprint_record, molecule_from_smiles, read_structures
from deepmolm_plugin.molecule import fingerprint as fingerprint_module
from deepmolm_plugin.molecule.render import render_molecule


def _open(smiles: str) -> list[str]:
    return [n for n in molecule_from_smiles(smiles, id="x").notes if "unassigned" in n]


def test_link_nodes_are_refused_from_smiles_and_molfiles(tmp_path):
    # was: cyclohexane's tokens and picture, no note; RDKit kept the link node only as the
    # molecule property _molLinkNodes, which nothing read
    with pytest.raises(MoleculeError, match=r"link node \(atom C2 repeated 1 to 3 times\).*not one concrete"):
        molecule_from_smiles("C1CCCCC1 |LN:1:1.3|", id="x")
    block = Chem.MolToV3KMolBlock(Chem.MolFromSmiles("C1CCCCC1 |LN:1:1.3|"))
    assert "LINKNODE" in block
    (path := tmp_path / "markush.sdf").write_text(block + "$$$$\n")
    (result,) = read_structures(path)
    assert isinstance(result, MoleculeError) and "link node (atom C2" in result.reason


def test_open_double_bonds_are_named_in_the_note():
    # was: `CC=CC` and the wavy `CC=CC |w:0.0|` got the conformer's E without a note
    assert _open("CC=CC") == ["double bond C2=C3 (E/Z) is unassigned: the generated conformer fixes one "
                              "configuration for it"]
    assert _open("CC=CC |w:0.0|") == _open("CC=CC")
    assert _open("C1=CCCCCCCCCCC1")[0].startswith("double bond C1=C2 (E/Z) is unassigned")  # trans possible
    assert _open("C/C=C/C=CC")[0].startswith("double bond C4=C5 (E/Z) is unassigned")
    for no_stereo in ("C=CC", "CC(C)=C(C)C", "C1=CCCCC1", "C/C=C/C"):
        assert _open(no_stereo) == [], no_stereo


def test_relative_flag_gets_the_enhanced_stereo_note():
    # was: `|r|` read into nothing: no note, unlike `|&1:1,3|`, which means the same
    relative = molecule_from_smiles("C[C@H](O)[C@@H](C)CC |r|", id="x")
    assert any(n.startswith("1 enhanced stereo group(s)") for n in relative.notes), relative.notes
    assert [[a.GetIdx() for a in g.GetAtoms()] for g in relative.mol.GetStereoGroups()] == [[1, 3]]


def test_a_stereo_group_leaves_tokens_and_picture_of_the_written_configuration():
    # was: one level-2 token differed (2885, 388, 991 for 1022) and the picture had "and1" labels
    plain = molecule_from_smiles("C[C@H](O)[C@@H](C)CC", id="x")
    tokens = np.asarray(fingerprint_record(plain))
    picture = np.asarray(render_molecule(plain, size=300))
    for group in (" |&1:1,3|", " |o1:1,3|"):
        record = molecule_from_smiles("C[C@H](O)[C@@H](C)CC" + group, id="x")
        assert any("enhanced stereo" in n for n in record.notes)
        assert np.array_equal(np.asarray(fingerprint_record(record)), tokens), group
        assert np.array_equal(np.asarray(render_molecule(record, size=300)), picture), group


def test_bridgeheads_of_a_rigid_cage_are_not_open_stereocentres():
    # was: "stereocentres C3, C6 are unassigned" for norbornane, which has one stereoisomer
    assert _open("C1CC2CCC1C2") == []
    assert _open("C1CC2CC1C2") == []
    # 2-methylnorbornane has four (exo / endo, each a pair of mirror images): the note stays
    assert _open("CC1CC2CCC1C2")[0].startswith("stereocentres C2, C4, C7 are unassigned")


def test_the_docstring_example_of_level_0_only_is_fingerprinted():
    # was: cisplatin, whose every usual spelling is refused (dative bond) and whose
    # `Cl[Pt](Cl)(N)N` is the amido complex, another molecule
    example = re.search(r"level-1 radius \(1\.718 A; e\.g\. [^`)]*``([^`]+)``", fingerprint_module.__doc__)
    assert example, "no SMILES example for level 0 only"
    tokens = np.asarray(fingerprint_record(molecule_from_smiles(example.group(1), id="x")))
    assert (tokens[:, 0] >= 0).all() and (tokens[:, 1:] == -1).all()


def test_uff_typer_notes_name_the_atom_as_other_notes_do():
    # was: "UFFTYPER: Unrecognized hybridization for atom: 8": RDKit's 0-based index in the
    # renumbered copy with hydrogens, for the Pt that is atom 2 of the SMILES
    notes = molecule_from_smiles("Cl[Pt](Cl)(N)N", id="x").notes
    # (a later session: said in the user's terms, naming the atom, instead of RDKit's UFFTYPER lines)
    assert any("has no atom type for Pt2 as written: the bonds to it got lengths from covalent radii" in n
               for n in notes), notes
    assert not any("UFFTYPER: Unrecognized" in n for n in notes), notes
    notes = molecule_from_smiles("ClP(Cl)(Cl)(Cl)Cl", id="x").notes
    assert "RDKit: UFFTYPER: Warning: hybridization set to SP3 for atom P2" in notes, notes


def test_counting_open_stereo_stops_at_the_second_isomer(monkeypatch):
    """The note asks only "one stereoisomer?", but every isomer's SMILES was written: up to
    2**10 of them, 15 s for a 181-atom molecule with ten open double bonds."""
    from deepmolm_plugin.molecule import conformer

    polyene = Chem.AddHs(Chem.MolFromSmiles("C" + "C=C" * 10 + "C"))  # ten open E/Z bonds, 1024 isomers
    written = []
    real = Chem.MolToSmiles
    monkeypatch.setattr(Chem, "MolToSmiles", lambda mol, *a, **k: written.append(1) or real(mol, *a, **k))
    assert conformer._isomer_count(polyene) == 2
    assert len(written) <= 4  # was 1024
    assert any("double bonds" in note for note in molecule_from_smiles("C" + "C=C" * 10 + "C", id="p").notes)


def test_a_smiles_beside_coordinates_stating_a_family_is_refused(tmp_path):
    # 2026-12-06: the SMILES' link node / polymer group was checked only when the SMILES was the whole input;
    # beside atoms + coordinates or a structure file the coordinates' cyclohexane was used without a word
    from rdkit.Chem import AllChem

    from deepmolm_plugin.molecule import molecule_from_atoms

    mol = Chem.AddHs(Chem.MolFromSmiles("C1CCCCC1"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    elements, xyz = [a.GetSymbol() for a in mol.GetAtoms()], mol.GetConformer().GetPositions()
    with pytest.raises(MoleculeError, match=r"link node \(atom C2 repeated 1 to 3 times\)"):
        molecule_from_atoms(elements, xyz, id="x", smiles="C1CCCCC1 |LN:1:1.3|")
    with pytest.raises(MoleculeError, match=r"polymer substance group \(SRU\)"):
        molecule_from_atoms(elements, xyz, id="x", smiles="C1CCCCC1 |Sg:n:1,2::ht|")
    assert molecule_from_atoms(elements, xyz, id="x", smiles="C1CCCCC1").notes[-1].startswith("SMILES verified")
    Chem.MolToXYZFile(mol, str(path := tmp_path / "c.xyz"))  # an XYZ file's atoms take the SMILES' bonds
    (result,) = read_structures(path, smiles="C1CCCCC1 |LN:1:1.3|")
    assert isinstance(result, MoleculeError) and "link node (atom C2" in result.reason


def test_open_cumulenes_are_named_in_the_note():
    # 2026-12-06: an allene's axis (and a butatriene's E/Z), which RDKit encodes in no form, got no note
    # although the generated conformer fixes one of its two configurations
    assert _open("CC=C=CC") == ["cumulene C2=C3=C4 (axial; RDKit encodes none) is unassigned: the generated "
                                "conformer fixes one configuration for it"]
    assert _open("CC=C=C=CC")[0].startswith("cumulene C2=C3=C4=C5 (E/Z; RDKit encodes none) is unassigned")
    assert _open("CC=C=C=C=CC")[0].startswith("cumulene C2=C3=C4=C5=C6 (axial;")
    assert _open("C[C@H](O)C=C=CC")[0].startswith("cumulene C4=C5=C6 (axial;")  # the centre is written
    assert _open("C1CCCC=C=CCC1")[0].startswith("cumulene C5=C6=C7 (axial;")  # a ring allene is chiral too
    for no_stereo in ("C=C=CC", "CC(C)=C=CC", "CC(C)=C=C=CC", "C=C=C=C", "O=C=O", "CN=C=NC(C)C"):
        assert _open(no_stereo) == [], no_stereo
    both = _open("CC=CC=C=CC")[0]
    assert both.startswith("double bond C2=C3 (E/Z) and cumulene C4=C5=C6 (axial; RDKit encodes none) are "), both
