"""Hostile molecule inputs: each one once crashed, hung or silently gave another molecule.

Every case here must end in a ``MoleculeError``/``InputError`` naming the input and the
reason (or, for the tools, a failure line / a one-line usage error), never a traceback and
never a different molecule.
"""

import json
import re

import numpy as np
import pytest
from rdkit import Chem

from deepmolm_plugin.molecule import MoleculeError, molecule_from_atoms, molecule_from_smiles, read_structures
from deepmolm_plugin.molecule.inputs import InputError, InputResolver, has_molecule
from deepmolm_plugin.molecule.tools import fingerprint_main, render_main

ETHANOL_ATOMS = ["C", "C", "O", "H", "H", "H", "H", "H", "H"]
ETHANOL_XYZ = [[-0.92, -0.02, 0.05], [0.53, 0.41, -0.03], [1.34, -0.74, 0.05], [-1.16, -0.54, 0.99],
               [-1.57, 0.86, 0.01], [-1.15, -0.70, -0.79], [0.76, 1.12, 0.78], [0.73, 0.93, -0.98],
               [1.25, -1.21, -0.80]]


@pytest.fixture(scope="module")
def ethanol_block():
    mol = molecule_from_smiles("CCO", "ethanol").mol
    mol.SetProp("_Name", "ethanol")  # the title line
    return Chem.MolToMolBlock(mol)


def _items(path, **options):
    return list(read_structures(path, policy="keep", **options))


# --- SMILES that RDKit reads as another molecule, or crashes on -------------------------
@pytest.mark.parametrize("smiles, message", [
    ("CC O", "text after a space ('O')"),          # RDKit: ethane named 'O'
    ("CC(=O)Oé", "non-ASCII character 'é'"),        # RDKit: acetic acid, stops at the byte
    ("CC\nO", "control character '\\n'"),            # RDKit: ethane
    ("C–C", "non-ASCII character '–'"),             # an en dash pasted from a paper
    ("c1ccccc1 benzene", "text after a space ('benzene')"),
    ("CC |$;$|O", "text after its CXSMILES extension ('O')"),  # RDKit: ethane, the O taken as a name
    ("CCO |$;;$| ethanol", "text after its CXSMILES extension ('ethanol')"),
    ("\ufffd\ufffdQ", "non-ASCII"),                  # RDKit's error log crashed (SystemError)
])
def test_smiles_that_rdkit_would_misread_are_errors(smiles, message):
    with pytest.raises(MoleculeError, match="SMILES") as info:
        molecule_from_smiles(smiles, "m", policy="keep")
    assert message in info.value.reason and info.value.id == "m"


@pytest.mark.parametrize("smiles, atoms", [("[#6]-[#8]", "C1, O2"), ("C[CH2]", "C2"), ("[C]", "C1")])
def test_radicals_a_smiles_writes_are_noted(smiles, atoms):
    """Were kept without a word: '[#6]-[#8]' (atomic numbers, SMARTS style) is a C and an O
    with no hydrogens, radicals both."""
    record = molecule_from_smiles(smiles, "r", policy="keep")
    assert any(n.startswith(f"radical: unpaired electrons on atoms {atoms} ") for n in record.notes), record.notes
    assert not any(n.startswith("radical") for n in molecule_from_smiles("CCO", "e", policy="keep").notes)
    assert sum(n.startswith("radical") for n in record.notes) == 1  # noted once (parse, then finish)


def test_radicals_a_structure_file_states_are_noted(tmp_path):
    """was: a methyl radical from an SDF (`M  RAD`) was kept without the note its SMILES gets."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    from deepmolm_plugin.molecule.io import read_structures

    methyl = Chem.AddHs(Chem.MolFromSmiles("[CH3]"))
    AllChem.EmbedMolecule(methyl, randomSeed=1)
    (tmp_path / "methyl.sdf").write_text(Chem.MolToMolBlock(methyl) + "$$$$\n")
    (record,) = read_structures(tmp_path / "methyl.sdf", policy="from-file")
    assert [n for n in record.notes if n.startswith("radical")] == [
        "radical: unpaired electrons on atoms C1 (as the structure states them: a radical mark (M  RAD), or "
        "hydrogens it leaves out)"]


def test_surrounding_spaces_and_cxsmiles_extensions_still_parse():
    assert molecule_from_smiles("  CCO \n", "m", policy="keep").mol.GetNumHeavyAtoms() == 3
    assert molecule_from_smiles("CCO |$;;foo$|", "m", policy="keep").mol.GetNumHeavyAtoms() == 3


def test_smiles_file_with_undecodable_bytes_is_one_failure_per_line(tmp_path):
    path = tmp_path / "bad.smi"
    path.write_bytes(b"CCO good\n\xc3\xa9\xe2\x80 broken\n")  # bytes RDKit's log cut mid-character
    first, second = _items(path)
    assert first.id == "good" and first.mol.GetNumHeavyAtoms() == 3
    assert isinstance(second, MoleculeError) and second.id == "broken" and "non-ASCII" in second.reason


def test_csv_smiles_with_a_name_fails_that_row_not_the_next(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("id,smiles\na,CCO ethanol\nb,CCN\n")
    first, second = _items(path)
    assert isinstance(first, MoleculeError) and first.id == "a" and "text after a space" in first.reason
    assert second.id == "b" and second.mol.GetNumHeavyAtoms() == 3


# --- structure files: encodings, binary garbage ------------------------------------------
def test_byte_order_mark_does_not_hide_the_csv_id_column_or_reach_the_title(tmp_path, ethanol_block):
    csv = tmp_path / "excel.csv"
    csv.write_bytes(b"\xef\xbb\xbfid,smiles\nA,CCO\nB,c1ccccc1\n")
    assert [r.id for r in _items(csv)] == ["A", "B"]  # were 'excel.csv#0', 'excel.csv#1'
    sdf = tmp_path / "bom.sdf"
    sdf.write_bytes(b"\xef\xbb\xbf" + ethanol_block.encode())
    assert [r.id for r in _items(sdf)] == ["ethanol"]  # was '\ufeffethanol'


@pytest.mark.parametrize("suffix", [".sdf", ".mol2", ".xyz", ".csv", ".smi"])
def test_utf16_and_binary_files_are_one_clear_error(tmp_path, ethanol_block, suffix):
    utf16 = tmp_path / f"u16{suffix}"
    utf16.write_bytes(ethanol_block.encode("utf-16"))
    binary = tmp_path / f"bin{suffix}"
    binary.write_bytes(bytes(range(256)) * 4)
    (error,) = _items(utf16)
    assert isinstance(error, MoleculeError) and "UTF-16" in error.reason and error.id == utf16.name
    (error,) = _items(binary)
    assert isinstance(error, MoleculeError) and "binary" in error.reason and error.id == binary.name


def test_non_ascii_in_a_connection_table_is_an_error_not_a_crash(tmp_path, ethanol_block):
    lines = ethanol_block.split("\n")
    lines[3] = "  \ufffd\ufffd\ufffd" + lines[3][5:]  # RDKit logged half of U+FFFD: SystemError
    path = tmp_path / "mangled.sdf"
    path.write_text("\n".join(lines) + "$$$$\n" + ethanol_block + "$$$$\n", encoding="utf-8")
    bad, good = _items(path)
    assert isinstance(bad, MoleculeError) and "line 4: non-ASCII" in bad.reason and bad.source.endswith("#0")
    assert good.mol.GetNumHeavyAtoms() == 3  # the next record is still read


def test_non_ascii_in_pdb_conect_is_an_error_not_a_crash(tmp_path):
    mol = molecule_from_smiles("CCO", "ethanol").mol
    text = Chem.MolToPDBBlock(mol).replace("CONECT    1", "CONECT   \ufffd1", 1)
    path = tmp_path / "x.pdb"
    path.write_text(text, encoding="utf-8")
    (error,) = _items(path)
    assert isinstance(error, MoleculeError) and "non-ASCII" in error.reason and "CONECT" in error.reason


# --- atom lists ----------------------------------------------------------------------------
@pytest.mark.parametrize("atoms, coordinates, charge, message", [
    (ETHANOL_ATOMS, [["a", "b", "c"]] * 9, 0, "coordinates must be numbers"),  # was a bare ValueError
    (ETHANOL_ATOMS, {"x": 1}, 0, "coordinates must be"),                        # was a TypeError
    (ETHANOL_ATOMS, ETHANOL_XYZ, 0.7, "total charge must be an integer"),        # was silently 0
    (ETHANOL_ATOMS, ETHANOL_XYZ, True, "total charge must be an integer"),
    ([True] + ETHANOL_ATOMS[1:], ETHANOL_XYZ, 0, "unknown element True"),       # was hydrogen
    ([6.0] + ETHANOL_ATOMS[1:], ETHANOL_XYZ, 0, "unknown element 6.0"),
    ("CCOHHHHHH", ETHANOL_XYZ, 0, "list of symbols"),                           # 'Cl' would be C + l
])
def test_bad_atom_lists_are_errors(atoms, coordinates, charge, message):
    with pytest.raises(MoleculeError, match=message):
        molecule_from_atoms(atoms, coordinates, "a", charge=charge, policy="keep")


def test_atom_list_integer_charges_are_accepted():
    for charge in (0, np.int64(0), 0.0, "0", "+0"):
        assert molecule_from_atoms(ETHANOL_ATOMS, ETHANOL_XYZ, "a", charge=charge).mol.GetNumHeavyAtoms() == 3


def test_resolver_takes_numpy_atom_lists_and_a_null_charge(tmp_path):
    resolver = InputResolver(render_folder=str(tmp_path))
    fields = {"atoms": np.array(ETHANOL_ATOMS), "coordinates": np.array(ETHANOL_XYZ), "charge": None}
    assert has_molecule(fields)  # was "truth value of an array ... is ambiguous"
    item = resolver.resolve(fields, "np")
    assert item.molecule_fp.shape == (3, 4) and item.image.endswith(".png")


def test_long_numpy_atom_lists_get_distinct_depiction_names(tmp_path):
    # numpy's repr elides arrays over 1000 numbers: two different molecules shared a key
    resolver = InputResolver(render_folder=str(tmp_path))
    a = np.zeros((400, 3))
    b = a.copy()
    b[200, 0] = 1.0
    key_a = resolver.source_key({"atoms": ["C"] * 400, "coordinates": a}, "a")
    key_b = resolver.source_key({"atoms": ["C"] * 400, "coordinates": b}, "b")
    assert key_a != key_b


# --- structure fields ----------------------------------------------------------------------
@pytest.fixture
def two_records(tmp_path, ethanol_block):
    benzene = Chem.MolToMolBlock(molecule_from_smiles("c1ccccc1", "benzene").mol)
    (tmp_path / "two.sdf").write_text(ethanol_block + "$$$$\n" + benzene + "$$$$\n")
    return InputResolver(structure_folder=str(tmp_path), render_folder=str(tmp_path / "r"))


@pytest.mark.parametrize("index", [1.5, True, -1, "x"])
def test_structure_index_must_be_a_record_number(two_records, index):
    # 1.5 and True picked record 1 (benzene) without a word; -1 and 'x' gave islice/int messages
    with pytest.raises(InputError, match=r"structure_index must be an integer >= 0") as info:
        two_records.resolve({"structure": "two.sdf", "structure_index": index}, "q", depiction=False)
    assert info.value.record_id == "q"


def test_structure_index_as_a_number_or_digit_string(two_records):
    for index in (1, "1"):
        item = two_records.resolve({"structure": "two.sdf", "structure_index": index}, f"q{index!r}")
        assert item.molecule.mol.GetNumHeavyAtoms() == 6


@pytest.mark.parametrize("structure, message", [
    (["two.sdf"], "structure must be a file path, got list"),  # was a TypeError
    (5, "structure must be a file path, got int"),
    (".", "is a folder, not a file"),                          # was 'does not exist'
])
def test_structure_field_that_is_not_a_file(two_records, structure, message):
    with pytest.raises(InputError, match=message):
        two_records.resolve({"structure": structure}, "q")


def test_non_string_smiles_is_an_error_when_only_drawing(tmp_path):
    resolver = InputResolver(render_folder=str(tmp_path))
    with pytest.raises(InputError, match="SMILES must be a string"):  # was AttributeError: .encode
        resolver.resolve({"smiles": 123}, "q", fingerprint=False)


# --- command-line tools --------------------------------------------------------------------
def test_fingerprint_tool_fails_a_smiles_with_a_name_and_a_folder_input(tmp_path, capsys):
    out = tmp_path / "fp.jsonl"
    assert fingerprint_main(["--smiles", "CC O", "CCO", "--out", str(out), "--no-progress"]) == 1
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["error"] and "text after a space" in lines[0]["error"] and lines[0]["molecule_fp"] is None
    assert lines[1]["num_atoms"] == 3
    assert fingerprint_main([str(tmp_path), "--out", str(out), "--no-progress"]) == 1
    assert "is a folder" in json.loads(out.read_text())["error"]


def test_render_size_above_the_limit_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        render_main(["--smiles", "CCO", "--out", str(tmp_path / "o"), "--size", "100000"])
    assert info.value.code == 2
    assert "--size must be <= 8192" in capsys.readouterr().err


def test_sdf_data_fields_are_read_without_the_record_separator(tmp_path, ethanol_block):
    # Each value was read as "CCO\n$$$$": a SMILES field then parsed only because RDKit stops
    # at the newline, and the control-character check above rejected it.
    path = tmp_path / "fields.sdf"
    path.write_text(ethanol_block + "> <smiles>\nCCO\n\n> <note>\nx y\n\n$$$$\n"
                    + ethanol_block + "> <smiles>\nCCO\n")  # last record: no blank line, no $$$$
    first, last = _items(path, smiles_field="smiles")
    assert first.mol.GetProp("smiles") == "CCO" and first.mol.GetProp("note") == "x y"
    assert last.mol.GetProp("smiles") == "CCO"
    assert any("verified" in note for note in last.notes)


def test_fingerprint_to_a_pipe_closed_early_stops_with_one_line():
    # `deepmolm-fingerprint ... | head -1` ended in a BrokenPipeError traceback
    import subprocess
    import sys

    command = [sys.executable, "-m", "deepmolm_plugin.molecule.tools", "fingerprint", "--no-progress",
               "--smiles", *(["C"] * 2000)]  # more than run before the reader closes
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert json.loads(proc.stdout.readline())["num_atoms"] == 1
    proc.stdout.close()  # the reader goes away
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert "Traceback" not in err and "stdout was closed by its reader" in err
    # the summary counts what was read, not the input ("fingerprinted 2 of 2 records" for 4 given)
    assert re.search(r"fingerprinted (\d+) of the \1 records read before it stopped; 0 failed", err), err


def test_xyz_frame_with_a_blank_line_says_what_is_wrong(tmp_path):
    body = [f"{e} {x} {y} {z}" for e, (x, y, z) in zip(ETHANOL_ATOMS, ETHANOL_XYZ)]
    path = tmp_path / "gap.xyz"
    path.write_text("9\ncomment\n" + "\n".join(body[:4] + [""] + body[4:]) + "\n")
    (error,) = _items(path)
    # was "count line says 9 atoms, found 9 atom lines"
    assert "hold 8 atom lines, and 1 more atom lines follow" in error.reason
    empty = tmp_path / "empty.xyz"
    empty.write_text("0\nno atoms\n")
    (error,) = _items(empty)
    assert error.reason == "no atoms"  # was "coordinates must be [atoms, 3], got shape (0,)"
    negative = tmp_path / "negative.xyz"
    negative.write_text("-3\ncomment\n" + "\n".join(body) + "\n")
    (error,) = _items(negative)
    assert "line 1: expected an atom count, got '-3'" in error.reason


def test_a_uint64_sidecar_is_refused_not_read_as_padding(tmp_path):
    from deepmolm_plugin.molecule.sidecar import SidecarError, SidecarFiles, reference

    np.save(tmp_path / "fp.npy", np.array([[2**64 - 1, 5, 6, 7]], dtype=np.uint64))  # -1 (PAD) as int64
    with pytest.raises(SidecarError, match="holds uint64"):
        SidecarFiles(str(tmp_path)).rows(reference("fp.npy", 0, 1), 4)
    np.save(tmp_path / "ok.npy", np.array([[4, 5, 6, 7]], dtype=np.uint32))  # fits int64: read as is
    assert SidecarFiles(str(tmp_path)).rows(reference("ok.npy", 0, 1), 4).tolist() == [[4, 5, 6, 7]]


def test_fingerprint_out_on_a_full_disk_stops_with_one_line(capsys):
    assert fingerprint_main(["--smiles", "CCO", "CCN", "--out", "/dev/full", "--no-progress"]) == 1  # Linux's full disk
    err = capsys.readouterr().err
    assert "cannot write --out /dev/full: No space left on device (after 1 records); stopped" in err  # flushed per line
    assert "Traceback" not in err


def test_render_out_on_a_full_disk_stops_with_one_line_and_no_part_file(tmp_path, monkeypatch, capsys):
    import errno

    from PIL import Image

    def full(self, fp, *args, **kwargs):
        open(fp, "wb").close()  # begun, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    assert render_main(["--smiles", "CCO", "--out", str(tmp_path / "png"), "--size", "64", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"cannot write into --out {tmp_path / 'png'}: No space left on device (after 0 records); stopped" in err
    assert "Traceback" not in err and not list((tmp_path / "png").glob(".*.part"))


@pytest.mark.parametrize("edit, message", [
    (lambda pos: pos.__setitem__(2, pos[2] + 9999.0), "bond C2-O3 is 1.73e+04 A long"),  # one atom thrown away
    (lambda pos: pos.__imul__(0.1), "x the sum of their covalent radii: the coordinates do not fit"),  # nanometres
    (lambda pos: pos.__imul__(1.8897), "are the coordinates in angstrom"),             # bohr: all bonds scaled
])
def test_a_3d_file_whose_coordinates_do_not_fit_its_bonds_is_an_error(tmp_path, edit, message):
    from rdkit.Geometry import Point3D

    mol = molecule_from_smiles("CCO", "ethanol").mol
    conf = mol.GetConformer()
    pos = conf.GetPositions()
    edit(pos)
    for i, (x, y, z) in enumerate(pos):
        conf.SetAtomPosition(i, Point3D(x, y, z))
    path = tmp_path / "ethanol.sdf"
    path.write_text(Chem.MolToMolBlock(mol) + "$$$$\n")
    (item,) = list(read_structures(path, policy="from-file"))
    assert isinstance(item, MoleculeError) and message in item.reason, item


def test_a_3d_file_with_real_bond_lengths_passes(tmp_path, ethanol_block):
    path = tmp_path / "ethanol.sdf"
    path.write_text(ethanol_block + "$$$$\n")
    (item,) = list(read_structures(path, policy="from-file"))
    assert not isinstance(item, Exception) and item.mol.GetNumHeavyAtoms() == 3


@pytest.mark.parametrize("smiles, bond", [("[Pt](Cl)(Cl)([NH3])[NH3]", "dative bond N4-Pt1"), ("N->[Pt]", "dative bond N1-Pt2")])
def test_a_dative_bond_is_named_not_e3fps_key_error(smiles, bond):
    from rdkit.Geometry import Point3D

    from deepmolm_plugin.molecule import molecule_fp

    said = (rf"{bond} \(written so, or a bond to a metal that RDKit's sanitising made "
            r"dative\): E3FP encodes single, double, triple and aromatic bonds only")
    # (a later session: refused when read, before any 3D work; was molecule_fp's refusal alone)
    with pytest.raises(MoleculeError, match=said):
        molecule_from_smiles(smiles)
    mol = Chem.MolFromSmiles(smiles)  # a caller's own molecule, never read by us: molecule_fp still names it
    conformer = Chem.Conformer(mol.GetNumAtoms())
    for i in range(mol.GetNumAtoms()):  # any 3D positions 2 A apart: the bond type is refused first
        conformer.SetAtomPosition(i, Point3D(2.0 * i, 1.0 * (i % 2), 0.5 * (i % 3)))
    conformer.Set3D(True)
    mol.AddConformer(conformer)
    with pytest.raises(MoleculeError, match=said):
        molecule_fp(mol, id=smiles)


# --- CXSMILES extensions that change the molecule ---------------------------------------------
def test_cxsmiles_coordinates_are_refused_not_taken_for_a_3d_file(tmp_path):
    """They became the conformer ("conformer": "file", even under from-file, which refuses a
    SMILES) and RDKit set the chiral tags from them: the written @@ was flipped silently."""
    smiles = "C[C@@H](O)F |(0,0,0;1.5,0,0;2.0,1.2,0.5;2.0,-1.0,-0.8)|"
    for policy in ("from-file", "auto"):
        with pytest.raises(MoleculeError, match="carries CXSMILES coordinates"):
            molecule_from_smiles(smiles, "cx", policy=policy)
    with pytest.raises(InputError, match="record 'cx': .*carries CXSMILES coordinates"):
        InputResolver(render_folder=str(tmp_path)).resolve({"smiles": smiles}, "cx")


def test_polymer_repeat_units_are_refused_in_smiles_and_molfiles(tmp_path):
    """`|Sg:n:...|` (and a molfile's SRU group) was fingerprinted and drawn as the bare unit."""
    with pytest.raises(MoleculeError, match=r"polymer substance group \(SRU\)"):
        molecule_from_smiles("CC |Sg:n:0,1::ht|", "poly")
    block = Chem.MolToMolBlock(Chem.MolFromSmiles("CCO |Sg:n:0,1::ht|"))
    assert "SRU" in block
    (tmp_path / "poly.sdf").write_text(block + "$$$$\n")
    [item] = _items(tmp_path / "poly.sdf")
    assert isinstance(item, MoleculeError) and "polymer substance group (SRU)" in item.reason
    molecule_from_smiles("CC(=O)O |SgD:2:note:hello::::|", "data")  # a data group keeps the molecule whole


@pytest.mark.parametrize("smiles", ["C[C@@H](O)F |&1:1|", "C[C@@H](O)F |o1:1|"])
def test_enhanced_stereo_groups_are_noted(smiles):
    """A racemate (&1) was fingerprinted as the written enantiomer without a word."""
    notes = molecule_from_smiles(smiles, "rac").notes
    assert any("enhanced stereo group" in n and "as written" in n for n in notes), notes
    assert not any("enhanced stereo" in n for n in molecule_from_smiles("C[C@@H](O)F", "abs").notes)


def test_lone_hydrogen_error_names_no_option_the_caller_lacks():
    """It told chat and eval users to pass --fragments largest, which only two tools have."""
    from deepmolm_plugin.molecule import fingerprint_record

    with pytest.raises(MoleculeError) as info:
        fingerprint_record(molecule_from_smiles("[Na+].[H-]", "nah"))
    assert "deepmolm-fingerprint and deepmolm-render drop such fragments" in info.value.reason


@pytest.mark.parametrize("name, body", [
    ("latin1.csv", b"name,smiles\nCaf\xe9,CCO\nCaf\xe8,c1ccccc1\nok,CC\n"),
    ("latin1.sdf", None),
])
def test_names_that_are_not_utf8_fail_their_records(tmp_path, ethanol_block, name, body):
    # was: both became "Caf\ufffd" (the file is read with errors="replace"): two records under
    # one id in the fingerprint and render outputs, which joins then attached to the wrong molecule
    if body is None:
        blocks = [ethanol_block.replace("ethanol", title, 1) for title in ("Caf\udce9", "Caf\udce8", "ok")]
        body = "$$$$\n".join(blocks).encode("utf-8", "surrogateescape") + b"$$$$\n"
    (tmp_path / name).write_bytes(body)
    found = list(read_structures(tmp_path / name, policy="keep", names_are_keys=True))
    assert [isinstance(r, MoleculeError) and "not UTF-8" in r.reason for r in found] == [True, True, False]
    # where the name is only shown (a record's structure file, deepmolm-prepare's SDF source), the molecule reads
    assert not any(isinstance(r, MoleculeError) for r in _items(tmp_path / name))


def test_an_inputs_smiles_gives_an_xyz_file_its_bonds_and_charges(tmp_path):
    # the README said so, but the SMILES was not used: acetate's XYZ with its SMILES failed in
    # bond perception ("total charge 0"), as without one
    from rdkit.Chem import AllChem

    acetate = Chem.AddHs(Chem.MolFromSmiles("CC(=O)[O-]"))
    AllChem.EmbedMolecule(acetate, randomSeed=1)
    Chem.MolToXYZFile(acetate, str(tmp_path / "acetate.xyz"))
    resolver = InputResolver(structure_folder=str(tmp_path), render_folder=str(tmp_path / "r"))
    made = resolver.resolve({"smiles": "CC(=O)[O-]", "structure": "acetate.xyz"}, "a")
    assert made.molecule_fp.shape == (4, 4) and "SMILES verified against the coordinates atom by atom" in made.notes
    assert Chem.MolToSmiles(Chem.RemoveHs(made.molecule.mol)) == "CC(=O)[O-]"
    with pytest.raises(InputError, match="record 'b': bond perception with total charge 0 failed"):
        resolver.resolve({"structure": "acetate.xyz"}, "b")  # without it: the comment line's charge=N
    with pytest.raises(InputError, match="record 'c': SMILES has 9 atoms"):
        resolver.resolve({"smiles": "CC(=O)N", "structure": "acetate.xyz"}, "c")  # another molecule


def test_two_copies_of_a_molecule_at_one_place_overlap(tmp_path):
    """was: "atoms C1, C4 are 0 A apart, a bond length, but not bonded" (a PDB of CCO.CCO
    whose two copies got one set of coordinates): the overlap error XYZ gives."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    from deepmolm_plugin.molecule.errors import MoleculeError
    from deepmolm_plugin.molecule.io import read_structures

    one = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    AllChem.EmbedMolecule(one, randomSeed=1)
    (tmp_path / "two.sdf").write_text(Chem.MolToMolBlock(Chem.CombineMols(one, one)) + "$$$$\n")
    (record,) = read_structures(tmp_path / "two.sdf", policy="from-file")
    assert isinstance(record, MoleculeError) and "overlap (distance < " in record.reason, record


@pytest.mark.parametrize("comment", ["Charge: -1", "charge -1 mult 1", "total CHARGE is -1", "totalcharge=-1",
                                     "charge=0 net_charge=-1"])
def test_an_xyz_charge_not_written_as_charge_equals_n_is_named(tmp_path, comment):
    """was: read as charge 0, then RDKit's "Final molecular charge (0) does not match input"."""
    from deepmolm_plugin.molecule.errors import MoleculeError
    from deepmolm_plugin.molecule.io import read_structures

    path = tmp_path / "oh.xyz"
    path.write_text(f"2\n{comment}\nO 0 0 0\nH 0 0 0.97\n")
    (record,) = read_structures(path, policy="from-file")
    assert isinstance(record, MoleculeError) and "only `charge=N`, once, is read" in record.reason, record
    for stated in ("charge=-1", "hydroxide total_charge=-1 Charge=-1",  # was: total_charge read as 0
                   # words that only contain "charge" state none
                   "charge=-1 uncharged? no: Mulliken charges Properties=species:S:1:initial_charges:R:1"):
        path.write_text(f"2\n{stated}\nO 0 0 0\nH 0 0 0.97\n")
        (record,) = read_structures(path, policy="from-file")
        assert not isinstance(record, MoleculeError) and Chem.GetFormalCharge(record.mol) == -1
    # words that only contain "charge" state no total charge: neutral water reads as charge 0
    path.write_text("3\nneutral, uncharged water; Mulliken charges\nO 0 0 0\nH 0 0 0.96\nH 0.93 0 -0.24\n")
    (record,) = read_structures(path, policy="from-file")
    assert not isinstance(record, MoleculeError) and Chem.GetFormalCharge(record.mol) == 0, record


@pytest.mark.parametrize("smiles, atoms", [("C[C@H]=C=[C@H]C", "C2, C4"), ("NC(Br)=[C@@]=C(O)C", "C4")])
def test_written_allene_stereo_that_rdkit_drops_is_a_note(smiles, atoms):
    """was: sanitising cleared the `@` of an allene and nothing said so: both enantiomers got
    the same tokens and picture, with the SMILES kept as written beside them."""
    from deepmolm_plugin.molecule import molecule_from_smiles

    record = molecule_from_smiles(smiles, id="allene")
    assert any(n.startswith(f"axial (allene) stereo written at {atoms} is not kept") for n in record.notes), record.notes
    plain = molecule_from_smiles("C[C@H](F)Cl", id="plain")  # a kept centre: no such note
    assert not any("axial" in n for n in plain.notes)


def test_rdkits_caret_diagram_is_left_out_of_a_one_line_reason():
    """was: `... check for mistakes around position 5:; C1CC(C; ~~~~^; ...` in every error
    line (the GUI's status box showed it)."""
    with pytest.raises(MoleculeError) as info:
        molecule_from_smiles("C1CC(C", "x")
    reason = info.value.reason
    assert "check for mistakes around position 5;" in reason and "~" not in reason and "^;" not in reason
    assert reason.count("C1CC(C") == 4  # ours, RDKit's "while parsing" and its "Failed parsing ... for input"
