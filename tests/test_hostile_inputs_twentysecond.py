"""Hostile inputs of the twenty-second round, the last sweep's minor items: ids that
deepmolm-prepare refuses were written and drawn by deepmolm-fingerprint / deepmolm-render,
ids one only as Unicode NFC text were drawn apart though the note promised __2, a file
zero-filled after its last write by a crash was refused whole, a SMILES or CSV file named
.sdf failed with RDKit's words about a '$$$$' line it lacks, a garbage SMILES line was shown
whole, and an unknown ChEBI-20 split name was reported as a missing file. Found while trying
them: a structure file of another format under a reader's suffix failed in that reader's
words (every reader but .smi's; deepmolm-prepare's csv and sdf too), and an empty .csv or
.pdb blamed a missing column or atoms."""

from __future__ import annotations

import json
import unicodedata

import pytest
from rdkit import Chem

from deepmolm_plugin.data.sources.chebi20 import FILES, choose_splits
from deepmolm_plugin.molecule import MoleculeError, molecule_from_smiles
from deepmolm_plugin.molecule.io import read_structures
from deepmolm_plugin.molecule.io.read import not_text
from deepmolm_plugin.molecule.tools import fingerprint_main, render_main


def _sdf(path, titles, smiles="CCO"):
    writer = Chem.SDWriter(str(path))
    for title in titles:
        mol = Chem.MolFromSmiles(smiles)
        mol.SetProp("_Name", title)
        writer.write(mol)
    writer.close()
    return path


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


TITLES = ["a\tb", "\u200b", "x\u200by", "ok"]


def test_fingerprint_fails_records_whose_title_prepare_refuses_as_an_id(tmp_path, capsys):
    out = tmp_path / "fp.jsonl"
    failures = tmp_path / "failed.jsonl"
    assert fingerprint_main([str(_sdf(tmp_path / "t.sdf", TITLES)), "--out", str(out), "--failures", str(failures),
                             "--no-progress"]) == 1  # some records failed
    lines = _lines(out)
    assert [line["id"] for line in lines] == TITLES
    assert [line["error"] is None for line in lines] == [False, False, False, True]  # were all written
    assert "holds a control character ('\\t'" in lines[0]["error"]
    assert "holds an invisible format character (U+200B)" in lines[1]["error"]
    assert [f["id"] for f in _lines(failures)] == TITLES[:3]
    said = capsys.readouterr().err
    assert "FAILED \\u200b (" in said and "FAILED x\\u200by (" in said  # shown, not invisible


def test_render_fails_them_too_and_draws_no_picture(tmp_path):
    out = tmp_path / "pics"
    assert render_main([str(_sdf(tmp_path / "t.sdf", TITLES)), "--out", str(out), "--size", "128",
                        "--no-progress"]) == 1
    index = _lines(out / "index.jsonl")
    assert [line["image"] for line in index] == [None, None, None, "ok.png"]  # was a_b.png, molecule.png, x_y.png
    assert sorted(p.name for p in out.glob("*.png")) == ["ok.png"]


def test_a_smiles_file_name_column_is_checked_as_well(tmp_path):
    smi = tmp_path / "names.smi"
    smi.write_text("CCO x\u200by\nCCN fine\n")
    out = tmp_path / "fp.jsonl"
    assert fingerprint_main([str(smi), "--out", str(out), "--no-progress"]) == 1
    assert [line["error"] is None for line in _lines(out)] == [False, True]


def test_ids_as_smiles_are_not_checked_as_names(tmp_path):
    out = tmp_path / "fp.jsonl"
    assert fingerprint_main(["--smiles", "CCO", "--out", str(out), "--no-progress"]) == 0
    assert _lines(out)[0]["error"] is None


def test_ids_one_only_as_nfc_text_are_numbered_as_the_note_says(tmp_path, capsys):
    composed, decomposed = "caf\u00e9", unicodedata.normalize("NFD", "caf\u00e9")
    out = tmp_path / "pics"
    assert render_main([str(_sdf(tmp_path / "t.sdf", [composed, decomposed])), "--out", str(out), "--size", "128",
                        "--no-progress"]) == 0
    assert [line["image"] for line in _lines(out / "index.jsonl")] == ["caf.png", "caf__2.png"]  # was cafe.png
    assert "numbered __2" in capsys.readouterr().err


def test_a_file_zero_filled_after_its_last_write_keeps_its_records(tmp_path):
    whole = _sdf(tmp_path / "whole.sdf", ["m0", "m1", "m2"]).read_bytes()
    tail = tmp_path / "tail.sdf"
    tail.write_bytes(whole + b"\0" * 4096)  # a crash extended the file with zeros
    assert not_text(tail) is None  # was "file holds NUL bytes throughout"
    records = list(read_structures(tail, names_are_keys=True))
    assert [r.id for r in records[:3]] == ["m0", "m1", "m2"] and not any(isinstance(r, MoleculeError)
                                                                      for r in records[:3])
    assert len(records) == 4 and isinstance(records[3], MoleculeError) and "'\\x00'" in records[3].reason
    cut = tmp_path / "cut.sdf"
    cut.write_bytes(whole[:-60] + b"\0" * 4096)  # zeros from inside the last record on
    records = list(read_structures(cut, names_are_keys=True))
    assert [isinstance(r, MoleculeError) for r in records] == [False, False, True]
    zeros = tmp_path / "zeros.sdf"
    zeros.write_bytes(b"\0" * 4096)
    assert not_text(zeros) == "file holds nothing but NUL bytes (zero-filled by a crash?)"
    utf16 = tmp_path / "u16.smi"
    utf16.write_bytes("CCO a\nCCN b\n".encode("utf-16-le") + b"\0" * 100)  # NULs throughout, not only at the end
    assert "NUL bytes throughout" in not_text(utf16)


def test_a_garbage_smiles_line_is_shown_short(tmp_path):
    smi = tmp_path / "z.smi"
    smi.write_bytes(b"CCO a\n" + b"\0" * 2000)
    failed = list(read_structures(smi, names_are_keys=True))[1]
    assert isinstance(failed, MoleculeError) and "... (2000 characters)" in failed.reason
    assert len(failed.reason) < 250  # was 8,000 characters of '\x00'
    with pytest.raises(MoleculeError, match=r"unparseable SMILES 'C+'\.\.\. \(601 characters\)") as raised:
        molecule_from_smiles("C" * 600 + "(", "long")
    assert len(raised.value.reason) < 800  # RDKit's three echoes of it cut too (was 2,000 characters)


@pytest.mark.parametrize("text, said", [("CCO ethanol\nCCN amine\n", "unparseable MOL/SDF record: no counts line"),
                                        ("smiles,name\nCCO,a\n", "looks like a CSV (header 'smiles,name')")])
def test_a_smiles_or_csv_file_named_sdf_says_so(tmp_path, text, said):
    path = tmp_path / "mislabelled.sdf"
    path.write_text(text)
    failed = list(read_structures(path, names_are_keys=True))
    assert len(failed) == 1 and isinstance(failed[0], MoleculeError)
    assert failed[0].reason.startswith(said)  # was RDKit's "Counts line too short: '$$$$' on line4"
    assert "line4" not in failed[0].reason


def test_an_unknown_chebi20_split_is_named_with_the_splits_there_are(tmp_path):
    for name in FILES.values():
        (tmp_path / name).write_text("CID\tSMILES\tdescription\n")
    with pytest.raises(ValueError, match=r"no split 'validation'; chebi20's splits are train \(train\.txt\), "
                                         r"valid \(validation\.txt\), test \(test\.txt\)"):
        choose_splits("chebi20", tmp_path, FILES, "validation")  # was "no ['validation'] in DIR"
    assert choose_splits("chebi20", tmp_path, FILES, "valid") == ["valid"]


# --- a structure file of another format under a reader's suffix ----------------------------------
MARKED = {".sdf": "an MDL molfile", ".mol2": "a Tripos MOL2 file", ".xyz": "an XYZ file", ".pdb": "a PDB file",
          ".csv": "a CSV (header 'Name,SMILES')"}
FAMILY = {".sdf": ".sdf", ".mol2": ".mol2", ".xyz": ".xyz", ".pdb": ".pdb", ".csv": ".csv", ".smi": ".smi"}


@pytest.mark.parametrize("content", sorted(MARKED))
@pytest.mark.parametrize("named", sorted(FAMILY))
def test_a_structure_file_of_another_format_is_one_error_naming_both(tmp_path, content, named):
    """An SDF saved as .csv said "CSV has no 'smiles' column (columns: ['     RDKit   2D'])",
    as .mol2 "text before the first @<TRIPOS>MOLECULE", as .pdb "no atoms read from PDB";
    a MOL2 as .sdf failed in RDKit's words; only .smi and .txt said what the file was."""
    from test_molecule_io import FILES

    path = tmp_path / f"ethanol{named}"
    path.write_text(FILES[content][0]())
    items = list(read_structures(path, policy="keep"))
    if content == named:  # its own format reads
        assert not any(isinstance(item, MoleculeError) for item in items), items
        return
    (error,) = items
    assert isinstance(error, MoleculeError) and error.source == str(path)
    assert error.reason.startswith(f"looks like {MARKED[content]}"), error.reason
    assert named in error.reason.split("; ", 1)[1]  # what this suffix's files are


def test_an_sdf_titled_with_a_number_is_no_xyz_file(tmp_path):
    """An XYZ file's mark is a first line that is a count; a molfile titled '2244' (a PubChem
    CID) has one too, but no atom line after it, and its counts line says what it is."""
    from test_molecule_io import FILES

    text = FILES[".sdf"][0]().split("\n", 1)[1]
    path = tmp_path / "cid.sdf"
    path.write_text("2244\n" + text)
    (record,) = read_structures(path, policy="keep")
    assert record.id == "2244"
    xyz = tmp_path / "titled.xyz"
    xyz.write_text("3\n\nO 0 0 0\nH 0.96 0 0\nH -0.24 0.93 0\n")
    (record,) = read_structures(xyz, policy="keep")
    assert not isinstance(record, MoleculeError), record


def test_a_csv_holding_molfiles_in_a_column_is_still_a_csv(tmp_path):
    """The table's header is its mark, checked first: the molfile lines of a quoted column end
    in V2000 among the file's first lines too."""
    block = Chem.MolToMolBlock(Chem.MolFromSmiles("CCO"))
    path = tmp_path / "with_blocks.csv"
    path.write_text('smiles,molblock\nCCO,"' + block + '"\n')
    (record,) = read_structures(path, policy="generate")
    assert not isinstance(record, MoleculeError), record


@pytest.mark.parametrize("suffix", [".sdf", ".smi", ".csv", ".mol2", ".xyz", ".pdb"])
@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_an_empty_or_blank_file_says_so_whatever_its_format(tmp_path, suffix, text):
    """An empty .csv said "CSV has no 'smiles' column (columns: [])", an empty .pdb "no atoms
    read from PDB" under the id 'empty.pdb#0'; the other readers "file contains no molecules"."""
    path = tmp_path / f"empty{suffix}"
    path.write_text(text)
    (error,) = read_structures(path)
    assert isinstance(error, MoleculeError) and error.reason == "file contains no molecules"
    assert error.id == path.name and error.source == str(path)


def test_deepmolm_prepare_names_a_file_of_the_other_format(tmp_path):
    """--format csv given an SDF said "no 'smiles' column in the header ['     RDKit   2D']";
    --format sdf given a CSV failed every record as unparseable. In a folder of SDF files, one
    that is a CSV is that file's read failure; the others are read."""
    from deepmolm_plugin.data.sources.csv_source import read_csv
    from deepmolm_plugin.data.sources.sdf_source import read_sdf
    from deepmolm_plugin.data.sources.base import SourceError

    sdf_text = _sdf(tmp_path / "real.sdf", ["m0"]).read_text()
    as_csv = tmp_path / "export.csv"
    as_csv.write_text(sdf_text)
    with pytest.raises(ValueError, match=r"looks like an MDL molfile \(a V2000/V3000 count line\), not a CSV table; "
                                         r"give it with --format sdf"):
        list(read_csv(str(as_csv), {"label_columns": ["y"]}))
    as_sdf = tmp_path / "table.sdf"
    as_sdf.write_text("smiles,y\nCCO,1\n")
    with pytest.raises(ValueError, match=r"looks like a CSV \(header 'smiles,y'\), not an SDF; "
                                         r"give it with --format csv"):
        list(read_sdf(str(as_sdf), {"label_columns": ["y"]}))
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.sdf").write_text(sdf_text)
    (folder / "b.sdf").write_text("smiles,y\nCCO,1\n")
    items = list(read_sdf(str(folder), {"label_columns": ["y"]}))
    failed = [item for item in items if isinstance(item, SourceError)]
    assert [(f.stage, f.reason) for f in failed if f.stage == "read"] == [
        ("read", "b.sdf: looks like a CSV (header 'smiles,y'), not an SDF; give it with --format csv")]
    assert any(item.id.startswith("a.sdf#") for item in items)  # a.sdf's record is read (here: no label y)


@pytest.mark.parametrize("header", ["HEADER,structure,y", "REMARK;structure;y"])
def test_a_table_whose_first_column_is_named_like_a_pdb_record_is_no_pdb_file(header):
    from deepmolm_plugin.molecule.io.sniff import looks_like

    assert looks_like([header + "\n", "a,CCO,1\n"]) is None
    assert looks_like(["HEADER    TRANSFERASE  01-JAN-00\n", "ATOM      1  C   MOL A   1\n"])[0] == ".pdb"


def test_the_format_check_reads_a_bounded_head(tmp_path):
    from deepmolm_plugin.molecule.io.sniff import head_of, is_blank

    path = tmp_path / "one_line.smi"
    path.write_text("C" * 1_000_000)  # one line, no line break: not read whole for the check
    assert [len(line) for line in head_of(path)] == [65536]
    assert not is_blank(path)
    blank = tmp_path / "blank.smi"
    blank.write_text(" \n" * 100_000 + "\t")
    assert is_blank(blank)
