"""render_molecule: 1024x1024 RGB, white background, deterministic, stereo shown."""

import io

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Geometry import Point3D

from deepmolm_plugin.molecule import MoleculeError, molecule_from_smiles, render_molecule
from deepmolm_plugin.molecule import render as render_module

ALA = "C[C@H](N)C(=O)O"


def png_bytes(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def ala():
    return molecule_from_smiles(ALA, "ala")


def test_size_mode_and_white_background(ala):
    image = render_molecule(ala)
    assert image.size == (1024, 1024) and image.mode == "RGB"
    pixels = np.asarray(image)
    for corner in (pixels[0, 0], pixels[0, -1], pixels[-1, 0], pixels[-1, -1]):
        assert corner.tolist() == [255, 255, 255]
    assert (pixels < 128).any()  # something is drawn
    assert render_molecule("CCO", size=256).size == (256, 256)


def test_deterministic_bytes_and_independent_of_atom_order(ala):
    first, second = render_molecule(ala.mol), render_molecule(ala.mol)
    assert first.tobytes() == second.tobytes() and png_bytes(first) == png_bytes(second)
    perm = [int(i) for i in np.random.default_rng(2).permutation(ala.mol.GetNumAtoms())]
    permuted = render_molecule(Chem.RenumberAtoms(ala.mol, perm))
    assert permuted.tobytes() == first.tobytes()
    assert render_molecule(ALA).tobytes() == first.tobytes()  # SMILES or 3D record: same picture


@pytest.mark.parametrize("one, other", [("CCO", "OCC"), ("CC(=O)Oc1ccccc1C(=O)O", "OC(=O)c1ccccc1OC(C)=O"),
                                        ("C[C@@H](C(=O)O)N", "N[C@@H](C)C(=O)O"), ("C/C=C/C=C/CO", "OC/C=C/C=C/C"),
                                        ("C[C@H]1CC[C@@H](O)CC1", "O[C@H]1CC[C@@H](C)CC1")])
def test_two_spellings_of_one_smiles_give_the_same_bytes(one, other):
    # was: atoms renumbered canonically but bonds left in the input's order: 3-9 pixels differed
    assert png_bytes(render_molecule(one, size=256)) == png_bytes(render_molecule(other, size=256))


def test_caller_molecule_and_its_3d_conformer_are_untouched(ala):
    before = ala.mol.GetConformer().GetPositions().copy()
    atoms = ala.mol.GetNumAtoms()
    render_molecule(ala.mol)
    assert ala.mol.GetNumConformers() == 1 and ala.mol.GetNumAtoms() == atoms
    assert np.array_equal(ala.mol.GetConformer().GetPositions(), before)
    assert ala.mol.GetConformer().Is3D()


def test_stereo_is_shown(ala):
    mirror = Chem.Mol(ala.mol)  # the enantiomer, from 3D geometry alone
    conf = mirror.GetConformer()
    for i in range(mirror.GetNumAtoms()):
        p = conf.GetAtomPosition(i)
        conf.SetAtomPosition(i, Point3D(p.x, p.y, -p.z))
    Chem.AssignStereochemistryFrom3D(mirror)
    assert render_molecule(mirror).tobytes() != render_molecule(ala).tobytes()
    assert render_molecule("C[C@@H](N)C(=O)O").tobytes() == render_molecule(mirror).tobytes()
    assert render_molecule("C/C=C/C").tobytes() != render_molecule("C/C=C\\C").tobytes()
    assert render_molecule("CC(N)C(=O)O").tobytes() != render_molecule(ALA).tobytes()


def test_failures_are_errors_not_blank_images(monkeypatch):
    with pytest.raises(MoleculeError, match="unparseable SMILES"):
        render_molecule("C1CC")
    monkeypatch.setattr(render_module.rdMolDraw2D, "PrepareAndDrawMolecule", lambda drawer, mol: None)
    with pytest.raises(MoleculeError, match="blank") as info:
        render_molecule("CCO", id="ethanol")
    assert info.value.id == "ethanol"


def _colour_near(image, xy, radius=25):
    """Counts of red (O) and blue (N) label pixels within `radius` px of `xy` in `image`."""
    pixels = np.asarray(image).astype(int)
    x, y = (int(round(v)) for v in xy)
    window = pixels[max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1].reshape(-1, 3)
    red = ((window[:, 0] > 150) & (window[:, 1] < 110) & (window[:, 2] < 110)).sum()
    blue = ((window[:, 2] > 150) & (window[:, 0] < 110)).sum()
    return int(red), int(blue)


@pytest.mark.parametrize("smiles, oxygen", [("CCO", 2), ("OCC", 0)])
def test_atom_positions_are_where_each_molecule_fp_row_is_drawn(smiles, oxygen):
    image = render_molecule(smiles, size=512)
    xy = render_module.depiction_atom_positions(smiles, size=512)
    assert xy.shape == (3, 2) and np.isfinite(xy).all()
    for row, point in enumerate(xy):
        red, _ = _colour_near(image, point)
        assert (red > 20) == (row == oxygen), (row, red)  # the red 'OH' label sits on the O row only
    # the same picture in either atom order: the O is drawn at the same place
    other = render_module.depiction_atom_positions("OCC" if smiles == "CCO" else "CCO", size=512)
    np.testing.assert_allclose(xy[oxygen], other[2 - oxygen])


def test_atom_positions_of_a_3d_record_skip_its_hydrogens(ala):
    image = render_molecule(ala)
    xy = render_module.depiction_atom_positions(ala)
    heavy = [a.GetSymbol() for a in ala.mol.GetAtoms() if a.GetAtomicNum() != 1]
    assert ala.mol.GetNumAtoms() > len(heavy) and xy.shape == (len(heavy), 2)
    for symbol, point in zip(heavy, xy):
        red, blue = _colour_near(image, point, radius=40)
        assert (red > 20) == (symbol == "O") and (blue > 20) == (symbol == "N"), (symbol, red, blue)


@pytest.mark.parametrize("annotated, plain", [
    ("CC[O-] |$;;OMe$|", "CC[O-]"),  # a CXSMILES atom label: "OMe" was drawn over ethoxide's O
    ("CCO |$R1;;$|", "CCO"),  # "R1" in a carbon's place
    ("[OH:3][CH2:1][CH3:2]", "OCC"),  # map numbers: drawn as "C:1", and they changed the atom order
    ("CC(=O)O |SgD:2:note:hello::::|", "CC(=O)O"),  # a data S-group, drawn as text
])
def test_display_annotations_are_not_drawn(annotated, plain):
    """The depiction shows the molecule the tokens describe, not the labels written on it."""
    drawn = np.asarray(render_molecule(annotated, size=256))
    assert np.array_equal(drawn, np.asarray(render_molecule(plain, size=256)))


def test_depiction_names_change_with_the_drawing_rules(monkeypatch):
    """A render folder filled before the renderer changed (labels and map numbers were drawn)
    served the old drawings: the rules' number is part of every drawn depiction's name."""
    from deepmolm_plugin.molecule.inputs import depiction_name

    before = depiction_name(b"smiles:[CH3:1][OH:2]")
    monkeypatch.setattr(render_module, "DRAWING_RULES", render_module.DRAWING_RULES + 1)
    assert depiction_name(b"smiles:[CH3:1][OH:2]") != before


def test_depiction_names_change_with_rdkits_version(monkeypatch):
    """A `<data>.renders` folder kept across an RDKit upgrade served training the old
    drawings while eval and chat drew with the new layout."""
    import rdkit

    from deepmolm_plugin.molecule.inputs import depiction_name

    before = depiction_name(b"smiles:CCO")
    monkeypatch.setattr(rdkit, "__version__", rdkit.__version__ + ".post1")
    assert depiction_name(b"smiles:CCO") != before


def test_a_2d_file_whose_conformer_is_generated_is_drawn_with_the_stereo_it_states(tmp_path):
    # was: the resolver drew the generated conformer's stereo, ETKDG's choice for a centre
    # the file leaves open: a 2D alanine without wedges was drawn (S), while its SMILES and
    # deepmolm-render of the same file were drawn without a wedge
    from rdkit.Chem import AllChem

    from deepmolm_plugin.molecule import read_structures
    from deepmolm_plugin.molecule.inputs import InputResolver

    mol = Chem.AddHs(Chem.MolFromSmiles("CC(N)C(=O)O"))
    AllChem.Compute2DCoords(mol)
    Chem.MolToMolFile(mol, str(tmp_path / "ala2d.sdf"))
    resolver = InputResolver(policy="auto")
    structure, smiles = {"structure": str(tmp_path / "ala2d.sdf")}, {"smiles": "CC(N)C(=O)O"}
    assert resolver.molecule(structure, "sdf").conformer == "generated"  # its tokens use the generated one
    drawn = np.asarray(resolver.depiction(structure, "sdf"))
    assert np.array_equal(drawn, np.asarray(resolver.depiction(smiles, "smi")))
    as_read = render_molecule(next(read_structures(tmp_path / "ala2d.sdf", policy="keep")), size=1024)
    assert np.array_equal(drawn, np.asarray(as_read))
