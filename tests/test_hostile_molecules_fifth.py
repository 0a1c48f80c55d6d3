"""Hostile molecules, fifth sweep: each case stopped a batch with a traceback, took seconds to
gigabytes before the heavy-atom cap refused it, or was silently read as another molecule."""

from __future__ import annotations

import pytest
from rdkit import Chem
from rdkit.Geometry import Point3D

from deepmolm_plugin.molecule import MoleculeError, molecule_from_atoms, molecule_from_smiles, read_structures
from deepmolm_plugin.molecule import checks as checks_module
from deepmolm_plugin.molecule import finish as finish_module

HUB = "C" + "(C)" * 130  # one carbon with 130 neighbours
RING = "C1" + "C" * 20000 + "C1"  # a 20,002-atom macrocycle, a 20 KB line


def _star(k: int) -> str:
    """A V2000 molfile of a carbon bonded to k carbons."""
    atoms = [f"{1.5 * (i > 0):10.4f}{0.01 * i:10.4f}{0.0:10.4f} C   0  0  0  0  0  0  0  0  0  0  0  0"
             for i in range(k + 1)]
    bonds = [f"{1:3d}{i:3d}  1  0" for i in range(2, k + 2)]
    return "\n".join(["star", "  handmade", "", f"{k + 1:3d}{k:3d}  0  0  0  0  0  0  0  0999 V2000",
                      *atoms, *bonds, "M  END", "$$$$", ""])


def _molblock(mol: Chem.Mol) -> str:
    """A V3000 molfile of an unsanitised molecule, atoms on a line 1.5 A apart."""
    conf = Chem.Conformer(mol.GetNumAtoms())
    for i in range(mol.GetNumAtoms()):
        conf.SetAtomPosition(i, Point3D(1.5 * i, 0.0, 0.0))
    mol.AddConformer(conf)
    return Chem.MolToMolBlock(mol, forceV3000=True, kekulize=False) + "$$$$\n"


def test_an_atom_with_128_to_255_neighbours_is_a_molecule_error(tmp_path):
    # was: RDKit's SanitizeMol raised a bare RuntimeError ("Pre-condition Violation
    # getValence ... calcExplicitValence()"): deepmolm-fingerprint, -render, -prepare and -kflm2
    # stopped with a traceback and lost the records after it
    with pytest.raises(MoleculeError) as error:
        molecule_from_smiles(HUB, "hub")
    assert error.value.id == "hub" and "C1 with too many neighbours (up to 130" in error.value.reason
    assert "Stacktrace" not in error.value.reason and "\n" not in error.value.reason
    (tmp_path / "hub.smi").write_text(f"CCO ethanol\n{HUB} hub\nc1ccccc1 benzene\n")
    items = list(read_structures(tmp_path / "hub.smi", policy="keep"))
    assert [type(i).__name__ for i in items] == ["MoleculeRecord", "MoleculeError", "MoleculeRecord"]
    (tmp_path / "star.sdf").write_text(_star(130))
    (star,) = read_structures(tmp_path / "star.sdf", policy="keep")
    assert isinstance(star, MoleculeError) and "too many neighbours" in star.reason
    from deepmolm_plugin.property.features import parse_smiles

    mol, reason = parse_smiles(HUB)
    assert mol is None and "too many neighbours" in reason


def test_a_huge_macrocycle_is_refused_before_rdkit_sanitises_it(tmp_path, monkeypatch):
    # was: ring perception of a 20,002-atom ring took 52 s and 12 GB (a segfault under a
    # memory limit) before the heavy-atom cap refused it
    def no_sanitising(*args, **kwargs):
        raise AssertionError("a molecule over the cap must not be sanitised")

    monkeypatch.setattr(Chem, "SanitizeMol", no_sanitising)
    with pytest.raises(MoleculeError, match=r"too large: 20002 heavy atoms > max_atoms=256 \(the heavy-atom cap"):
        molecule_from_smiles(RING, "ring")
    (tmp_path / "ring.csv").write_text(f"id,smiles\nring,{RING}\n")
    (error,) = read_structures(tmp_path / "ring.csv")
    assert isinstance(error, MoleculeError) and error.reason.startswith("too large: 20002 heavy atoms")
    ring = Chem.MolFromSmiles("C1" + "C" * 298 + "C1", sanitize=False)
    (tmp_path / "ring.sdf").write_text(_molblock(ring))
    (error,) = read_structures(tmp_path / "ring.sdf", policy="keep")
    assert isinstance(error, MoleculeError) and error.reason.startswith("too large: 300 heavy atoms > max_atoms=256")
    from deepmolm_plugin.property.features import parse_smiles

    mol, reason = parse_smiles(RING)  # deepmolm-kflm2's tables
    assert mol is None and reason.startswith("too large: 20002 heavy atoms > 1024")
    # deepmolm-prepare's source stage (main process): parsed only; its worker applies --max-atoms
    from deepmolm_plugin.data.sources import READERS, csv_source  # noqa: F401  (registered)

    (tmp_path / "prep.csv").write_text(f"id,smiles,logp\nring,{RING},1.0\n")
    (item,) = READERS["csv"](str(tmp_path / "prep.csv"), {"label_columns": ["logp=LogP"], "id_column": "id"})
    assert item.id == "ring:property:LogP"


def test_coordinates_beyond_a_physical_bound_are_refused(tmp_path):
    # was: an H at 1e30 A was read as an unbonded [H+] with notes only, and 1e308 crashed the
    # k-d tree with scipy's "floating point overflow" ValueError (a traceback in deepmolm-fingerprint)
    for far in (1e30, 1e160, 1e308):
        with pytest.raises(MoleculeError, match=r"coordinates beyond 10000 A for atoms 2 "):
            molecule_from_atoms(["O", "H", "H"], [[0, 0, 0], [far, 0, 0], [0, 0.96, 0]], "water")
    (tmp_path / "far.xyz").write_text("3\nwater\nO 0 0 0\nH 1e308 1e308 0\nH 0 0.96 0\n"
                                      "3\nwater\nO 0 0 0\nH 0.96 0 0\nH 0 0.96 0\n")
    error, record = read_structures(tmp_path / "far.xyz")
    assert isinstance(error, MoleculeError) and "coordinates beyond 10000 A" in error.reason
    assert record.mol.GetNumAtoms() == 3
    water = Chem.AddHs(Chem.MolFromSmiles("O"))
    conf = Chem.Conformer(3)
    for i, xyz in enumerate([(0, 0, 0), (0.96, 0, 0), (0, 0, 1e30)]):
        conf.SetAtomPosition(i, Point3D(*xyz))
    conf.Set3D(True)
    water.AddConformer(conf)
    (tmp_path / "far.sdf").write_text(Chem.MolToMolBlock(water, forceV3000=True) + "$$$$\n")
    (error,) = read_structures(tmp_path / "far.sdf")
    assert isinstance(error, MoleculeError) and "coordinates beyond 10000 A for atoms 3" in error.reason


def test_the_cap_comes_first_and_the_bond_check_is_linear(tmp_path, monkeypatch):
    # was: finish ran the structure checks (a Python loop over mol.GetBonds(), O(index) per
    # bond: quadratic) before the cap: a 120,000-atom V3000 chain took 39 s to be refused
    def no_checks(*args, **kwargs):
        raise AssertionError("a molecule over the cap must not be checked first")

    chain = Chem.MolFromSmiles("C" * 300, sanitize=False)
    chain.UpdatePropertyCache()
    monkeypatch.setattr(finish_module, "check_atoms", no_checks)
    with pytest.raises(MoleculeError, match=r"too large: 300 heavy atoms > max_atoms=256"):
        finish_module.finish(chain, "c300", "test", [], policy="keep", max_atoms=256, too_large="error",
                             fragments="all", embed_timeout=None, mmff_max_iters=10)
    monkeypatch.undo()
    # the bond loop's cost: tests/test_molecule_bonds.py (no loop over mol.GetBonds())
    # the query bonds are still named in bond order
    rw = Chem.RWMol(Chem.MolFromSmiles("CCCCO", sanitize=False))
    for index in (3, 1):
        rw.GetBondWithIdx(index).SetBondType(Chem.BondType.UNSPECIFIED)
    with pytest.raises(MoleculeError, match=r"bond\(s\) of no one order \(C2-C3, C4-O5; molfile query"):
        checks_module.check_atoms(rw.GetMol(), "q")


def test_too_large_keeps_its_atom_count_across_processes():
    # was: n_heavy was set after construction and lost when deepmolm-prepare's workers sent
    # the error to the main process (pickled): it read 0
    import pickle

    from deepmolm_plugin.molecule.errors import MoleculeTooLarge

    with pytest.raises(MoleculeTooLarge) as caught:
        molecule_from_smiles("C" * 300, "c300")
    error = pickle.loads(pickle.dumps(caught.value))
    assert (type(error), error.n_heavy, error.max_atoms, error.id) == (MoleculeTooLarge, 300, 256, "c300")
    assert str(error) == str(caught.value) and "300 heavy atoms > max_atoms=256" in str(error)
