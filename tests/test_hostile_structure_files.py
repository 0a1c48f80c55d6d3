"""Hostile structure files, second sweep: each case once gave another molecule, dropped a
record or a bond, or drew the wrong record, without a failure line.

Every case must end in a ``MoleculeError``/``InputError`` naming the record and the
reason (or a failure line from the tools), or in the right molecule.
"""

import json

import pytest
from rdkit import Chem

from deepmolm_plugin.molecule import MoleculeError, molecule_from_smiles, read_structures
from deepmolm_plugin.molecule.inputs import InputResolver
from deepmolm_plugin.molecule.tools import fingerprint_main, render_main
from timing_guard import within_linear_time


def _mol(smiles, name):
    mol = molecule_from_smiles(smiles, name, policy="generate").mol  # seeded: the same every run
    mol.SetProp("_Name", name)
    return mol


@pytest.fixture(scope="module")
def apap():
    return _mol("CC(=O)Nc1ccc(O)cc1", "apap")


@pytest.fixture(scope="module")
def ethanol():
    return _mol("CCO", "ethanol")


def _items(path, policy="from-file", **options):
    return list(read_structures(path, policy=policy, **options))


def _smiles(record):
    return Chem.MolToSmiles(Chem.RemoveHs(record.mol))


def _write(path, text):
    path.write_text(text)
    return path


# --- SDF ----------------------------------------------------------------------------------
def test_sdf_record_without_its_separator_fails_instead_of_swallowing_the_next(tmp_path, ethanol, apap):
    # RDKit read ethanol and dropped benzene as "bad data fields" (a note only)
    benzene = Chem.MolToMolBlock(_mol("c1ccccc1", "benzene"))
    path = _write(tmp_path / "x.sdf", Chem.MolToMolBlock(ethanol) + benzene + "$$$$\n" + Chem.MolToMolBlock(apap))
    merged, second, last = _items(path)  # both molecules of the merged block fail (sixth sweep)
    assert isinstance(merged, MoleculeError) and merged.source == f"{path}#0"
    assert "'$$$$' line between two records is missing" in merged.reason
    assert isinstance(second, MoleculeError) and second.source == f"{path}#1"
    assert last.id == "apap" and last.source == f"{path}#2"  # its number, as the file counts it


# --- MOL2 ---------------------------------------------------------------------------------
def _mol2(mol, name):
    """A Tripos MOL2 record of ``mol`` (types from RDKit's hybridisation; enough for RDKit)."""
    conf = mol.GetConformer()
    lines = ["@<TRIPOS>MOLECULE", name, f" {mol.GetNumAtoms()} {mol.GetNumBonds()} 0 0 0", "SMALL",
             "NO_CHARGES", "", "@<TRIPOS>ATOM"]
    for atom in mol.GetAtoms():
        p, symbol = conf.GetAtomPosition(atom.GetIdx()), atom.GetSymbol()
        kind = {Chem.HybridizationType.SP2: ".2", Chem.HybridizationType.SP3: ".3"}.get(atom.GetHybridization(), "")
        kind = ".ar" if atom.GetIsAromatic() else kind
        if symbol == "H" or (symbol == "N" and kind == ".2"):
            kind = "" if symbol == "H" else ".am"
        lines.append(f"{atom.GetIdx() + 1:7d} {symbol}{atom.GetIdx() + 1:<4d} {p.x:10.4f} {p.y:10.4f} {p.z:10.4f} "
                     f"{symbol + kind:<6s} 1 UNL1 0.0000")
    lines.append("@<TRIPOS>BOND")
    for bond in mol.GetBonds():
        order = {1.0: "1", 2.0: "2", 1.5: "ar"}[bond.GetBondTypeAsDouble()]
        lines.append(f"{bond.GetIdx() + 1:6d} {bond.GetBeginAtomIdx() + 1:5d} {bond.GetEndAtomIdx() + 1:5d} {order}")
    return "\n".join(lines) + "\n"


def test_mol2_counts_must_match_the_atom_and_bond_lines(tmp_path, ethanol):
    text = _mol2(ethanol, "ethanol")
    assert _smiles(_items(_write(tmp_path / "ok.mol2", text))[0]) == "CCO"
    # one atom short: RDKit read 8 of the 9 atoms, and ethanol came out as ethoxide
    (error,) = _items(_write(tmp_path / "a.mol2", text.replace(" 9 8 0 0 0", " 8 8 0 0 0")))
    assert isinstance(error, MoleculeError) and error.id == "ethanol"
    assert "counts line says 8 atoms, the @<TRIPOS>ATOM section holds 9 lines" in error.reason
    (error,) = _items(_write(tmp_path / "b.mol2", text.replace(" 9 8 0 0 0", " 9 7 0 0 0")))
    assert "counts line says 7 bonds" in error.reason


@pytest.mark.parametrize("keep_h", ["none", "polar"])
def test_mol2_without_all_hydrogens_is_an_error_not_radicals(tmp_path, apap, keep_h):
    # RDKit's MOL2 reader adds no hydrogens: ring carbons became radicals ([c]), with no
    # note for polar-H files; a file without H also got guessed charges (ethanol: [C][C][O-])
    drop = [a.GetIdx() for a in apap.GetAtoms()
            if a.GetAtomicNum() == 1 and (keep_h == "none" or a.GetNeighbors()[0].GetAtomicNum() == 6)]
    rw = Chem.RWMol(apap)
    for idx in sorted(drop, reverse=True):
        rw.RemoveAtom(idx)
    (error,) = _items(_write(tmp_path / "x.mol2", _mol2(rw.GetMol(), "apap")))
    assert isinstance(error, MoleculeError) and error.id == "apap"
    assert "lack bonds or hydrogens" in error.reason
    assert _smiles(_items(_write(tmp_path / "full.mol2", _mol2(apap, "apap")))[0]) == "CC(=O)Nc1ccc(O)cc1"


# --- coordinates without hydrogens (XYZ, PDB without CONECT) -------------------------------
@pytest.mark.parametrize("smiles", ["c1ccccc1", "CC", "ClCCl"])
def test_xyz_without_hydrogens_is_an_error_not_another_molecule(tmp_path, smiles):
    # perceived: benzene as c1c#cc#cc#1, ethane as [C][C], CH2Cl2 as a carbene
    heavy = Chem.RemoveHs(_mol(smiles, "m"))
    (error,) = _items(_write(tmp_path / "x.xyz", Chem.MolToXYZBlock(heavy)), policy="keep")
    assert isinstance(error, MoleculeError) and "no hydrogens in the coordinates" in error.reason


def _without_h_on(mol, heavy_atoms):
    """`mol` with one hydrogen removed from each listed heavy atom (an index twice: two)."""
    edit, gone = Chem.RWMol(mol), []
    for i in heavy_atoms:
        gone.append(next(n.GetIdx() for n in mol.GetAtomWithIdx(i).GetNeighbors()
                         if n.GetAtomicNum() == 1 and n.GetIdx() not in gone))
    for h in sorted(gone, reverse=True):
        edit.RemoveAtom(h)
    return edit.GetMol()


@pytest.mark.parametrize("smiles, heavy_atoms, reason", [
    ("C1CCCCC1", [0, 1], "C1 (a double or aromatic bond, neighbours not in one plane"),  # was cyclohexene
    ("CCO", [1, 2], "C2 (a double or aromatic bond"),  # was acetaldehyde
    ("CC", [0, 0, 1, 1], "C1 (triple or cumulated bonds, neighbours at 1"),  # was ethyne
    ("c1ccccc1", [0, 1], "(triple or cumulated bonds"),  # was a cyclic alkyne
    ("CCC", [1, 1], "left unpaired electrons on atoms C2:"),  # was C[C]C: radicals are assigned in sanitising
])
def test_xyz_with_some_hydrogens_missing_is_an_error_not_another_molecule(tmp_path, smiles, heavy_atoms, reason):
    partial = _without_h_on(_mol(smiles, "m"), heavy_atoms)
    (error,) = _items(_write(tmp_path / "x.xyz", Chem.MolToXYZBlock(partial)), policy="keep")
    assert isinstance(error, MoleculeError) and reason in error.reason, error


@pytest.mark.parametrize("smiles", ["N#CCC#C", "C=C=CC(=O)O", "CN=[N+]=[N-]", "O=[N+]([O-])c1ccccc1",
                                    "Cc1cc(=O)n(-c2ccccc2)n1C", "CC(=O)Nc1ccc(O)cc1"])
def test_xyz_with_all_hydrogens_keeps_linear_planar_and_pyramidal_groups(tmp_path, smiles):
    # nitrile, alkyne, allene, azide (linear); nitro, aromatic, amide (planar); the
    # pyrazolone's N, which MMFF leaves pyramidal next to aromatic bonds
    (record,) = _items(_write(tmp_path / "x.xyz", Chem.MolToXYZBlock(_mol(smiles, "m"))), policy="keep")
    assert not isinstance(record, Exception), record
    assert _smiles(record) == Chem.CanonSmiles(smiles)


def test_xyz_atomic_numbers_and_a_non_integer_charge(tmp_path, ethanol):
    lines = Chem.MolToXYZBlock(ethanol).splitlines()
    numbers = [str(Chem.GetPeriodicTable().GetAtomicNumber(l.split()[0])) + l[len(l.split()[0]):] for l in lines[2:]]
    (record,) = _items(_write(tmp_path / "z.xyz", "\n".join(lines[:2] + numbers) + "\n"))
    assert _smiles(record) == "CCO"  # was "unknown element '6'"
    (error,) = _items(_write(tmp_path / "q.xyz", "\n".join([lines[0], "charge=0.5"] + lines[2:]) + "\n"))
    assert isinstance(error, MoleculeError) and "total charge 0.5 in the comment line is not an integer" in error.reason


# --- PDB ----------------------------------------------------------------------------------
def _single_conect(block):
    """Each bond written once (the wwPDB's way): no repeated pair, so no bond orders."""
    out = []
    for line in block.splitlines():
        if line.startswith("CONECT"):
            partners = [line[i:i + 5] for i in range(11, len(line), 5)]
            line = line[:11] + "".join(dict.fromkeys(partners))
        out.append(line)
    return "\n".join(out) + "\n"


def test_pdb_conect_without_bond_orders_is_perceived_not_saturated(tmp_path, apap):
    # RDKit read every bond as single and filled valences: CC(O)NC1CCC(O)CC1
    (record,) = _items(_write(tmp_path / "a.pdb", _single_conect(Chem.MolToPDBBlock(apap))))
    assert _smiles(record) == "CC(=O)Nc1ccc(O)cc1" and record.conformer == "file"
    assert any("CONECT records hold no bond orders" in n for n in record.notes)
    heavy = _single_conect(Chem.MolToPDBBlock(Chem.RemoveHs(apap)))
    (error,) = _items(_write(tmp_path / "b.pdb", heavy))
    assert isinstance(error, MoleculeError) and "no hydrogens" in error.reason


def test_pdb_with_missing_bonds_fails_instead_of_loose_atoms(tmp_path, apap):
    lines = Chem.MolToPDBBlock(apap).splitlines()
    atoms = [l for l in lines if l.startswith("HETATM")]
    conect = [l for l in lines if l.startswith("CONECT")]
    # CONECT records for part of the molecule: 9 fragments were fingerprinted atom by atom
    partial = "\n".join(atoms + [l for l in conect if int(l[6:11]) > 4]) + "\nEND\n"
    for policy in ("from-file", "keep", "generate"):  # the graph is wrong whatever the policy
        (error,) = _items(_write(tmp_path / "partial.pdb", partial), policy=policy)
        assert isinstance(error, MoleculeError), policy
        assert "a bond length, but not bonded" in error.reason
    # two MODELs and CONECT records after them (the wwPDB layout): RDKit kept no bond at all,
    # and the file was refused as one that left out bonds; the first model is read with them
    # now (sixteenth round, tests/test_pdb_mol2_sixteenth.py)
    models = "\n".join(["MODEL        1"] + atoms + ["ENDMDL", "MODEL        2"] + atoms + ["ENDMDL"] + conect)
    (record,) = _items(_write(tmp_path / "models.pdb", models + "\nEND\n"))
    assert _smiles(record) == Chem.MolToSmiles(Chem.RemoveHs(apap))
    assert "file has 2 MODELs: used the first" in record.notes


def test_pdb_models_note_which_one_is_used(tmp_path, ethanol):
    atoms = [l for l in Chem.MolToPDBBlock(ethanol).splitlines() if l.startswith("HETATM")]
    text = "\n".join(["MODEL        1"] + atoms + ["ENDMDL", "MODEL        2"] + atoms + ["ENDMDL", "END"])
    (record,) = _items(_write(tmp_path / "m.pdb", text))
    assert _smiles(record) == "CCO" and "file has 2 MODELs: used the first" in record.notes


def test_pdb_alternate_locations_are_noted_and_an_atom_without_location_a_is_an_error(tmp_path, ethanol):
    """RDKit reads the atom lines whose alternate location is blank or A: the others were left
    out without a note, and an atom with only locations B and C was dropped (ethanol without
    its oxygen)."""
    lines = [l for l in Chem.MolToPDBBlock(ethanol).splitlines() if l.startswith(("HETATM", "CONECT"))]
    oxygen = next(i for i, l in enumerate(lines) if l.startswith("HETATM") and l[76:78].strip() == "O")
    line = lines[oxygen]
    second = line[:6] + "   99" + line[11:16] + "B" + line[17:30] + f"{float(line[30:38]) + 0.2:8.3f}" + line[38:]
    a = lines[:oxygen] + [line[:16] + "A" + line[17:], second] + lines[oxygen + 1:]
    (record,) = _items(_write(tmp_path / "a.pdb", "\n".join(a) + "\nEND\n"))
    assert _smiles(record) == "CCO" and "alternate locations B: used location A (1 atom lines left out)" in record.notes
    c = lines[:oxygen] + [line[:16] + "C" + line[17:], second] + lines[oxygen + 1:]
    (error,) = _items(_write(tmp_path / "c.pdb", "\n".join(c) + "\nEND\n"))
    assert isinstance(error, MoleculeError) and "none marked A" in error.reason and "locations C, B" in error.reason


def test_an_ion_pair_with_a_metal_at_contact_distance_is_not_a_missing_bond(tmp_path):
    mol = Chem.MolFromMolBlock(Chem.MolToMolBlock(_mol("CC(=O)[O-].[Na+]", "salt")), removeHs=False)
    conf = mol.GetConformer()
    na = next(a.GetIdx() for a in mol.GetAtoms() if a.GetSymbol() == "Na")
    o = next(a.GetIdx() for a in mol.GetAtoms() if a.GetFormalCharge() == -1)
    p = conf.GetAtomPosition(o)
    conf.SetAtomPosition(na, (p.x + 2.3, p.y, p.z))  # a crystal's Na...O contact
    (record,) = _items(_write(tmp_path / "salt.sdf", Chem.MolToMolBlock(mol)))
    assert record.conformer == "file" and "2 fragments, all kept" in record.notes
    # the same geometry as an atom list or an XYZ file with the salt's SMILES: the contact was
    # perceived as a bond, and the bond count refused it ("SMILES has 6 bonds ..., the coordinates imply 7")
    elements = [a.GetSymbol() for a in mol.GetAtoms()]
    coords = mol.GetConformer().GetPositions().tolist()
    resolver = InputResolver(structure_folder=str(tmp_path))
    for heavy in (False, True):
        keep = [i for i, e in enumerate(elements) if not heavy or e != "H"]
        got = resolver.molecule({"atoms": [elements[i] for i in keep], "coordinates": [coords[i] for i in keep],
                                 "smiles": "CC(=O)[O-].[Na+]"}, f"salt{heavy}")
        assert Chem.MolToSmiles(Chem.RemoveHs(got.mol)) == "CC(=O)[O-].[Na+]"
    xyz = "\n".join([str(len(elements)), "salt"] + [f"{e} {x:.4f} {y:.4f} {z:.4f}" for e, (x, y, z) in zip(elements, coords)])
    _write(tmp_path / "salt.xyz", xyz + "\n")
    got = resolver.molecule({"structure": "salt.xyz", "smiles": "CC(=O)[O-].[Na+]"}, "xyz")
    assert Chem.MolToSmiles(Chem.RemoveHs(got.mol)) == "CC(=O)[O-].[Na+]"


# --- SMILES lists and CSV -------------------------------------------------------------------
def test_smi_header_after_comments_and_cxsmiles_extension(tmp_path):
    path = _write(tmp_path / "a.smi", "# made by hand\nSMILES\tName\r\nC[C@H](O)CC |&1:1| rac-butanol\nCCO\tethanol\n")
    first, second = _items(path, policy="keep")  # the header was a failed record
    assert first.id == "rac-butanol" and second.id == "ethanol"
    assert len(first.mol.GetStereoGroups()) == 1  # the extension was taken for the id, stereo lost


def test_csv_column_named_twice_or_rows_of_another_width_fail(tmp_path):
    (error,) = _items(_write(tmp_path / "a.csv", "SMILES,id,smiles\nCCO,1,CCN\n"), policy="keep")
    assert isinstance(error, MoleculeError) and "column 'smiles' appears 2 times" in error.reason  # gave CCN
    items = _items(_write(tmp_path / "b.csv", "smiles,id\nCCO,ethanol,95%\n\nCCN,2\n"), policy="keep")
    assert isinstance(items[0], MoleculeError) and "row 0 (line 2) has 3 fields, the header 2" in items[0].reason
    assert items[1].id == "2" and _smiles(items[1]) == "CCN"


def test_csv_rows_the_csv_module_cannot_parse_fail_alone_and_blank_lines_lead_nowhere(tmp_path):
    # was: a csv.Error traceback (deepmolm-fingerprint, deepmolm-render) and every later row lost;
    # a blank line before the header made it an empty row ("no 'smiles' column (columns: [])")
    big = "C" * 140_000
    items = _items(_write(tmp_path / "a.csv", f"\n\nid,smiles\na,CCO\nb,{big}\nc,CCN\n"), policy="keep")
    assert [_smiles(items[0]), _smiles(items[2])] == ["CCO", "CCN"]
    assert isinstance(items[1], MoleculeError) and items[1].id == "a.csv#1"
    assert "row 1 (line 5) cannot be parsed as CSV: field larger than field limit" in items[1].reason
    # a quote never closed joins the later lines into one field: a failure that says so
    items = _items(_write(tmp_path / "b.csv", 'id,smiles\na,CCO\nb,"CC\nc,CCN\n'), policy="keep")
    assert _smiles(items[0]) == "CCO" and len(items) == 2
    assert "row 1 (lines 3-4 joined by quotes" in items[1].reason and "line break" in items[1].reason
    (header,) = _items(_write(tmp_path / "c.csv", f"id,{big}\nCCO\n"), policy="keep")
    assert "cannot read the header (line 1): field larger than field limit" in header.reason


# --- compressed files ---------------------------------------------------------------------
def test_compressed_files_say_so(tmp_path, ethanol, capsys):
    import gzip

    data = gzip.compress(Chem.MolToMolBlock(ethanol).encode())
    (tmp_path / "a.sdf.gz").write_bytes(data)
    (tmp_path / "b.sdf").write_bytes(data)
    with pytest.raises(ValueError, match=r"compressed file \(\.gz\): decompress it first"):
        _items(tmp_path / "a.sdf.gz")
    (error,) = _items(tmp_path / "b.sdf")
    assert "compressed (gzip, zip, bzip2, xz or zstd)" in error.reason
    assert fingerprint_main([str(tmp_path / "a.sdf.gz"), "--no-progress"]) == 1
    assert "compressed file (.gz): decompress it first" in capsys.readouterr().err


# --- depictions of one record of a multi-record file ----------------------------------------
def test_each_record_of_a_file_gets_its_own_depiction(tmp_path, ethanol, apap):
    path = _write(tmp_path / "two.sdf", Chem.MolToMolBlock(ethanol) + "$$$$\n" + Chem.MolToMolBlock(apap) + "$$$$\n")
    resolver = InputResolver(render_folder=str(tmp_path / "renders"))
    first = resolver.resolve({"structure": str(path), "structure_index": 0}, "r0")
    second = resolver.resolve({"structure": str(path), "structure_index": 1}, "r1")
    assert first.image != second.image  # record 1 was given record 0's drawing


# --- the tools ------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["auto", "from-file"])
def test_fingerprint_tool_reports_the_merged_record_and_goes_on(tmp_path, ethanol, apap, capsys, policy):
    text = Chem.MolToMolBlock(ethanol) + Chem.MolToMolBlock(apap) + "$$$$\n" + Chem.MolToMolBlock(apap)
    path = _write(tmp_path / "x.SDF", text)  # suffixes in any case
    out, failures = tmp_path / "fp.jsonl", tmp_path / "failed.jsonl"
    code = fingerprint_main([str(path), "--policy", policy, "--out", str(out), "--failures", str(failures),
                             "--no-progress"])
    lines = [json.loads(l) for l in out.read_text().splitlines()]
    # each molecule of the merged block fails, so the last record keeps its number 2 (sixth sweep)
    assert code == 1 and [l["error"] is None for l in lines] == [False, False, True]
    failed = [json.loads(l) for l in failures.read_text().splitlines()]
    assert [f["source"] for f in failed] == [f"{path}#0", f"{path}#1"] and all("'$$$$'" in f["error"] for f in failed)
    assert "FAILED ethanol" in capsys.readouterr().err


def test_render_tool_fails_a_mol2_without_hydrogens(tmp_path, ethanol, capsys):
    heavy = _mol2(Chem.RemoveHs(ethanol), "ethanol")
    path = _write(tmp_path / "x.mol2", heavy + _mol2(ethanol, "ethanol-h"))
    assert render_main([str(path), "--out", str(tmp_path / "png"), "--size", "64", "--no-progress"]) == 1
    index = [json.loads(l) for l in (tmp_path / "png" / "index.jsonl").read_text().splitlines()]
    assert [(l["id"], l["image"] is None) for l in index] == [("ethanol", True), ("ethanol-h", False)]
    assert "lack bonds or hydrogens" in index[0]["error"]


def _methanes(path, count, spacing=4.0):
    """An XYZ file of `count` methane molecules on a grid, `spacing` angstrom apart."""
    import itertools

    side = int(round(count ** (1 / 3))) + 1
    lines = []
    for i, j, k in itertools.islice(itertools.product(range(side), repeat=3), count):
        x, y, z = spacing * i, spacing * j, spacing * k
        lines += [f"C {x} {y} {z}"] + [f"H {x + a} {y + b} {z + c}" for a, b, c in
                                       ((0.63, 0.63, 0.63), (-0.63, -0.63, 0.63), (-0.63, 0.63, -0.63), (0.63, -0.63, -0.63))]
    path.write_text(f"{len(lines)}\n\n" + "\n".join(lines) + "\n")
    return path


def test_a_file_of_many_atoms_is_refused_or_read_in_near_linear_time(tmp_path):
    # was: every atom compared with every other before the heavy-atom cap refused the file
    # (20,000 atoms: a minute), and fragments='largest' built each of 4,000 fragments as a
    # molecule (29 s) and named every one in the note
    import numpy as np

    from deepmolm_plugin.molecule.checks import check_coordinates

    big = _methanes(tmp_path / "many.xyz", 4000)
    # linear references: the file's text split into words; the coordinates [20000, 3] sorted by axis
    [refused] = within_linear_time(lambda: list(read_structures(big, policy="from-file")),
                                   lambda: big.read_text().split(), "an XYZ file of 20,000 atoms")
    assert "too large: 4000 heavy atoms > max_atoms=256" in str(refused)
    positions = np.random.default_rng(0).uniform(0, 200, size=(20_000, 3))  # [20000, 3]
    positions[17_000] = positions[9_000] + 0.001

    def overlap():
        with pytest.raises(MoleculeError, match=r"atoms .*9001.*17001.* overlap"):
            check_coordinates(positions, "x")

    within_linear_time(overlap, lambda: np.sort(positions, axis=0), "20,000 coordinates")
    [kept] = read_structures(_methanes(tmp_path / "some.xyz", 30), policy="from-file", fragments="largest")
    assert kept.mol.GetNumAtoms() == 5
    # twelfth round: copies are told apart by shape, then position, never by file order; named without H
    assert kept.notes[-1] == ("kept the largest of 30 fragments (1 heavy atoms; 30 copies of one molecule in one "
                              "shape: kept the one whose centre is first by x, y, z, not by file order); dropped C "
                              "(x10) and 19 more fragments")


@pytest.mark.parametrize("counts", ["M  V30 COUNTS 100000000 100000000 0 0 0", None])
def test_counts_beyond_the_connection_table_are_refused_before_rdkit_allocates(tmp_path, counts):
    # was: a 200-byte V3000 record declaring 10^8 atoms made RDKit allocate 3.2 GB first
    if counts:
        body = ("\n  RDKit          3D\n\n  0  0  0  0  0  0  0  0  0  0999 V3000\nM  V30 BEGIN CTAB\n"
                f"{counts}\nM  V30 BEGIN ATOM\nM  V30 END ATOM\nM  V30 END CTAB\nM  END\n$$$$\n")
    else:  # V2000: 999 atoms and 999 bonds declared, one atom line
        body = ("\n  RDKit          3D\n\n999999  0  0  0  0  0999 V2000\n"
                "    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\nM  END\n$$$$\n")
    (tmp_path / "big.sdf").write_text(body)
    [refused] = read_structures(tmp_path / "big.sdf", policy="from-file")
    assert "the counts line declares " in str(refused) and "but the connection table has" in str(refused)


def test_a_pipe_given_as_a_structure_file_is_named_not_waited_on(tmp_path):
    # was: read_structures blocked forever opening a FIFO; the resolver called it "does not exist"
    import os

    fifo = tmp_path / "f.sdf"
    os.mkfifo(fifo)
    [refused] = read_structures(fifo)
    assert "is not a regular file (a pipe or a device)" in str(refused)
    with pytest.raises(Exception, match=r"structure file .*f.sdf is not a regular file \(a pipe or a device\)"):
        InputResolver().resolve({"structure": str(fifo)}, "r")


@pytest.mark.parametrize("order", [5, 6, 7, 8])
def test_a_molfile_query_bond_is_refused_by_render_and_fingerprint(tmp_path, order):
    """was: deepmolm-render drew `C(single or double)C-O` as ethanol, byte for byte, with no
    note, while deepmolm-fingerprint refused the same file."""
    atoms = "".join(f"{x:10.4f}{y:10.4f}    0.0000 {e}   0  0  0  0  0  0  0  0  0  0  0  0\n"
                    for x, y, e in ((0, 0, "C"), (1.299, 0.75, "C"), (2.598, 0, "O")))
    path = _write(tmp_path / "q.mol", f"q\n     RDKit          2D\n\n  3  2  0  0  0  0  0  0  0  0999 V2000\n{atoms}"
                                      f"  1  2  {order}  0\n  2  3  1  0\nM  END\n")
    assert render_main([str(path), "--out", str(tmp_path / "png"), "--size", "64", "--no-progress"]) == 1
    (line,) = [json.loads(l) for l in (tmp_path / "png" / "index.jsonl").read_text().splitlines()]
    assert line["image"] is None and "bond(s) of no one order (C1-C2; molfile query bond types 5-8" in line["error"]
    out = tmp_path / "fp.jsonl"
    assert fingerprint_main([str(path), "--out", str(out), "--no-progress"]) == 1
    assert "bond(s) of no one order (C1-C2;" in json.loads(out.read_text())["error"]


def test_an_r_group_atom_is_named_apart_from_its_number():
    """was: R-group R1 at atom 2 was named `R12`."""
    from deepmolm_plugin.molecule.errors import atom_names

    mol = Chem.MolFromMolBlock("r\n     RDKit          2D\n\n  2  1  0  0  0  0  0  0  0  0999 V2000\n"
                               "    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
                               "    1.2990    0.7500    0.0000 R#  0  0  0  0  0  0  0  0  0  0  0  0\n"
                               "  1  2  1  0\nM  RGP  1   2   1\nM  END\n")
    assert atom_names([0, 1], mol) == "C1, R1 (atom 2)"
