"""Hostile inputs for the chebi20, chebi20-mm, vis-chebi20 and 3d-moit readers.

Each case crashed (a traceback or a SIGBUS), ended the whole read over one bad record, or
silently gave something else (a truncated caption, another molecule's picture) before.
"""

import csv
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from deepmolm_plugin.data.sources import READERS, SourceError, chebi20_mm, csv_source  # noqa: F401  (registered)

from test_sources import embedded, errors, items, read, vis_record, write_json, write_lmdb

HEADER_TSV = b"CID\tSMILES\tdescription\n"


# ---------------------------------------------------------------------------------------
# chebi20


def test_chebi20_lone_cr_bom_and_non_utf8(tmp_path):
    body = (b"9\tCCO\tEthanol.\rA solvent.\r\n"      # a lone CR inside the description
            b"10\tC\tM\xe9thane (latin-1).\n"        # not UTF-8: that line only
            b"11\tCC\tEthane.\n")
    (tmp_path / "train.txt").write_bytes(b"\xef\xbb\xbf" + HEADER_TSV + body)  # a BOM
    out = read("chebi20", tmp_path)
    got, bad = items(out), errors(out)
    assert got["chebi20-train-9"].answer == "Ethanol.\rA solvent."  # not cut at the CR
    assert got["chebi20-train-11"].answer == "Ethane."
    assert bad["chebi20-train-line3"].stage == "read" and "not UTF-8" in bad["chebi20-train-line3"].reason
    assert len(out) == 3


def test_chebi20_unicode_digit_cid_is_not_a_cid(tmp_path):
    (tmp_path / "train.txt").write_bytes(HEADER_TSV + "\u0663\tCCO\tEthanol.\n".encode())
    [error] = read("chebi20", tmp_path)
    assert isinstance(error, SourceError) and error.id == "chebi20-train-line2"


# ---------------------------------------------------------------------------------------
# chebi20-mm


def write_mm(root, rows, raw_tail=b""):
    with open(root / "train.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(chebi20_mm.HEADER)
        writer.writerows(rows)
    if raw_tail:
        with open(root / "train.csv", "ab") as handle:
            handle.write(raw_tail)


def row(cid, smiles="CCO", text="Ethanol."):
    return [cid, smiles, text, "20.2", "", "", "", ""]


def test_chebi20_mm_bom_and_non_utf8_row(tmp_path):
    write_mm(tmp_path, [row("9")], raw_tail=b"10,C,M\xe9thane.,0,,,,\n11,CC,Ethane.,0,,,,\n")
    data = (tmp_path / "train.csv").read_bytes()
    (tmp_path / "train.csv").write_bytes(b"\xef\xbb\xbf" + data)
    out = read("chebi20-mm", tmp_path, tasks="description")
    got, bad = items(out), errors(out)
    assert set(got) == {"chebi20-mm-train-9-description", "chebi20-mm-train-11-description"}
    assert bad["chebi20-mm-train-line3"].stage == "read" and "not UTF-8" in bad["chebi20-mm-train-line3"].reason


def set_encrypted(path, name):
    """Set the 'encrypted' flag of member `name` (zipfile cannot write encrypted zips)."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        while at >= 0:
            header = data.find(name.encode(), at)
            if header >= 0 and data.find(signature, at + 4, header) < 0:
                data[at + offset] |= 1
                break
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))


def test_chebi20_mm_encrypted_and_oversized_members(tmp_path, monkeypatch):
    write_mm(tmp_path, [row("9"), row("10"), row("11")])
    with zipfile.ZipFile(tmp_path / "image.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("img/CID_9.png", b"\x89PNG nine")
        archive.writestr("img/CID_10.png", b"\x89PNG ten")
        archive.writestr("img/CID_11.png", b"\0" * 5000)  # "a bomb": over the (lowered) cap
    set_encrypted(tmp_path / "image.zip", "img/CID_10.png")
    monkeypatch.setattr(chebi20_mm, "MAX_IMAGE_BYTES", 1000)
    cache = tmp_path / ".cache"  # hidden: not an input file
    out = read("chebi20-mm", tmp_path, tasks="description", image_dir=str(cache))
    got, bad = items(out), errors(out)
    assert got["chebi20-mm-train-9-description"].image == str(cache / "CID_9.png")
    assert bad["chebi20-mm-train-10"].stage == "image" and "encrypted" in bad["chebi20-mm-train-10"].reason
    assert bad["chebi20-mm-train-11"].stage == "image" and "over 1000" in bad["chebi20-mm-train-11"].reason
    assert sorted(p.name for p in cache.iterdir()) == ["CID_9.png"]  # nothing of the bomb written


def test_chebi20_mm_cache_of_another_zip_is_not_reused(tmp_path):
    write_mm(tmp_path, [row("9")])
    cache = tmp_path / ".cache"  # hidden: not an input file
    for picture in (b"\x89PNG old!", b"\x89PNG new!"):  # same size, other content
        with zipfile.ZipFile(tmp_path / "image.zip", "w") as archive:
            archive.writestr("CID_9.png", picture)
        [item] = read("chebi20-mm", tmp_path, tasks="description", image_dir=str(cache))
        assert open(item.image, "rb").read() == picture


def test_chebi20_mm_windows_member_names(tmp_path):
    write_mm(tmp_path, [row("9")])
    with zipfile.ZipFile(tmp_path / "image.zip", "w") as archive:
        archive.writestr("image\\CID_9.png", b"\x89PNG nine")
    [item] = read("chebi20-mm", tmp_path, tasks="description", image_dir=str(tmp_path / ".cache"))
    assert item.image == str(tmp_path / ".cache" / "CID_9.png")


def test_chebi20_mm_image_dir_without_zip_or_not_a_path(tmp_path):
    write_mm(tmp_path, [row("9")])
    with pytest.raises(FileNotFoundError, match="image.zip"):
        read("chebi20-mm", tmp_path, image_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="image_dir"):
        read("chebi20-mm", tmp_path, image_dir=5)


# ---------------------------------------------------------------------------------------
# options of the wrong type (what --option KEY=VALUE gives after json.loads)


@pytest.mark.parametrize("fmt,options", [
    ("chebi20", {"splits": 1}), ("chebi20-mm", {"tasks": 1}), ("chebi20-mm", {"splits": {"train": 1}}),
    ("vis-chebi20", {"tasks": 1}), ("vis-chebi20", {"source_instructions": "maybe"}),
    ("3d-moit", {"include": 1}), ("3d-moit", {"splits": True}),
])
def test_options_of_the_wrong_type_are_config_errors(tmp_path, fmt, options):
    (tmp_path / "train.txt").write_bytes(HEADER_TSV)  # an input each reader accepts
    write_mm(tmp_path, [])
    write_json(tmp_path / "train.json", [])
    (tmp_path / "pubchem" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match="option|must be"):
        list(READERS[fmt](str(tmp_path), options))


def test_a_split_named_twice_is_read_once(tmp_path):
    (tmp_path / "train.txt").write_bytes(HEADER_TSV + b"9\tCCO\tEthanol.\n")
    assert [o.id for o in read("chebi20", tmp_path, splits=["train", "train"])] == ["chebi20-train-9"]


def test_names_separated_by_commas_are_a_list(tmp_path):
    # was: `--option splits=train,test` looked for one split named "train,test"
    (tmp_path / "train.txt").write_bytes(HEADER_TSV + b"9\tCCO\tEthanol.\n")
    (tmp_path / "test.txt").write_bytes(HEADER_TSV + b"8\tCCN\tEthylamine.\n")
    assert [o.id for o in read("chebi20", tmp_path, splits="test, train")] == ["chebi20-test-8", "chebi20-train-9"]
    with pytest.raises(ValueError, match="chebi20: option splits holds a blank name: 'train,'"):
        read("chebi20", tmp_path, splits="train,")


# ---------------------------------------------------------------------------------------
# vis-chebi20


@pytest.fixture
def vis_root(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "1.png").write_bytes(b"\x89PNG fake")
    return tmp_path


def test_vis_unhashable_task_name_and_reversed_turns(vis_root):
    reversed_turns = vis_record("trans_iupac", "imgs/1.png", "IUPAC name?", "ethanol")
    reversed_turns["messages"].reverse()
    write_json(vis_root / "train.json", [
        vis_record("trans_smiles", "imgs/1.png", "SMILES?", "The SMILES is CCO."),
        dict(vis_record("general_desp", "imgs/1.png", "Describe.", "Ethanol."), task_name=["general_desp"]),
        reversed_turns,
    ])
    out = read("vis-chebi20", vis_root)
    got, bad = items(out), errors(out)
    assert list(got) == ["vis-chebi20-train-1-smiles"]
    assert bad["vis-chebi20-train-1-unknown"].stage == "schema"  # the list task_name
    assert "where 'assistant' was expected" in bad["vis-chebi20-train-1-iupac_naming"].reason
    # ShareGPT turns in the right order are fine
    sharegpt = {"messages": [{"from": "human", "value": "<image>Name?"}, {"from": "gpt", "value": "ethanol"}],
                "images": ["imgs/1.png"], "task_name": "trans_iupac"}
    write_json(vis_root / "train.json", [vis_record("trans_smiles", "imgs/1.png", "S?", "CCO"), sharegpt])
    assert items(read("vis-chebi20", vis_root))["vis-chebi20-train-1-iupac_naming"].answer == "ethanol"


def test_vis_bom_deep_json_and_bool_words(vis_root):
    records = [vis_record("trans_smiles", "imgs/1.png", "SMILES?", "The SMILES is CCO.")]
    (vis_root / "train.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(records).encode())
    [item] = read("vis-chebi20", vis_root, source_instructions="False")
    assert item.instruction is None  # bool("False") was True
    assert read("vis-chebi20", vis_root, source_instructions="true")[0].instruction == "SMILES?"
    (vis_root / "train.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(ValueError, match="train.json"):
        read("vis-chebi20", vis_root)


def test_vis_one_picture_is_one_molecule(vis_root):
    """Spellings compared as molecules, paths as the file they name; a picture whose
    trans_smiles answers name two molecules has no trustworthy record at all."""
    (vis_root / "imgs" / "2.png").write_bytes(b"\x89PNG fake 2")
    write_json(vis_root / "train.json", [
        vis_record("trans_smiles", "imgs/1.png", "S?", "The SMILES is CCO."),
        vis_record("trans_smiles", "imgs/1.png", "S?", "The SMILES is OCC."),  # same molecule
        vis_record("trans_iupac", "other/1.png", "Name?", "ethanol"),  # retried as imgs/1.png
        vis_record("trans_smiles", "imgs/2.png", "S?", "The SMILES is CCO."),
        vis_record("trans_smiles", "imgs/2.png", "S?", "The SMILES is CCN."),  # a different one
        vis_record("general_desp", "imgs/2.png", "Describe.", "Ethanol or ethylamine."),
    ])
    out = read("vis-chebi20", vis_root)
    got, bad = items(out), errors(out)
    assert got["vis-chebi20-train-1-smiles"].molecule.smiles == "CCO"
    assert got["vis-chebi20-train-1-smiles-2"].molecule.smiles == "OCC"
    assert got["vis-chebi20-train-1-iupac_naming"].molecule.smiles == "CCO"
    assert set(bad) == {"vis-chebi20-train-2-smiles", "vis-chebi20-train-2-smiles-2", "vis-chebi20-train-2-description"}
    for error in bad.values():
        assert error.stage == "molecule" and "name 2 different molecules (CCO, CCN)" in error.reason


def test_vis_image_link_out_of_the_folder_is_named(vis_root, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere") / "5.png"
    outside.write_bytes(b"\x89PNG elsewhere")
    (vis_root / "imgs" / "5.png").symlink_to(outside)
    write_json(vis_root / "train.json", [vis_record("trans_smiles", "imgs/5.png", "S?", "The SMILES is C.")])
    [error] = read("vis-chebi20", vis_root)
    assert error.stage == "image" and f"is {outside}, outside the dataset folder" in error.reason


def test_vis_copies_of_one_picture_are_one_picture_and_unreadable_answers_are_named(vis_root):
    # was: imgs/7.png, a copy of imgs/1.png, labelled CCCCO while 1.png was CCO: records of
    # one image file with both labels; and a caption whose picture's trans_smiles answer
    # holds no SMILES was "no trans_smiles record for image", which existed
    (vis_root / "imgs" / "7.png").write_bytes((vis_root / "imgs" / "1.png").read_bytes())
    (vis_root / "imgs" / "8.png").write_bytes(b"\x89PNG another picture")
    write_json(vis_root / "train.json", [
        vis_record("trans_smiles", "imgs/1.png", "SMILES?", "The SMILES is CCO."),
        vis_record("trans_smiles", "imgs/7.png", "SMILES?", "The SMILES is CCCCO."),
        vis_record("struct_cap", "imgs/7.png", "Caption it.", "An alcohol."),
        vis_record("trans_smiles", "imgs/8.png", "SMILES?", "The SMILES is CCO. It is ethanol."),
        vis_record("struct_cap", "imgs/8.png", "Caption it.", "Ethanol."),
    ])
    bad = errors(read("vis-chebi20", vis_root, splits="train"))
    for id in ("vis-chebi20-train-1-smiles", "vis-chebi20-train-7-smiles", "vis-chebi20-train-7-caption"):
        assert bad[id].stage == "molecule" and "(or a file of the same bytes) name 2 different molecules" in bad[id].reason
    assert ("the trans_smiles answer for image 'imgs/8.png' names no SMILES ('The SMILES is CCO. It is ethanol.')"
            in bad["vis-chebi20-train-8-caption"].reason)


# ---------------------------------------------------------------------------------------
# 3d-moit


def moit_record(cid):
    _, atoms, coords = embedded("CCO")
    return {"cid": cid, "smiles": "CCO", "atoms": atoms, "coordinates": [coords], "description": "Ethanol " * 300}


def test_moit_coordinates_as_one_conformer_of_rows(tmp_path):
    """`coordinates` as the (atoms, 3) rows of one conformer, not a list of conformers: its
    first row was taken for the molecule and refused as "shape (3,)"."""
    _, atoms, coords = embedded("CCO")
    records = {"1": moit_record("1"), "2": dict(moit_record("2"), coordinates=coords.tolist()),
               "3": dict(moit_record("3"), coordinates=coords), "4": dict(moit_record("4"), coordinates=[coords.tolist()]),
               "5": dict(moit_record("5"), coordinates=[[[0.0, 0.0], [1.0]]])}
    write_lmdb(tmp_path / "pubchem/train/3d-pubchem.lmdb", records, protocol=4)
    out = read("3d-moit", tmp_path, tasks="Caption")
    got, bad = items(out), errors(out)
    for cid in "1234":
        assert np.allclose(got[f"pubchem-train-{cid}-caption"].molecule.coordinates, coords)
    assert bad["pubchem-train-5-caption"].stage == "atoms" and "not numeric" in bad["pubchem-train-5-caption"].reason


def test_moit_values_that_are_no_text_or_no_numbers_are_failures(tmp_path):
    # was: a NaN description became the caption "nan", True atoms hydrogens, complex
    # coordinates lost their imaginary part, answers "nan" / "1e999 g/mol" were kept to learn,
    # and an input that is a lone surrogate ended the whole read, naming no record
    _, atoms, coords = embedded("CCO")
    folder = tmp_path / "pubchem/train"
    write_lmdb(folder / "3d-pubchem.lmdb", {
        "702": moit_record("702"), "1": dict(moit_record("1"), description=float("nan")),
        "2": dict(moit_record("2"), atoms=[True] * len(atoms)),
        "3": dict(moit_record("3"), coordinates=[coords.astype(complex)]),
        "4": dict(moit_record("4"), coordinates=[coords.astype(str).tolist()])}, protocol=4)
    entries = [{"instruction": "MW?", "input": "702", "output": output, "task": "Molecular Weight"}
               for output in ("nan", "-inf g/mol", "1e999 g/mol", "46.0-46.1 g/mol", "46.07 g/mol", 10 ** 20)]
    text = json.dumps(entries + [dict(entries[-1], input="\ud800")]).replace("\\\\ud800", "\\ud800")
    (folder / "2d_computed_properties.json").write_text(text)
    out = read("3d-moit", tmp_path)
    got, bad = items(out), errors(out)
    assert bad["pubchem-train-1-caption"].stage == "answer" and "description is the number nan, not text" in \
        bad["pubchem-train-1-caption"].reason
    assert "atoms holds True/False" in bad["pubchem-train-2-caption"].reason
    for cid, dtype in (("3", "complex128"), ("4", "<U")):
        assert f"coordinates are not real numbers (dtype {dtype}" in bad[f"pubchem-train-{cid}-caption"].reason
    mw = "pubchem-train-702-molecular-weight"
    assert "states a non-finite value: 'nan'" in bad[mw].reason
    assert "states a non-finite value" in bad[f"{mw}-2"].reason
    assert "states a number beyond the range of a 64-bit float" in bad[f"{mw}-3"].reason
    assert got[f"{mw}-4"].properties == {} and got[f"{mw}-5"].properties == {"Molecular Weight": 46.07}  # a range
    assert got[f"{mw}-6"].answer == str(10 ** 20)  # an int beyond int64 was a TypeError that ended the read
    [surrogate] = [e for id, e in bad.items() if id.startswith("pubchem-train-\ud800")]
    assert surrogate.stage == "lookup" and "is not valid text" in surrogate.reason
    assert "pubchem-train-702-caption" in got


def test_moit_truncated_lmdb_is_refused_not_sigbus(tmp_path):
    db = tmp_path / "pubchem/train/3d-pubchem.lmdb"
    write_lmdb(db, {str(i): moit_record(str(i)) for i in range(1, 300)}, protocol=4)
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    code = ("import sys; sys.path.insert(0, 'tests'); from test_sources import read\n"
            f"try:\n    read('3d-moit', {str(tmp_path)!r}, tasks='Caption')\n"
            "except ValueError as e:\n    print('REFUSED', e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])  # -7 was SIGBUS
    assert "REFUSED" in done.stdout and "truncated LMDB" in done.stdout


def test_moit_json_bom_bad_lines_and_caption_cid(tmp_path):
    folder = tmp_path / "pubchem/train"
    write_lmdb(folder / "3d-pubchem.lmdb", {"702": moit_record("702"), "703": moit_record("180")}, protocol=4)
    entry = {"instruction": "MW?", "input": "702", "output": "46.07", "task": "Molecular Weight"}
    (folder / "2d_computed_properties.json").write_bytes(b"\xef\xbb\xbf" + json.dumps([entry]).encode())
    lines = [json.dumps(dict(entry, task="Description", output="An alcohol.")).encode(),
             b'{"instruction": "\xff", "input": "702", "output": "x", "task": "Description"}',
             b"[" * 50000 + b"]" * 50000]
    (folder / "2d_descriptive_properties.json").write_bytes(b"\n".join(lines) + b"\n")
    out = read("3d-moit", tmp_path)
    got, bad = items(out), errors(out)
    assert got["pubchem-train-702-molecular-weight"].properties == {"Molecular Weight": 46.07}
    assert got["pubchem-train-702-description"].answer == "An alcohol."
    assert "not UTF-8" in bad["pubchem-train-2d_descriptive_properties#1"].reason
    assert bad["pubchem-train-2d_descriptive_properties#2"].stage == "read"
    assert bad["pubchem-train-703-caption"].stage == "lookup"  # key 703 holds CID 180
    assert "pubchem-train-702-caption" in got
    assert len(out) == 6
    (folder / "2d_computed_properties.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(ValueError, match="not valid UTF-8 JSON"):
        read("3d-moit", tmp_path)


def test_moit_task_asked_for_that_no_split_gives_is_a_failure_line(tmp_path):
    folder = tmp_path / "pubchem/train"  # a split with its LMDB but no instruction JSON
    write_lmdb(folder / "3d-pubchem.lmdb", {"702": moit_record("702")}, protocol=4)
    out = read("3d-moit", tmp_path, tasks=["Caption", "LogP", "Description"])
    got, bad = items(out), errors(out)
    assert list(got) == ["pubchem-train-702-caption"]
    assert set(bad) == {"3d-moit-logp", "3d-moit-description"}
    assert "task 'LogP' was asked for" in bad["3d-moit-logp"].reason and "instruction JSON" in bad["3d-moit-logp"].reason
    assert errors(read("3d-moit", tmp_path)) == {}  # all tasks by default: captions only, as pretrain is


def test_a_csv_with_two_smiles_columns_needs_smiles_column(tmp_path):
    # was: the first (`SMILES`) was read, while deepmolm-kflm2 read `smiles`: one label, two molecules
    path = tmp_path / "two.csv"
    path.write_text("SMILES,smiles,y\nCCO,c1ccccc1,1.5\n")
    with pytest.raises(ValueError, match=r"several SMILES columns \['SMILES', 'smiles'\]: name the one"):
        read("csv", path, label_columns="y")
    [item] = read("csv", path, label_columns="y", smiles_column="smiles")
    assert item.molecule.smiles == "c1ccccc1"


def test_a_column_whose_name_holds_an_equals_sign_can_be_named(tmp_path):
    # was: split at the first '=' ("logD (pH" / "7.4)=logD"), and the error advised the very
    # COLUMN=NAME form that had been given
    path = tmp_path / "logd.csv"
    path.write_text('smiles,logD (pH=7.4)\nCCO,-0.3\n')
    [renamed] = read("csv", path, label_columns=["logD (pH=7.4)=logD"])
    assert renamed.properties == {"logD": -0.3}


def test_label_names_are_checked_as_the_header_reads_them(tmp_path):
    # the checks split specs without the header: `A=B,B` (a column "A=B" and a column "B") was
    # refused as two columns answering task B, and "logD (pH=7.4)" was named as label '7.4)'
    path = tmp_path / "eq.csv"
    path.write_text('smiles,A=B,B,logD (pH=7.4)\nCCO,1,2,3\n')
    assert {i.task for i in read("csv", path, label_columns=["A=B", "B"])} == {"property:A=B", "property:B"}
    with pytest.raises(ValueError, match=r"label name 'logD \(pH=7.4\)'"):
        read("csv", path, label_columns=["logD (pH=7.4)"])


def test_moit_json_array_after_many_blank_lines_is_read_as_an_array(tmp_path):
    """was: the "[" looked for in the first 1024 characters only: 1100 blank lines, then an
    indented array, were read as JSON lines (the entries lost, a failure per line)."""
    folder = tmp_path / "pubchem/train"
    write_lmdb(folder / "3d-pubchem.lmdb", {"702": moit_record("702")}, protocol=4)
    entry = {"instruction": "MW?", "input": "702", "output": "46.07", "task": "Molecular Weight"}
    (folder / "2d_computed_properties.json").write_text("\n" * 1100 + json.dumps([entry], indent=1))
    got = items(read("3d-moit", tmp_path))
    assert got["pubchem-train-702-molecular-weight"].properties == {"Molecular Weight": 46.07}


def test_long_crafted_answers_and_headers_are_refused_not_backtracked():
    """Two regexes backtracked quadratically: a trans_smiles answer of 30000 spaces took 26 s
    to refuse, an SDF data header of 60000 "<" 23 s. (Results checked here; the time is
    what the fix is for, and a quadratic regex makes this test take minutes.)"""
    from deepmolm_plugin.data.sources.sdf_source import FIELD
    from deepmolm_plugin.data.sources.vis_chebi20 import smiles_from_answer

    assert smiles_from_answer("The SMILES is " + " " * 200_000 + "C C") is None
    assert smiles_from_answer("The SMILES is" + " " * 200_000 + ": CCO.") == "CCO"
    assert smiles_from_answer("the smiles of the molecule is :CCN") == "CCN"
    assert FIELD.match("> " + "<" * 200_000) is None
    assert FIELD.match(">  <ID>  (7)").group(1) == "ID"
