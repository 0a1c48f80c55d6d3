"""Twelfth round: a stray control character (a NUL) in a structure file fails the record it is
in, wherever it is, for every format and for deepmolm-prepare's sdf and csv readers; only a
file with NULs throughout (UTF-16 without a byte-order mark, a binary file) is refused whole.

Was: one NUL in the first 64 KiB refused the whole file ("file holds NUL bytes: a binary
file, not a text structure file"), one after it failed its record or passed silently (an SDF
title 'm\\x001990' became the record's id)."""

import pytest
from rdkit import Chem

from deepmolm_plugin.data.sources.base import SourceError
from deepmolm_plugin.data.sources.csv_source import read_csv as prepare_csv
from deepmolm_plugin.data.sources.sdf_source import read_sdf as prepare_sdf
from deepmolm_plugin.molecule import MoleculeError, read_structures
from test_molecule_io import _embedded, _mol2, _pdb, _xyz

PAST_64_KIB = 70_000  # characters of padding that put a record past `not_text`'s first 64 KiB
BINARY = "not text, a binary file's bytes?"


def _read(path, **options):
    """(ids of the records read, {source: reason} of the failures)."""
    got = list(read_structures(path, policy="keep", embed_timeout=None, **options))
    ok = [r.id for r in got if not isinstance(r, MoleculeError)]
    return ok, {e.source: e.reason for e in got if isinstance(e, MoleculeError)}


def _sdf_record(name: str, padding: int = 0, title: str | None = None) -> str:
    mol = _embedded("CCO", name)
    mol.SetProp("Y", "1")
    if padding:
        mol.SetProp("NOTE", "x" * padding)  # one long data line: the next records lie past 64 KiB
    block = Chem.MolToMolBlock(mol) if title is None else Chem.MolToMolBlock(mol).replace(name, title, 1)
    fields = "".join(f"> <{k}>\n{mol.GetProp(k)}\n\n" for k in ("Y", "NOTE") if mol.HasProp(k))
    return block + fields + "$$$$\n"


@pytest.mark.parametrize("padding", [0, PAST_64_KIB], ids=["early", "late"])
@pytest.mark.parametrize("damage, line, part", [("title", 1, "the title line"), ("header", 2, "the header"),
                                                ("table", 5, "the connection table")])
def test_sdf_nul_fails_its_record_wherever_it_is(tmp_path, padding, damage, line, part):
    record = _sdf_record("m1")
    lines = record.split("\n")
    lines[line - 1] = lines[line - 1][:2] + "\x00" + lines[line - 1][2:]
    path = tmp_path / "lib.sdf"
    path.write_text(_sdf_record("m0", padding) + "\n".join(lines) + _sdf_record("m2"))
    ok, failed = _read(path)
    assert ok == ["m0", "m2"]  # was: the whole file refused (early), or m1 read with 'm\x001' as its id (late)
    assert failed == {f"{path}#1": f"line {line} of the record: {part} holds the control character '\\x00' "
                                   f"(character 3): {BINARY}"}


def test_sdf_nul_in_an_unread_data_field_keeps_the_record_and_a_smiles_field_names_itself(tmp_path):
    path = tmp_path / "lib.sdf"
    path.write_text(_sdf_record("m0").replace("> <Y>\n1\n", "> <Y>\n1\x00\n") + _sdf_record("m1"))
    assert _read(path) == (["m0", "m1"], {})  # the molecule reads no data field but `smiles_field`
    good, damaged = (Chem.MolToMolBlock(_embedded("CCO", name)) + f"> <SMILES>\n{smiles}\n\n$$$$\n"
                     for name, smiles in (("m2", "CCO"), ("m3", "CC\x00O")))
    path.write_text(damaged + good)
    ok, failed = _read(path, smiles_field="SMILES")
    assert ok == ["m2"]  # was: "SMILES 'CC\x00O' has a control character", which named no field
    assert failed == {f"{path}#0": f"SDF field 'SMILES' holds the control character '\\x00' (character 3): {BINARY}"}


@pytest.mark.parametrize("padding", [0, PAST_64_KIB], ids=["early", "late"])
def test_smiles_list_nul_in_an_id_fails_that_line_only(tmp_path, padding):
    path = tmp_path / "list.smi"
    path.write_text("#" + "x" * padding + "\nCCO a\nCCN b\x00c\nCCC d\n")
    ok, failed = _read(path)
    assert ok == ["a", "d"]  # was: refused whole (early), 'b\x00c' as an id (late)
    assert failed == {f"{path}#2": f"its name 'b\\x00c' holds the control character '\\x00' (character 2): {BINARY}"}


def test_csv_nul_fails_its_row_with_its_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("smiles,id,y\nCO,a,1\nCC\x00O,b,2\nCCO,c\x00,3\nCCN,d,4\x00\n")
    ok, failed = _read(path)
    assert ok == ["a", "d"]  # an unread column's NUL is no failure; was: the whole file refused
    assert set(failed) == {f"{path}#1, line 3", f"{path}#2, line 4"}
    assert "control character '\\x00'" in failed[f"{path}#1, line 3"]
    assert failed[f"{path}#2, line 4"] == f"its name 'c\\x00' holds the control character '\\x00' (character 2): {BINARY}"


def test_mol2_nul_in_a_name_fails_that_record_named_by_its_index(tmp_path):
    path = tmp_path / "two.mol2"
    path.write_text(_mol2().replace("ethanol", "eth\x00anol") + _mol2())
    ok, failed = _read(path)
    assert ok == ["ethanol"]
    assert failed == {f"{path}#0": f"line 2: the molecule name holds the control character '\\x00' (character 4): "
                                   f"{BINARY}"}


def test_pdb_nul_names_its_record_type(tmp_path):
    path = tmp_path / "one.pdb"
    text = _pdb(conect=True)
    at = text.index("HETATM")
    path.write_text(text[:at] + "HETATM" + "\x00" + text[at + 7:])
    ok, failed = _read(path)
    line = text[:at].count("\n") + 1
    assert ok == [] and failed == {f"{path}#0": f"line {line}: the HETATM record holds the control character "
                                                f"'\\x00' (character 7): {BINARY}"}


@pytest.mark.parametrize("char", ["\x00", "\x0c"])
def test_xyz_control_character_fails_its_frame_and_later_frames_are_read(tmp_path, char):
    path = tmp_path / "frames.xyz"
    damaged = _xyz().replace("C -0.93", f"C -0.93{char}", 1)  # an atom line of frame 0
    path.write_text(damaged + _xyz())
    ok, failed = _read(path)
    # was: a NUL refused the file; a form feed split the line (str.splitlines), "count line says
    # 9 atoms ... reading stopped", frame 1 lost
    assert ok == ["frames.xyz#1"]
    assert failed == {f"{path}#0": f"line 3: an atom line holds the control character {char!r} (character 8): "
                                   f"{BINARY}"}


def test_dense_nuls_still_refuse_the_file_whole(tmp_path):
    text = "smiles,y\n" + "CCO,1\n" * 200
    path = tmp_path / "utf16.csv"
    path.write_bytes(text.encode("utf-16-le"))  # no byte-order mark
    reason = "file holds NUL bytes throughout: UTF-16 text without a byte-order mark, or a binary file"
    assert _read(path) == ([], {str(path): reason})
    with pytest.raises(ValueError, match=f"csv: {path}: {reason}"):
        list(prepare_csv(str(path), {"label_columns": "y"}))
    sdf = tmp_path / "utf16.sdf"
    sdf.write_bytes(_sdf_record("m0").encode("utf-16-le"))
    with pytest.raises(ValueError, match=f"sdf: {sdf}: {reason}"):
        list(prepare_sdf(str(sdf), {"label_columns": "Y"}))


def test_control_bytes_throughout_refuse_the_file_whole(tmp_path):
    # a JPEG holds few NULs but many other control bytes: was one failure (or a record named
    # 'x\x01') per line once the NUL rule was the only file-level verdict
    path = tmp_path / "photo.smi"
    path.write_bytes(b"CCO x\x01\x02\x1b\n" * 100)
    assert _read(path) == ([], {str(path): "file holds control bytes throughout: a binary file, not text"})


def _items(reader, path, options):
    got = list(reader(str(path), options))
    return ([i.id for i in got if not isinstance(i, SourceError)],
            {e.id: (e.stage, e.reason) for e in got if isinstance(e, SourceError)})


def test_prepare_csv_nul_in_a_used_cell_fails_its_row_named_with_its_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("smiles,y,unused\nCO,1,x\nCCO,2\x00,x\nCCN,3,x\x00\n")
    ok, failed = _items(prepare_csv, path, {"label_columns": "y"})
    assert ok == ["t#0:property:y", "t#2:property:y"]  # was: ValueError, the whole file refused
    assert failed == {"t#1": ("read", f"row 1 (line 3): column 'y' holds the control character '\\x00' "
                                      f"(character 2): {BINARY}")}


def test_prepare_sdf_nul_in_a_used_field_fails_its_record_named_with_its_line(tmp_path):
    path = tmp_path / "lib.sdf"
    first = _sdf_record("m0").replace("> <Y>\n1\n", "> <Y>\n1\x00\n")
    path.write_text(first + _sdf_record("m1", title="m\x001") + _sdf_record("m2"))
    ok, failed = _items(prepare_sdf, path, {"label_columns": "Y", "id_field": "_Name"})
    assert ok == ["m2:property:Y"]  # was: ValueError, the whole file refused
    start = first.count("\n") + 1
    assert failed == {
        "lib.sdf#0": ("read", f"the record at line 1: field 'Y' holds the control character '\\x00' (character 2): "
                              f"{BINARY}"),
        "lib.sdf#1": ("read", f"the record at line {start}: the title line holds the control character '\\x00' "
                              f"(character 2): {BINARY}")}


def test_one_control_rule_below_the_data_package():
    from deepmolm_plugin.data.sources import base as sources_base
    from deepmolm_plugin.molecule.io import base as io_base  # molecule never imports data

    assert sources_base.control_problem is io_base.control_problem
