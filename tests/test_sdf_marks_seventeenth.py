"""Seventeenth round: an SDF data field named like a molecule property RDKit or this package
reads was read as that property (RDKit sets every field as the molecule property of its name):
`> <_Name>` replaced the title line as the record id (a blank one removed it),
`> <_molLinkNodes>` made the record a Markush structure without naming the field,
`> <__computedProps>` crashed reading with a bare "bad any_cast". The '_' fields RDKit's
SDWriter writes for molecules its other readers made stay data (a first version of this rule
refused every '_' field and lost every record of an SDF that RDKit wrote from MOL2 or XYZ)."""

from __future__ import annotations


import pytest
from rdkit import Chem
from rdkit.Chem import AllChem, rdDetermineBonds

from deepmolm_plugin.molecule import read_structures
from deepmolm_plugin.molecule.errors import MoleculeError
from read_one import accepted as _ok, read_one as _read

L_ALANINE = "C[C@H](N)C(=O)O"  # atom 2 (C2) is the stereocentre, S


def _molblock(smiles: str = L_ALANINE, title: str = "alanine", embed: bool = True, v3000: bool = False) -> str:
    """A molfile of ``smiles`` with RDKit's wedges: 3D (embedded, hydrogens written) or a 2D drawing."""
    if embed:
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        assert AllChem.EmbedMolecule(mol, randomSeed=7) == 0
    else:
        mol = Chem.MolFromSmiles(smiles)
        AllChem.Compute2DCoords(mol)
    mol.SetProp("_Name", title)
    return Chem.MolToV3KMolBlock(mol) if v3000 else Chem.MolToMolBlock(mol)


def _with_field(block: str, name: str, value: str) -> str:
    return f"{block}> <{name}>\n{value}\n\n$$$$\n"


# --- (a) data fields named like RDKit's own properties ----------------------------------------

def test_a_name_field_does_not_replace_the_title_as_the_id(tmp_path):
    """was: the record came back as 'ZINC000001' (the field), or, with a blank field, as
    'm.sdf#0': the title line 'alanine' was gone without a word."""
    error = _read(tmp_path, _with_field(_molblock(), "_Name", "ZINC000001"))
    assert isinstance(error, MoleculeError), f"the field replaced the title: read as {error.id!r}"
    assert error.id == "alanine"  # the record as its title line names it, not as the field does
    assert "SDF data field '_Name'" in error.reason and "title" in error.reason
    assert "rename or remove the field" in error.reason
    blank = _read(tmp_path, _with_field(_molblock(), "_Name", ""), "blank.sdf")
    assert isinstance(blank, MoleculeError) and blank.id == "alanine" and "'_Name'" in blank.reason


def test_a_name_field_under_a_blank_title_fails_under_the_file_index(tmp_path):
    """A blank title line and the name in a `_Name` field (a hand-written test file's layout):
    was read as 'Ethanol', the field's value; now the record fails, named by its place."""
    block = _molblock("CCO", title="")
    error = _read(tmp_path, _with_field(block, "_Name", "Ethanol"), "ethanol.sdf")
    assert isinstance(error, MoleculeError), f"read as {error.id!r}"
    assert error.id == "ethanol.sdf#0" and "'_Name'" in error.reason


@pytest.mark.parametrize("name, value, said", [
    ("_MolFileChiralFlag", "0", "chiral flag"),
    ("_molLinkNodes", "1 3 2 2 3", "link nodes"),  # was: failed as a Markush structure, no field named
    ("__computedProps", "x", "computed properties"),  # was: RuntimeError "bad any_cast"
    ("_MolFileComments", "edited", "comment line"),
])
def test_fields_named_like_rdkit_properties_are_refused(tmp_path, name, value, said):
    error = _read(tmp_path, _with_field(_molblock(), name, value))
    assert isinstance(error, MoleculeError), f"field {name!r} was read: {error}"
    assert error.id == "alanine" and f"SDF data field {name!r}" in error.reason and said in error.reason


def test_ordinary_fields_stay_and_only_headers_count(tmp_path):
    """A field's value may hold '> <_Name>' text (RDKit reads a value to its empty line, so it
    sets no property), and `_CXSMILES_Data`, which RDKit's SDWriter writes for every molecule
    read from a CXSMILES (Enamine's `|&1:1|`), stays: those records are read, their title the
    id. A `_Name` header with a field number after it is a `_Name` field all the same."""
    cx = Chem.AddHs(Chem.MolFromSmiles("C[C@H](N)C(=O)O |&1:1|"))
    assert AllChem.EmbedMolecule(cx, randomSeed=7) == 0
    cx.SetProp("_Name", "rac-alanine")
    written = tmp_path / "written.sdf"
    with Chem.SDWriter(str(written)) as writer:
        writer.write(cx)
    assert "<_CXSMILES_Data>" in written.read_text()
    assert _ok(next(iter(read_structures(str(written))))).id == "rac-alanine"
    block = _molblock()
    quoted = block + "> <NOTE>\n> <_Name> is RDKit's title property\n\n> <NAME>\nL-alanine\n\n$$$$\n"
    record = _ok(_read(tmp_path, quoted, "quoted.sdf"))
    assert record.id == "alanine" and record.mol.GetProp("NOTE").startswith("> <_Name>")
    error = _read(tmp_path, block + "> <NAME>\nL-alanine\n\n>  <_Name>  (1)\nx\n\n$$$$\n", "second.sdf")
    assert isinstance(error, MoleculeError) and "'_Name'" in error.reason  # a header with a field number after it


def test_fields_rdkit_writes_for_its_other_readers_stay_data(tmp_path):
    """RDKit's SDWriter writes the properties its MOL2 and XYZ readers set (`_TriposChargeType`,
    `_FileComments`), and users' scripts write their own '_' fields (`_ID`), as does a JSON round
    trip (`_StereochemDone`): such files are read as before, title as id, the field kept as data
    (the first version of this rule failed every such record; this test guards that, and passes
    on the code before the rule too)."""
    mol2 = Chem.MolFromMol2Block(
        "@<TRIPOS>MOLECULE\nwater\n 3 2 0 0 0\nSMALL\nUSER_CHARGES\n\n@<TRIPOS>ATOM\n"
        "      1 O1   0.0000 0.0000 0.0000 O.3 1 HOH 0.0000\n"
        "      2 H1   0.9572 0.0000 0.0000 H   1 HOH 0.0000\n"
        "      3 H2  -0.2400 0.9266 0.0000 H   1 HOH 0.0000\n"
        "@<TRIPOS>BOND\n     1 1 2 1\n     2 1 3 1\n", removeHs=False)
    xyz = Chem.MolFromXYZBlock("3\nwater from a QM run\nO 0.0 0.0 0.0\nH 0.9572 0.0 0.0\nH -0.24 0.9266 0.0\n")
    rdDetermineBonds.DetermineBonds(xyz, charge=0)
    for name, mol, field in (("mol2", mol2, "_TriposChargeType"), ("xyz", xyz, "_FileComments")):
        mol.SetProp("_Name", f"water-{name}")
        mol.SetProp("_ID", "w-1")
        path = tmp_path / f"{name}.sdf"
        with Chem.SDWriter(str(path)) as writer:
            writer.write(mol)
        assert f"<{field}>" in path.read_text() and "<_ID>" in path.read_text()
        record = _ok(next(iter(read_structures(str(path)))))
        assert record.id == f"water-{name}" and record.mol.GetProp("_ID") == "w-1"
    record = _ok(_read(tmp_path, _with_field(_molblock(), "_StereochemDone", "1")))
    assert record.id == "alanine"
