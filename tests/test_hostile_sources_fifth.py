"""Hostile inputs for the csv and sdf readers of deepmolm-prepare, fifth sweep.

Each case silently gave something else before: a cut description and a lost label, a
file counted as input and never read, a column that could not be named, ids trimmed or
holding invisible characters.
"""

import gzip

import pytest

from deepmolm_plugin.data.sources import csv_source, sdf_source  # noqa: F401  (registered)
from deepmolm_plugin.data.sources.base import SourceError, SourceItem, id_problem
from deepmolm_plugin.molecule.io.read import not_text

from test_hostile_prepare_third import MOLBLOCK
from test_sources import errors, items, read

# One SDF record (ethanol's heavy atoms) whose data items follow M  END: {data}
RECORD = MOLBLOCK.replace("> <Y>\n{value}\n\n", "{data}\n")


def sdf(path, *datas):
    path.write_text("".join(RECORD.format(title=f"m{i}", data=d) for i, d in enumerate(datas)))
    return path


def test_sdf_value_cut_by_a_blank_line_or_running_into_the_next_header_fails_its_read(tmp_path):
    # was: the description was only "First paragraph.", Y (its value after a blank line)
    # had neither an item nor a failure; and with no blank line between two items, Y's
    # header became part of A's value and Y was lost, all without a word.
    path = sdf(tmp_path / "t.sdf",
               "> <ID>\np\n\n> <DESC>\nFirst paragraph.\n\nSecond paragraph.\n\n> <Y>\n\n2.5\n",
               "> <ID>\nq\n\n> <A>\n1\n> <Y>\n2\n",
               "> <ID>\nr\n\n> <DESC>\nline one\nline two\n\n\n> <Y>\n3\n")  # valid: two lines, two blank lines
    out = read("sdf", path, label_columns="Y", text_columns="DESC=description", id_field="ID")
    bad, got = errors(out), items(out)
    assert bad["t.sdf#0"].stage == "read" and "'DESC'" in bad["t.sdf#0"].reason
    assert "'Second paragraph.'" in bad["t.sdf#0"].reason
    assert bad["t.sdf#1"].stage == "read" and "'A'" in bad["t.sdf#1"].reason and "'> <Y>'" in bad["t.sdf#1"].reason
    assert got["r:description"].answer == "line one\nline two" and got["r:property:Y"].properties == {"Y": 3.0}
    assert len(out) == 4


def test_sdf_layouts_rdkit_reads_are_not_refused(tmp_path):
    # the check above must not refuse what the format and RDKit allow: a line of spaces
    # inside a value, a header with a field number instead of a <NAME>, a line of spaces
    # before the next header, and a broken field no option reads
    path = sdf(tmp_path / "ok.sdf",
               "> <ID>\np\n\n> <DESC>\npara one\n \npara two\n\n> <Y>\n1.5\n",
               "> <ID>\nq\n\n> 25 DT13\nx\n\n> <DESC>\nd\n  \n> <Y>\n2\n",
               "> <ID>\nr\n\n> <NOTES>\na\n\nb\n\n> <DESC>\ne\n\n> <Y>\n3\n")
    out = read("sdf", path, label_columns="Y", text_columns="DESC=description", id_field="ID")
    assert not errors(out)
    got = items(out)
    assert got["p:description"].answer == "para one\n \npara two" and got["q:description"].answer == "d"
    assert got["r:property:Y"].properties == {"Y": 3.0}


def test_compressed_or_utf16_files_are_named_failures_not_skipped_inputs(tmp_path):
    # was: b.sdf.gz was skipped (yet listed with its checksum among the run's inputs), the
    # UTF-16 c.sdf failed as "CTAB version string invalid", a .sdf.gz or .csv.gz given
    # directly as "non-ASCII text" or "the header is not UTF-8 text: [garbage]".
    folder = tmp_path / "in"
    folder.mkdir()
    sdf(folder / "a.sdf", "> <Y>\n1\n")
    (folder / "b.sdf.gz").write_bytes(gzip.compress(sdf(tmp_path / "b.sdf", "> <Y>\n2\n").read_bytes()))
    (folder / "c.sdf").write_bytes(sdf(tmp_path / "c.sdf", "> <Y>\n3\n").read_text().encode("utf-16"))
    out = read("sdf", folder, label_columns="Y")
    assert list(items(out)) == ["a.sdf#0:property:Y"]
    bad = errors(out)
    assert (bad["b.sdf.gz"].stage, bad["b.sdf.gz"].reason) == (
        "read", "b.sdf.gz: file is compressed (gzip, zip, bzip2, xz or zstd): decompress it first")
    assert (bad["c.sdf"].stage, bad["c.sdf"].reason) == ("read", "c.sdf: file is UTF-16 text; save it as UTF-8")
    with pytest.raises(ValueError, match=r"b\.sdf\.gz: file is compressed \(gzip, zip, bzip2, xz or zstd\)"):
        read("sdf", folder / "b.sdf.gz", label_columns="Y")
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(b"smiles,y\nCCO,1\n"))
    (tmp_path / "u.csv").write_bytes("smiles,y\nCCO,1\n".encode("utf-16"))
    with pytest.raises(ValueError, match=r"t\.csv\.gz: file is compressed \(gzip, zip, bzip2, xz or zstd\)"):
        read("csv", tmp_path / "t.csv.gz", label_columns="y")
    with pytest.raises(ValueError, match=r"u\.csv: file is UTF-16 text; save it as UTF-8"):
        read("csv", tmp_path / "u.csv", label_columns="y")
    # review: small bzip2 / xz files hold no NUL byte early and were read as text
    import bz2
    import lzma

    text = b"smiles,y\nCCO,1\n"
    for name, packed in (("s.csv.bz2", bz2.compress(text)), ("s.csv.xz", lzma.compress(text))):
        (tmp_path / name).write_bytes(packed)
        with pytest.raises(ValueError, match=rf"{name}: file is compressed \(gzip, zip, bzip2, xz or zstd\)"):
            read("csv", tmp_path / name, label_columns="y")
    (tmp_path / "title.csv").write_text("BZh title,y\nCCO,1\n")  # text that starts like bzip2 but is none
    assert not not_text(tmp_path / "title.csv")


def test_csv_columns_are_named_with_spaces_around_header_cells_aside(tmp_path):
    # was: "label column 'y' is not in the header ['smiles', ' y ', 'id ']", in any spelling,
    # while the SMILES column was found with the spaces folded
    (tmp_path / "t.csv").write_text("smiles, y , desc ,id \nCCO,1,An alcohol.,a\n")
    out = read("csv", tmp_path / "t.csv", label_columns="y", text_columns="desc=description", id_column="id")
    assert sorted(items(out)) == ["a:description", "a:property:y"]
    assert items(out)["a:property:y"].properties == {"y": 1.0}
    (tmp_path / "two.csv").write_text("smiles,y, y \nCCO,1,2\n")  # which one? refused, not guessed
    with pytest.raises(ValueError, match=r"label column 'y' appears 2 times in the header \(columns \[1, 2\]"):
        read("csv", tmp_path / "two.csv", label_columns="y")


def test_ids_are_trimmed_as_every_cell_and_trimmed_twins_are_one_id_twice(tmp_path):
    # Excel and hand-written files pad cells: " r1" is r1 (refusing it failed whole files);
    # "r1 " after it is the same id again, and a tab inside an id is refused
    (tmp_path / "t.csv").write_text('id,smiles,y\n r1,CCO,1\nr1 ,CCN,2\nR1,CCC,3\n"r\t2",CCCC,4\n')
    out = read("csv", tmp_path / "t.csv", label_columns="y", id_column="id")
    assert list(items(out)) == ["r1:property:y", "R1:property:y"]
    bad = [b for b in out if isinstance(b, SourceError)]
    assert [b.stage for b in bad] == ["id", "id"]
    assert "row 1" in bad[0].reason and "r1" in bad[0].reason and "'r\\t2'" in bad[1].reason
    path = sdf(tmp_path / "t.sdf", "> <ID>\n r1\n\n> <Y>\n1\n", "> <ID>\nr1 \n\n> <Y>\n2\n")
    out = read("sdf", path, label_columns="Y", id_field="ID")
    assert list(items(out)) == ["r1:property:Y"] and errors(out)["r1"].stage == "id"


@pytest.mark.parametrize("char", ["\ufeff", "\u200b", "\u202e"])
def test_ids_holding_an_invisible_format_character_are_refused(tmp_path, char):
    # was: "\ufeffx" (two Excel exports concatenated), "x\u200b" and "x" were three records
    # that look like one id
    assert id_problem(f"x{char}y") == f"id {f'x{char}y'!r} holds an invisible format character (U+{ord(char):04X})"
    (tmp_path / "t.csv").write_text(f"id,smiles,y\nx,CCO,1\n{char}x,CCN,2\n", encoding="utf-8")
    out = read("csv", tmp_path / "t.csv", label_columns="y", id_column="id")
    assert isinstance(out[0], SourceItem) and isinstance(out[1], SourceError) and out[1].stage == "id"
    assert f"U+{ord(char):04X}" in out[1].reason
