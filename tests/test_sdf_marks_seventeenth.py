"""Seventeenth round: two SDF/molfile marks that changed what was read without a word. A data
field named like one of RDKit's own properties was read as that property (RDKit sets every
field as the molecule property of its name): `> <_Name>` replaced the title line as the record
id (a blank one removed it), `> <_molLinkNodes>` made the record a Markush structure,
`> <__computedProps>` crashed reading with a bare "bad any_cast". A 3D molfile's wedge and hash
marks that contradict its coordinates were ignored (its stereo is the coordinates') and nothing
said so."""

from __future__ import annotations

from pathlib import Path

import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from deepmolm_plugin.molecule import read_structures
from deepmolm_plugin.molecule.errors import MoleculeError

L_ALANINE = "C[C@H](N)C(=O)O"  # atom 2 (C2) is the stereocentre, S
L_THREONINE = "C[C@@H](O)[C@H](N)C(=O)O"  # C2 (R) and C4 (S)


def _read(tmp_path: Path, text: str, name: str = "m.sdf"):
    """The one record of ``text`` as ``read_structures`` gives it: a record or a MoleculeError."""
    path = tmp_path / name
    path.write_text(text)
    records = list(read_structures(str(path)))
    assert len(records) == 1
    return records[0]


def _ok(record):
    assert not isinstance(record, MoleculeError), record
    return record


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
    ("_StereochemDone", "1", "stereo was perceived"),
    ("_MolFileComments", "edited", "comment line"),
    ("_labuteASA", "9.0", "named like RDKit's own"),  # was: RDKit's LabuteASA descriptor returned 9.0
    ("_ID", "m-1", "named like RDKit's own"),
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


# --- (b) a 3D molfile's wedges against its coordinates ----------------------------------------

def _flip_wedges(block: str, atom: int | None = None) -> str:
    """``block`` with its wedges made hashes and its hashes wedges (V2000 bond stereo 1 <-> 6,
    V3000 CFG=1 <-> 3); ``atom`` (1-based): only the marks whose narrow end is that atom."""
    lines = block.split("\n")
    v3000 = "V3000" in lines[3]
    counts = lines[3] if not v3000 else ""
    natoms, nbonds = (int(counts[0:3]), int(counts[3:6])) if counts else (0, 0)
    in_bonds = False  # V3000: a bond's CFG, not an atom's
    for n, line in enumerate(lines):
        in_bonds = (in_bonds or line.startswith("M  V30 BEGIN BOND")) and not line.startswith("M  V30 END BOND")
        if v3000 and in_bonds and ("CFG=1" in line or "CFG=3" in line):
            fields = line.split()  # M V30 index type begin end CFG=
            if atom is None or int(fields[4]) == atom:
                swap = {"CFG=1": "CFG=3", "CFG=3": "CFG=1"}
                lines[n] = " ".join(swap.get(f, f) for f in fields).replace("M V30", "M  V30", 1)
        elif not v3000 and 4 + natoms <= n < 4 + natoms + nbonds and line[9:12].strip() in ("1", "6"):
            if atom is None or int(line[0:3]) == atom:
                lines[n] = line[:9] + ("  6" if line[9:12].strip() == "1" else "  1") + line[12:]
    assert lines != block.split("\n"), "no wedge mark to flip"
    return "\n".join(lines)


def _wedge_notes(record) -> list:
    return [note for note in record.notes if "wedge/hash bond marks contradict the 3D coordinates" in note]


def _centres(mol) -> list:
    return Chem.FindMolChiralCenters(mol, includeUnassigned=False, useLegacyImplementation=False)


@pytest.mark.parametrize("v3000", [False, True], ids=["V2000", "V3000"])
def test_wedges_contradicting_3d_coordinates_are_noted(tmp_path, v3000):
    """The coordinates' stereo (L-alanine, S) is read, as before; now a note says the wedges
    said R. The same file with RDKit's own, agreeing wedges gets no note, and neither does a
    2D drawing (its stereo is its wedges')."""
    block = _molblock(v3000=v3000)
    flipped = _ok(_read(tmp_path, _flip_wedges(block) + "$$$$\n", "flipped.sdf"))
    assert flipped.conformer == "file" and _centres(Chem.RemoveHs(flipped.mol)) == [(1, "S")]
    (note,) = _wedge_notes(flipped)
    assert "at atom(s) C2 (R by the wedges, S by the coordinates)" in note
    assert "the coordinates' stereo is used" in note
    agreeing = _ok(_read(tmp_path, block + "$$$$\n", "agreeing.sdf"))
    assert _centres(Chem.RemoveHs(agreeing.mol)) == [(1, "S")] and not _wedge_notes(agreeing)
    drawing = _molblock(embed=False, v3000=v3000)
    flat = _ok(_read(tmp_path, _flip_wedges(drawing) + "$$$$\n", "drawing.sdf"))
    assert _centres(Chem.RemoveHs(flat.mol)) == [(1, "R")] and not _wedge_notes(flat)  # the drawing's R


def test_only_the_contradicted_centre_is_named(tmp_path):
    """Threonine with one of its two wedges flipped names that centre alone; a wedge added on
    the methyl carbon (no stereocentre) is named by nothing."""
    block = _molblock(L_THREONINE, title="threonine")
    lines = block.split("\n")
    natoms, nbonds = int(lines[3][0:3]), int(lines[3][3:6])
    methyl_h = next(n for n in range(4 + natoms, 4 + natoms + nbonds)
                    if int(lines[n][0:3]) == 1 and lines[n][9:12].strip() == "0"
                    and lines[4 + int(lines[n][3:6]) - 1][31:34].strip() == "H")
    lines[methyl_h] = lines[methyl_h][:9] + "  1" + lines[methyl_h][12:]  # a wedge from C1 to one of its H
    record = _ok(_read(tmp_path, _flip_wedges("\n".join(lines), atom=4) + "$$$$\n"))
    (note,) = _wedge_notes(record)
    assert "at atom(s) C4 (R by the wedges, S by the coordinates):" in note
    assert "C2" not in note and "C1" not in note
    assert sorted(_centres(Chem.RemoveHs(record.mol))) == [(1, "R"), (3, "S")]  # the coordinates'
