"""The one input resolver: every input form -> one molecule's model inputs, one naming rule."""

import json
import numpy as np
import pytest
import torch
from PIL import Image
from rdkit import Chem

from deepmolm_plugin.molecule import fingerprint_record, molecule_from_smiles, read_structures, render_molecule
from deepmolm_plugin.molecule.inputs import (
    InputError,
    InputResolver,
    depiction_name,
    has_molecule,
    write_depiction,
)
from deepmolm_plugin.molecule.sidecar import SidecarBuilder, reference
from deepmolm_plugin.molecule_fp import FingerprintSettings

ETHANOL = "CCO"


@pytest.fixture(scope="module")
def ethanol():
    return molecule_from_smiles(ETHANOL, "ethanol")


def _sdf(path, record, copies=1):
    block = Chem.MolToMolBlock(record.mol)
    path.write_text((block + "$$$$\n") * copies)
    return path


def test_every_form_gives_the_same_tokens_for_the_same_conformer(tmp_path, ethanol):
    expected = fingerprint_record(ethanol)
    resolver = InputResolver(structure_folder=str(tmp_path), record_folder=str(tmp_path), policy="auto",
                             render_folder=str(tmp_path / "renders"))
    _sdf(tmp_path / "e.sdf", ethanol)
    positions = ethanol.mol.GetConformer().GetPositions()
    atoms = [a.GetSymbol() for a in ethanol.mol.GetAtoms()]
    builder = SidecarBuilder(tmp_path / "tmp.npy", rows=len(expected), levels=4, dtype=np.dtype(np.int16))
    builder.append(expected.numpy().astype(np.int16))
    builder.commit(tmp_path / "fp.npy")
    forms = {
        "structure": {"structure": "e.sdf"},
        "atoms": {"atoms": atoms, "coordinates": positions.tolist()},
        "smiles": {"smiles": ETHANOL},
        "inline": {"molecule_fp": expected.tolist()},
        "sidecar": {"molecule_fp": reference("fp.npy", 0, len(expected))},
    }
    for name, fields in forms.items():
        assert has_molecule(fields)
        got = resolver.resolve(fields, name, depiction=False)
        assert torch.equal(got.molecule_fp, expected), name
        assert (got.molecule is None) == (name in ("inline", "sidecar")), name
    assert not has_molecule({"image": "x.png"})


def test_depictions_follow_one_naming_rule_and_are_shared(tmp_path):
    one = InputResolver(render_folder=str(tmp_path), kind="question")
    two = InputResolver(render_folder=str(tmp_path))  # another caller, same folder
    a = one.resolve({"smiles": ETHANOL}, "q1", fingerprint=False).image
    b = two.resolve({"smiles": ETHANOL}, "record-7", fingerprint=False).image
    assert a == b == str((tmp_path / depiction_name(b"smiles:" + ETHANOL.encode())).resolve())
    assert sorted(p.name for p in tmp_path.iterdir()) == [depiction_name(b"smiles:CCO")]  # no temporary left
    assert Image.open(a).tobytes() == render_molecule(ETHANOL).tobytes()
    given = one.resolve({"smiles": ETHANOL, "image": "mine.png"}, "q2", fingerprint=False)
    assert given.image == "mine.png"  # a given image is used as is
    assert depiction_name(b"smiles:CCO", 512) != depiction_name(b"smiles:CCO")  # settings are in the name


def test_depiction_atoms_are_the_drawn_atoms_in_molecule_fp_order(tmp_path, ethanol):
    from deepmolm_plugin.molecule.render import depiction_atom_positions

    resolver = InputResolver(render_folder=str(tmp_path))
    xy = resolver.depiction_atoms({"smiles": "OCC"}, "r")  # as fractions of the 1024 px depiction
    np.testing.assert_allclose(xy, depiction_atom_positions("OCC") / 1024)
    assert xy.shape == (3, 2) and (0 < xy).all() and (xy < 1).all()
    sdf = _sdf(tmp_path / "ethanol.sdf", ethanol)
    from_file = resolver.depiction_atoms({"structure": str(sdf)}, "r")
    np.testing.assert_allclose(from_file, xy[::-1])  # the file's order C, C, O; same drawing
    atoms = [a.GetSymbol() for a in ethanol.mol.GetAtoms()]
    with pytest.raises(InputError, match="drawn from its SMILES, given next to a structure"):
        resolver.depiction_atoms({"smiles": "OCC", "atoms": atoms,
                                  "coordinates": ethanol.mol.GetConformer().GetPositions().tolist()}, "r")


def test_write_depiction_takes_images_and_bytes(tmp_path):
    image = Image.new("RGB", (4, 4), "white")
    write_depiction(image, tmp_path / "a.png")
    write_depiction((tmp_path / "a.png").read_bytes(), tmp_path / "sub" / "b.png", durable=True,
                    tmp_folder=tmp_path / "tmp")
    assert (tmp_path / "sub" / "b.png").read_bytes() == (tmp_path / "a.png").read_bytes()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_structure_files_one_molecule_or_the_first_or_an_index(tmp_path, ethanol):
    _sdf(tmp_path / "two.sdf", ethanol, copies=2)
    with pytest.raises(InputError, match=r"record 'r': structure file .*two.sdf holds 2 molecules, expected 1"):
        InputResolver(structure_folder=str(tmp_path)).molecule({"structure": "two.sdf"}, "r")
    first = InputResolver(structure_folder=str(tmp_path), first_of_many=True).molecule({"structure": "two.sdf"}, "r")
    assert any("more than one molecule" in note for note in first.notes)
    second = InputResolver(structure_folder=str(tmp_path)).molecule({"structure": "two.sdf", "structure_index": 1}, "r")
    assert second.mol.GetNumAtoms() == list(read_structures(tmp_path / "two.sdf"))[1].mol.GetNumAtoms()
    with pytest.raises(InputError, match="has no record 5"):
        InputResolver(structure_folder=str(tmp_path)).molecule({"structure": "two.sdf", "structure_index": 5}, "r")


@pytest.mark.parametrize("fields, message", [
    ({}, "no molecule field"),
    ({"smiles": "C1CC"}, "unparseable|ring"),
    ({"structure": "missing.sdf"}, "structure file .*missing.sdf does not exist"),
    ({"structure": "x.cif"}, "unknown structure format"),
    ({"atoms": ["C", "O"]}, "has `atoms` but no `coordinates`"),
    ({"molecule_fp": [[5000, 1, 2, 3]]}, r"outside \[-1, 4096\)"),
    ({"molecule_fp": {"sidecar": "none.npy", "offset": 0, "atoms": 1}}, "sidecar file .* does not exist"),
])
def test_bad_inputs_name_the_input_and_the_reason(tmp_path, fields, message):
    (tmp_path / "x.cif").write_text("data_x\n")
    resolver = InputResolver(structure_folder=str(tmp_path), record_folder=str(tmp_path), kind="question")
    with pytest.raises(InputError, match=f"question 'q9': .*({message})") as info:
        resolver.resolve(fields, "q9", depiction=False)
    assert info.value.record_id == "q9" and info.value.reason


def test_depiction_errors(tmp_path):
    resolver = InputResolver(render_folder=str(tmp_path))
    with pytest.raises(InputError, match=r"its molecule_fp \(tokens, inline or in a sidecar\) cannot be drawn"):
        resolver.resolve({"molecule_fp": [[1, 2, 3, 4]]}, "r", fingerprint=False)
    with pytest.raises(InputError, match="no render folder is set"):
        InputResolver().resolve({"smiles": ETHANOL}, "r", fingerprint=False)
    with pytest.raises(InputError, match="relative but --structure-folder is not set"):
        InputResolver(option_names={"structure_folder": "--structure-folder"}).resolve(
            {"structure": "a.sdf"}, "r", fingerprint=False)


def test_settings_are_the_resolvers_and_cached_tokens_follow_them(ethanol):
    resolver = InputResolver()
    full = resolver.molecule_fp({"smiles": ETHANOL}, "r")
    resolver.fp = FingerprintSettings(1024, 2)  # e.g. the model's, known once the trainer starts
    small = resolver.molecule_fp({"smiles": ETHANOL}, "r")
    assert full.shape[1] == 4 and small.shape[1] == 2 and int(small.max()) < 1024


def test_from_file_refuses_a_smiles_in_every_caller(tmp_path):
    # was: the resolver (training, chat, GUI, deepmolm-prepare) generated a conformer for a
    # SMILES under 'from-file', while deepmolm-fingerprint and the README refused it
    from deepmolm_plugin.data.prepare import main as prepare_main
    from deepmolm_plugin.molecule.inputs import InputError

    with pytest.raises(InputError, match="record 'r': no coordinates: policy 'from-file' needs a 3D structure"):
        InputResolver(policy="from-file").molecule({"smiles": "CCO"}, "r")
    (tmp_path / "t.csv").write_text("smiles,y\nCCO,1\n")
    out = tmp_path / "out"
    code = prepare_main(["--format", "csv", "--input", str(tmp_path / "t.csv"), "--out", str(out), "--label-columns",
                         "y", "--conformer-policy", "from-file", "--image-size", "32", "--no-progress"])
    (failure,) = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert code == 1 and "no coordinates: policy 'from-file'" in failure["reason"]


def test_a_structure_file_rewritten_at_the_same_path_is_read_again(tmp_path, ethanol):
    """A long-lived resolver (the GUI's, chat's) keyed a structure by its path: a file
    rewritten in place gave back the molecule read before, for the tokens, the 3D view and
    a depiction named for the new bytes but drawn from the old molecule."""
    resolver = InputResolver(FingerprintSettings(bits=1024, levels=3), render_folder=str(tmp_path / "renders"))
    path = _sdf(tmp_path / "edit.sdf", ethanol)
    fields = {"structure": str(path)}
    first = resolver.resolve(fields, "m")
    assert first.molecule.mol.GetNumHeavyAtoms() == 3 and len(first.molecule_fp) == 3
    _sdf(path, molecule_from_smiles("c1ccccc1", "benzene"))
    second = resolver.resolve(fields, "m")
    assert second.molecule.mol.GetNumHeavyAtoms() == 6 and len(second.molecule_fp) == 6
    assert second.image != first.image
    assert Chem.MolToSmiles(Chem.RemoveHs(second.molecule.mol)) == "c1ccccc1"


def test_a_cache_limit_bounds_what_a_long_lived_resolver_keeps(tmp_path):
    """The GUI's resolver kept every molecule's tokens and checks for as long as the server
    ran; with `cache_limit` the least recently used go (training keeps all: no limit)."""
    resolver = InputResolver(FingerprintSettings(bits=1024, levels=3), cache_limit=2)
    for i, smiles in enumerate(["CCO", "CCN", "CCC", "CCO"]):
        resolver.molecule_fp({"smiles": smiles}, f"m{i}")
        assert len(resolver._tokens) <= 2
    unbounded = InputResolver(FingerprintSettings(bits=1024, levels=3))
    for i, smiles in enumerate(["CCO", "CCN", "CCC"]):
        unbounded.molecule_fp({"smiles": smiles}, f"m{i}")
    assert len(unbounded._tokens) == 3


@pytest.mark.parametrize("truth, smiles, differ", [
    ("C[C@H](N)C(=O)O", "C[C@@H](N)C(=O)O", "atom C2 is R in the SMILES, S in the structure"),
    ("C/C=C/C", "C/C=C\\C", "double bond C2=C3 is Z in the SMILES, E in the structure"),
    ("CCO", "[14CH3]CO", "atom C1 is isotope 14 in the SMILES, unlabelled in the structure"),
    ("[13CH3]CO", "OC[14CH3]", "atom C3 is isotope 14 in the SMILES, 13 in the structure"),
    # deuterium the structure lacks: was "its structure is 'CC(O)O' but its SMILES is '[H]C([H])([H])C(O)O'"
    ("CC(=O)O", "[2H]C([2H])([2H])C(=O)O", "the SMILES labels 3 x 2H, the structure none"),
    ("[2H]C([2H])([2H])C(=O)O", "[3H]C([3H])([3H])C(=O)O", "atom H1 is isotope 3 in the SMILES, 2 in the structure"),
    # fewer labels than the structure: each maps onto one of its labelled atoms (was accepted)
    ("[2H]C([2H])([2H])C(=O)O", "[2H]CC(=O)O", "the SMILES labels 1 x 2H, the structure 3 x 2H"),
    ("[13CH3][13CH2]O", "[13CH3]CO", "the SMILES labels 1 x 13C, the structure 2 x 13C"),
])
def test_a_smiles_stating_other_stereo_or_isotopes_than_the_structure_is_refused(tmp_path, truth, smiles, differ):
    # was accepted: tokens of the structure's (S)-alanine / trans-butene / ethanol, the depiction
    # of the SMILES' (R) / cis / 14C one
    _sdf(tmp_path / "s.sdf", molecule_from_smiles(truth, "truth"))
    resolver = InputResolver(structure_folder=str(tmp_path), render_folder=str(tmp_path / "r"))
    with pytest.raises(InputError, match=f"record 'r1': its SMILES .* contradicts its structure .*s.sdf.*: {differ}"):
        resolver.resolve({"structure": "s.sdf", "smiles": smiles}, "r1")
    assert not (tmp_path / "r").exists()  # nothing drawn


@pytest.mark.parametrize("truth, smiles", [
    ("C[C@H](N)C(=O)O", "CC(N)C(=O)O"),  # 3D-MoIT: a stereo-free SMILES next to the coordinates
    ("C[C@H](N)C(=O)O", "OC(=O)[C@@H](N)C"),  # the same centre, spelt in another order
    ("[14CH3]CO", "CCO"),  # no isotopes in the SMILES: it says nothing of them
    ("[2H]C([2H])([2H])C(=O)O", "CC(=O)O"),  # deuterium too (was refused as another skeleton)
    ("[2H]C([2H])([2H])C(=O)O", "[2H]C([2H])([2H])C(=O)O"),
    ("C[C@@H](O)C[C@@H](O)C", "C[C@@H](O)CC(O)C"),  # meso: either equivalent centre may be the one given
    ("C[C@@H](O)C[C@@H](O)C", "C[C@H](O)CC(O)C"),
])
def test_a_smiles_leaving_out_what_the_structure_states_is_accepted(tmp_path, truth, smiles):
    _sdf(tmp_path / "s.sdf", molecule_from_smiles(truth, "truth"))
    resolver = InputResolver(structure_folder=str(tmp_path))
    got = resolver.resolve({"structure": "s.sdf", "smiles": smiles}, "r1", depiction=False)
    assert torch.equal(got.molecule_fp, resolver.resolve({"structure": "s.sdf"}, "r2", depiction=False).molecule_fp)


def _flat_molfile(path, smiles, wedges=True):
    """A 2D molfile (a depiction's coordinates); without `wedges` it states no chirality."""
    from rdkit.Chem import AllChem

    mol = Chem.MolFromSmiles(smiles)
    AllChem.Compute2DCoords(mol)
    if not wedges:
        for atom in mol.GetAtoms():
            atom.SetChiralTag(Chem.ChiralType.CHI_UNSPECIFIED)
    path.write_text(Chem.MolToMolBlock(mol))
    return path


@pytest.mark.parametrize("smiles", ["C[C@H](N)C(=O)O", "C[C@@H](N)C(=O)O"])
def test_stereo_a_flat_structure_leaves_open_is_refused_whichever_the_smiles_states(tmp_path, smiles):
    """Was decided by the seeded conformer generated from the flat file: one enantiomer's
    SMILES was accepted (its picture next to tokens of a random configuration) and the
    other's refused as "S in the structure", a centre the file never stated."""
    _flat_molfile(tmp_path / "ala.mol", "CC(N)C(=O)O", wedges=False)
    resolver = InputResolver(structure_folder=str(tmp_path))
    with pytest.raises(InputError, match=r"record 'a': its SMILES .* states the configuration of atom C2, which its "
                                         r"structure .*ala.mol.* leaves open"):
        resolver.resolve({"structure": "ala.mol", "smiles": smiles}, "a", depiction=False)
    assert resolver.resolve({"structure": "ala.mol", "smiles": "CC(N)C(=O)O"}, "b", depiction=False) is not None


def test_stereo_a_flat_structure_states_with_wedges_goes_with_its_smiles(tmp_path):
    _flat_molfile(tmp_path / "ala.mol", "C[C@H](N)C(=O)O")
    resolver = InputResolver(structure_folder=str(tmp_path))
    got = resolver.resolve({"structure": "ala.mol", "smiles": "C[C@H](N)C(=O)O"}, "a", depiction=False)
    assert torch.equal(got.molecule_fp, resolver.resolve({"structure": "ala.mol"}, "b", depiction=False).molecule_fp)
    with pytest.raises(InputError, match="atom C2 is R in the SMILES, S in the structure"):
        resolver.resolve({"structure": "ala.mol", "smiles": "C[C@@H](N)C(=O)O"}, "c", depiction=False)
