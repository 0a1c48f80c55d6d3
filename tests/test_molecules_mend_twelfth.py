"""Molecule rules of the twelfth sweep, mended after review:

1. Proof 1 of `builders.check_flat_atoms` counted a planar four-membered ring's diagonal as a
   fourth neighbour, so real 3D biphenylene and thiete (ETKDG+MMFF, as XYZ or PDB without
   CONECT) were refused as "2D drawings"; where perception itself bonds the diagonal
   (tetramethylcyclobutadiene read as a tetrahedrane) the error names the pair and distance.
2. A drawing that wedges the H of every H-bearing carbon (L-tartaric acid) failed: its OH
   oxygens were "short beside hydrogens".
3. Bond orders lost between H-free carbons (hexamethylbenzene, tetramethylethylene written all
   single) were read, silently, as the saturated molecule.
4. A `<data>.renders` depiction of a structure file was served after a reader change that
   reads another molecule from the same bytes.
5. The GUI page showed record-file and CLI advice ("a record's `smiles` ...").
6. A molfile that lost its radical marks was blamed on bond orders or charges only.
"""

from __future__ import annotations

import re

import pytest
from rdkit import Chem
from rdkit.Chem import AllChem
from test_hostile_structure_files import _items, _mol, _write

from deepmolm_plugin.molecule import MoleculeError


def _mmff(smiles: str) -> Chem.Mol:
    """A real 3D geometry, every H an atom: ETKDG (seeded) + MMFF."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=7) == 0
    AllChem.MMFFOptimizeMolecule(mol, maxIters=5000)
    return mol


def _xyz(path, mol: Chem.Mol):
    positions = mol.GetConformer().GetPositions()
    rows = "".join(f"{a.GetSymbol()} {x:.6f} {y:.6f} {z:.6f}\n" for a, (x, y, z) in zip(mol.GetAtoms(), positions))
    return _write(path, f"{mol.GetNumAtoms()}\n{path.stem}\n{rows}")


def _pdb_without_conect(path, mol: Chem.Mol):
    lines = [line for line in Chem.MolToPDBBlock(mol).splitlines() if line.startswith("HETATM")]
    return _write(path, "\n".join(lines) + "\nEND\n")


def _plain(record) -> str:
    mol = Chem.RemoveHs(record.mol)
    Chem.RemoveStereochemistry(mol)
    return Chem.MolToSmiles(mol)


def _all_single(mol: Chem.Mol) -> str:
    """The kekulé molfile with every bond order written 1 (a converter that drops orders)."""
    mol = Chem.Mol(mol)
    Chem.Kekulize(mol, clearAromaticFlags=True)
    lines = Chem.MolToMolBlock(mol, kekulize=True).splitlines()
    start = 4 + mol.GetNumAtoms()
    for n in range(start, start + mol.GetNumBonds()):
        lines[n] = lines[n][:6] + "  1" + lines[n][9:]
    return "\n".join(lines) + "\n"


def _without(block: str, prefix: str) -> str:
    return "\n".join(line for line in block.splitlines() if not line.startswith(prefix)) + "\n"


# --- 1. planar four-membered rings ----------------------------------------------------------
@pytest.mark.parametrize("smiles", ["c1ccc2c(c1)-c1ccccc1-2", "C1SC=C1"], ids=["biphenylene", "thiete"])
@pytest.mark.parametrize("write", [_xyz, _pdb_without_conect], ids=["xyz", "pdb-no-conect"])
def test_real_3d_four_membered_rings_are_read(tmp_path, smiles, write):
    # was: "the coordinates are a 2D drawing, not 3D: tetrahedral carbon C4 lies in one plane
    # with its 4 neighbours": the ring's diagonal (1.97 A in biphenylene) counted as a bond
    suffix = ".xyz" if write is _xyz else ".pdb"
    (record,) = _items(write(tmp_path / f"ring{suffix}", _mmff(smiles)), policy="keep")
    assert not isinstance(record, MoleculeError), record
    assert _plain(record) == Chem.CanonSmiles(smiles)


def test_a_bond_perceived_across_a_four_membered_ring_is_named_with_its_length(tmp_path):
    # was (before the sweep): read, silently, as the tetrahedrane CC12C3(C)C1(C)C23C; after it:
    # "a 2D drawing", which the 3D file is not
    (error,) = _items(_xyz(tmp_path / "tmcbd.xyz", _mmff("CC1=C(C)C(C)=C1C")), policy="keep")
    assert isinstance(error, MoleculeError)
    assert re.match(r"bond perception bonded C\d+ and C\d+ across a four-membered ring \(1\.9\d A apart, within "
                    r"bonding distance\)", error.reason), error.reason
    assert "2D drawing" not in error.reason and "give it as SDF or MOL2" in error.reason


def test_a_failed_perception_names_a_four_membered_ring_diagonal(tmp_path):
    # diketene: RDKit's "Final molecular charge (0) does not match input (-2)" said nothing of why
    (error,) = _items(_xyz(tmp_path / "diketene.xyz", _mmff("C=C1CC(=O)O1")), policy="keep")
    assert isinstance(error, MoleculeError)
    assert re.search(r"; C\d+ and C\d+, across a four-membered ring, are 1\.\d\d A apart, within bonding distance, "
                     r"and perception may have bonded them", error.reason), error.reason


# --- 2 + 3. hydrogens given, bond orders or charges lost -------------------------------------
def _stereo_h_drawing(smiles: str) -> str:
    """A 2D molfile as ChEBI or ChemDraw write one: the H of each stereocentre drawn, wedged,
    every other H implicit."""
    mol = Chem.MolFromSmiles(smiles)
    mol = Chem.AddHs(mol, onlyOnAtoms=[i for i, _ in Chem.FindMolChiralCenters(mol)])
    AllChem.Compute2DCoords(mol, sampleSeed=1)
    Chem.WedgeMolBonds(mol, mol.GetConformer())
    return Chem.MolToMolBlock(mol)


def test_a_drawing_with_the_stereo_h_of_every_h_bearing_carbon_is_read(tmp_path):
    # was: "atoms O3, O5, O7, O10 are short of bonds though the file gives hydrogens as atoms"
    tartaric = "O=C(O)[C@H](O)[C@@H](O)C(=O)O"
    block = _stereo_h_drawing(tartaric)
    bonds = [line for line in block.splitlines() if re.match(r"^\s*\d+\s+\d+\s+1\s+[16]\s*$", line)]
    assert len(bonds) == 2 and "  2D" in block  # two wedged C-H bonds, a 2D file
    (record,) = _items(_write(tmp_path / "tartaric.sdf", block), policy="keep")
    assert not isinstance(record, MoleculeError), record
    assert Chem.MolToSmiles(Chem.RemoveHs(record.mol)) == Chem.CanonSmiles(tartaric)


@pytest.mark.parametrize("smiles", ["Cc1c(C)c(C)c(C)c(C)c1C", "CC(C)=C(C)C", "OC(=O)c1ccccc1"],
                         ids=["hexamethylbenzene", "tetramethylethylene", "benzoic-acid"])
def test_bond_orders_lost_between_h_free_carbons_fail(tmp_path, smiles):
    # was: hexamethylbenzene read as hexamethylcyclohexane, tetramethylethylene as
    # 2,3-dimethylbutane, with no note
    (error,) = _items(_write(tmp_path / "single.sdf", _all_single(_mol(smiles, "x"))), policy="keep")
    assert isinstance(error, MoleculeError), _plain(error)
    assert re.match(r"atoms (C\d+, )+C\d+ are short of bonds though the file gives hydrogens as atoms: it lost bond "
                    r"orders \(bonds written single\)", error.reason), error.reason


@pytest.mark.parametrize("smiles", ["CC(=O)[O-]", "[O-]C(=O)c1ccccc1"], ids=["acetate", "benzoate"])
def test_a_3d_file_that_lost_its_charge_line_fails(tmp_path, smiles):
    block = _without(Chem.MolToMolBlock(_mol(smiles, "x")), "M  CHG")
    (error,) = _items(_write(tmp_path / "nocharge.sdf", block), policy="keep")
    assert isinstance(error, MoleculeError), _plain(error)
    assert re.match(r"atom O\d+ is short of bonds .* charges \(an 'M  CHG' line\)", error.reason), error.reason


# --- 6. radicals ----------------------------------------------------------------------------
# A methoxy radical as a tool that drops radical marks writes it: no 'M  RAD' line, no valence field.
METHOXY = """methoxy
     RDKit          3D

  5  4  0  0  0  0  0  0  0  0999 V2000
   -0.0641    0.0127   -0.0125 C   0  0  0  0  0  0  0  0  0  0  0  0
    1.3269   -0.1041    0.0986 O   0  0  0  0  0  0  0  0  0  0  0  0
   -0.2914    0.9513   -0.5559 H   0  0  0  0  0  0  0  0  0  0  0  0
   -0.4549   -0.8887   -0.5295 H   0  0  0  0  0  0  0  0  0  0  0  0
   -0.5165    0.0289    0.9993 H   0  0  0  0  0  0  0  0  0  0  0  0
  1  2  1  0
  1  3  1  0
  1  4  1  0
  1  5  1  0
M  END
"""


def test_a_radical_without_its_rad_line_is_named_as_a_possible_loss(tmp_path):
    marked = METHOXY.replace("M  END", "M  RAD  1   2   2\nM  END")
    (record,) = _items(_write(tmp_path / "rad.sdf", marked), policy="keep")
    assert not isinstance(record, MoleculeError), record  # the radical as written is read
    (error,) = _items(_write(tmp_path / "norad.sdf", METHOXY), policy="keep")
    assert isinstance(error, MoleculeError), _plain(error)
    # was: "it lost bond orders (bonds written single) or charges (an 'M  CHG' line) ...; write
    # the file again with its bond orders and charges"
    assert error.reason.startswith("atom O2 is short of bonds"), error.reason
    assert "or radicals (an 'M  RAD' line)" in error.reason, error.reason
    assert error.reason.endswith("write the file again with its bond orders, charges and radicals"), error.reason


# --- 4. depictions of structure files ---------------------------------------------------------
def test_structure_and_atom_depiction_names_follow_the_readers_rules(monkeypatch):
    from deepmolm_plugin.molecule import io
    from deepmolm_plugin.molecule.inputs import depiction_name

    keys = [b"structure:from-file:#0:HETATM", b"atoms:from-file:(['C'], [[0, 0, 0]], None)", b"smiles:CCO"]
    before = [depiction_name(key) for key in keys]
    monkeypatch.setattr(io, "READER_RULES", io.READER_RULES + 1)
    after = [depiction_name(key) for key in keys]
    assert before[0] != after[0] and before[1] != after[1]  # was: the old molecule's drawing served
    assert before[2] == after[2]  # a SMILES is read by no structure reader


def test_drawing_rules_were_raised_with_the_reader_change():
    from deepmolm_plugin.molecule.render import DRAWING_RULES

    assert DRAWING_RULES >= 6  # 5 named the drawings of the structures read before the change


# --- 5. the GUI's words -------------------------------------------------------------------
def test_the_page_drops_record_file_and_cli_advice(tmp_path):
    from deepmolm_plugin.gui.app import page_words

    co2 = Chem.AddHs(Chem.MolFromSmiles("O=C=O"))
    AllChem.EmbedMolecule(co2, randomSeed=1)
    (no_h,) = _items(_xyz(tmp_path / "co2.xyz", co2))
    (charged,) = _items(_xyz(tmp_path / "acetate.xyz", _mmff("CC(=O)[O-]")))
    for error in (no_h, charged):
        assert isinstance(error, MoleculeError)
        assert "In a record file" in error.reason  # the CLIs and record files keep it
        page = page_words(error.reason)
        # was: "... or enter its SMILES beside the file (a record's `smiles` beside its structure;
        # deepmolm-fingerprint and deepmolm-render take none)"
        assert "record" not in page and "deepmolm-" not in page, page
    assert page_words(no_h.reason).endswith("or enter its SMILES beside the file."), page_words(no_h.reason)
    assert "`charge=-1` on the XYZ comment line." in page_words(charged.reason)
