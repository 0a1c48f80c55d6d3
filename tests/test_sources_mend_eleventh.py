"""Eleventh round, mending the dataset readers (review findings 3 and 4): a NUL or other
control character in a chebi20 / chebi20-mm / vis-chebi20 / 3D-MoIT row fails that row,
wherever it is in the file (was: a NUL in the first 64 KiB refused the whole file as "not a
text structure file", one past it stayed in an answer); blank and missing-value answers
fail in stage "answer" in chebi20 and chebi20-mm, as in the other readers (was: "schema")."""

from __future__ import annotations

import csv
import json

import pytest

from deepmolm_plugin.data.sources import chebi20_mm
from test_hostile_sources_eleventh import _record
from test_sources import errors, items, read, vis_record, write_json, write_lmdb

HEADER_TSV = "CID\tSMILES\tdescription\n"
# rows enough to put a row past the first 64 KiB of the file (`not_text` looked at those only)
FAR = 2000


def _chebi20(folder, bad_row: int, bad: str, rows: int = FAR + 10):
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{i + 1}\tCCO\tThe molecule is alcohol number {i}.{bad if i == bad_row else ''}\n" for i in range(rows)]
    (folder / "train.txt").write_text(HEADER_TSV + "".join(lines))
    assert len((folder / "train.txt").read_bytes()) > 65536


@pytest.mark.parametrize("row", [3, FAR])  # inside and past the first 64 KiB
def test_chebi20_nul_fails_its_row_wherever_it_is(tmp_path, row):
    _chebi20(tmp_path, row, "\0")
    out = read("chebi20", tmp_path)
    failed = errors(out)
    assert list(failed) == [f"chebi20-train-{row + 1}"]
    error = failed[f"chebi20-train-{row + 1}"]
    assert error.stage == "read"
    assert error.reason.startswith(f"line {row + 2}: description holds the control character '\\x00' (character ")
    assert "structure" not in error.reason
    assert len(items(out)) == FAR + 9 and not any("\0" in item.answer for item in items(out).values())


@pytest.mark.parametrize("char", ["\x01", "\x07", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\x9f"])
def test_chebi20_other_control_characters_fail_their_row(tmp_path, char):
    (tmp_path / "train.txt").write_text(HEADER_TSV + f"1\tCCO\tEthanol.{char}\n2\tCC{char}N\tEthylamine.\n"
                                                     "3\tCCC\tPropane.\twith a tab\t\n4\tCO\tMethanol.\rA solvent.\n")
    out = read("chebi20", tmp_path)
    failed = errors(out)
    assert failed["chebi20-train-1"].reason == (f"line 2: description holds the control character {char!r} "
                                                "(character 9): not text, a binary file's bytes?")
    assert failed["chebi20-train-2"].reason.startswith(f"line 3: SMILES holds the control character {char!r}")
    assert {e.stage for e in failed.values() if "control" in e.reason} == {"read"}
    # a tab (here a 4th field) and a lone CR inside the description are no such failure
    assert "4 tab-separated fields" in failed["chebi20-train-3"].reason
    assert items(out)["chebi20-train-4"].answer == "Methanol.\rA solvent."


def test_chebi20_utf16_and_gzip_are_still_refused_whole(tmp_path):
    import gzip

    (tmp_path / "train.txt").write_bytes(gzip.compress((HEADER_TSV + "1\tCCO\tEthanol.\n").encode()))
    with pytest.raises(ValueError, match=r"^chebi20: .*train.txt: file is compressed"):
        read("chebi20", tmp_path)
    (tmp_path / "train.txt").write_bytes(b"\xff\xfe" + (HEADER_TSV + "1\tCCO\tEthanol.\n").encode("utf-16-le"))
    with pytest.raises(ValueError, match=r"^chebi20: .*train.txt: file is UTF-16 text"):
        read("chebi20", tmp_path)


def _mm_rows(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(chebi20_mm.HEADER)
        writer.writerows(rows)


def test_chebi20_mm_control_characters_fail_their_row(tmp_path):
    good = [[str(i), "CCO", f"The molecule is alcohol number {i}.", "20.2", "-0.1", "InChI=x", "ethanol", "[C]"]
            for i in range(10, FAR + 10)]
    _mm_rows(tmp_path, [["1", "CCO", "Ethanol.\0", "20.2", "-0.1", "InChI=x", "ethanol", "[C]"],
                        ["2", "CCN", "Ethylamine.", "20.2", "-0.1", "InChI=y", "ethan\x1bamine", "[C]"],
                        ["3", "CCC", "Propane.\nA gas.", "0", "1.1", "InChI=z", "propane", "[C]"]]
             + good + [["5", "CO", "Methanol.", "20.2", "-0.1", "InChI=w", "methanol", "[C]\0"]])
    out = read("chebi20-mm", tmp_path, tasks="description,iupac_naming")
    failed = errors(out)
    assert set(failed) == {"chebi20-mm-train-1", "chebi20-mm-train-2", "chebi20-mm-train-5"}
    assert failed["chebi20-mm-train-1"].reason == ("line 2: description holds the control character '\\x00' "
                                                   "(character 9): not text, a binary file's bytes?")
    assert failed["chebi20-mm-train-2"].reason.startswith("line 3: iupacname holds the control character '\\x1b'")
    assert failed["chebi20-mm-train-5"].reason.startswith(f"line {FAR + 6}: SELFIES holds the control character")
    assert {e.stage for e in failed.values()} == {"read"}
    # a line break inside a quoted cell is text
    assert items(out)["chebi20-mm-train-3-description"].answer == "Propane.\nA gas."
    assert len(items(out)) == 2 + 2 * FAR


def test_blank_and_marker_answers_fail_in_stage_answer_in_chebi20_and_chebi20_mm(tmp_path):
    (tmp_path / "c20").mkdir()
    (tmp_path / "c20/train.txt").write_text(HEADER_TSV + "1\tCCO\tN/A\n2\tCCN\t \n3\t\tNo SMILES.\nx\tC\tBad CID.\n"
                                                         "5\tCO\n")
    failed = {k: (e.stage, e.reason) for k, e in errors(read("chebi20", tmp_path / "c20")).items()}
    assert failed["chebi20-train-1"] == ("answer", "line 2: description is 'N/A', a missing-value marker, "
                                                   "not an answer")
    assert failed["chebi20-train-2"] == ("answer", "line 3: blank description")
    # schema stays the stage of the table's shape: SMILES, CID, field count
    assert failed["chebi20-train-3"] == ("schema", "line 4: blank SMILES")
    assert failed["chebi20-train-line5"][0] == "schema"
    assert failed["chebi20-train-5"][0] == "schema"
    _mm_rows(tmp_path / "mm", [["1", "CCO", "", "", "0.1", "InChI=x", "-", "x"],
                               ["2", "CCN", "nan", "20.2", "bad", "InChI=y", "", "y"],
                               ["x", "CCC", "Propane.", "0", "1", "InChI=z", "propane", "z"]])
    failed = {k: (e.stage, e.reason) for k, e in errors(read("chebi20-mm", tmp_path / "mm")).items()}
    assert failed == {
        "chebi20-mm-train-1-description": ("answer", "blank description"),
        "chebi20-mm-train-1-iupac-naming": ("answer", "iupacname is '-', a missing-value marker, not an answer"),
        "chebi20-mm-train-1-topological-polar-surface-area": ("answer", "blank polararea"),
        "chebi20-mm-train-2-description": ("answer", "description is 'nan', a missing-value marker, not an answer"),
        "chebi20-mm-train-2-logp": ("schema", failed["chebi20-mm-train-2-logp"][1]),  # not a number: as before
        "chebi20-mm-train-line4": ("schema", "line 4: CID 'x' is not a number")}


def _vis(folder, records):
    (folder / "imgs").mkdir(parents=True, exist_ok=True)
    for name in ("1.png", "2.png"):
        (folder / "imgs" / name).write_bytes(b"\x89PNG fake " + name.encode())
    write_json(folder / "train.json", records)


def test_vis_chebi20_control_characters_fail_their_record(tmp_path):
    _vis(tmp_path, [vis_record("trans_smiles", "imgs/1.png", "SMILES?", "The SMILES is CCO."),
                    vis_record("general_desp", "imgs/1.png", "Describe.", "Ethanol.\u0000"),  # written "\u0000"
                    vis_record("struct_cap", "imgs/1.png", "Caption\x07?", "An alcohol."),
                    vis_record("trans_smiles", "imgs/2.png", "SMILES?", "The SMILES is CCN."),
                    vis_record("general_desp", "imgs/2.png", "Describe.\nBriefly.", "Ethylamine.")])
    out = read("vis-chebi20", tmp_path)
    failed = {k: (e.stage, e.reason) for k, e in errors(out).items()}
    assert failed == {
        "vis-chebi20-train-1-description": ("read", "the general_desp answer holds the control character '\\x00' "
                                                    "(character 9): not text, a binary file's bytes?"),
        "vis-chebi20-train-1-caption": ("read", "the user turn holds the control character '\\x07' "
                                                "(character 8): not text, a binary file's bytes?")}
    assert items(out)["vis-chebi20-train-2-description"].extra["source_instruction"] == "Describe.\nBriefly."
    # a raw NUL byte inside a string, early in the file: that record's failure, not the file's
    text = (tmp_path / "train.json").read_text().replace("\\u0000", "\0")
    assert 0 <= text.index("\0") < 65536
    (tmp_path / "train.json").write_text(text)
    out = read("vis-chebi20", tmp_path)
    assert errors(out)["vis-chebi20-train-1-description"].stage == "read"
    assert len(items(out)) == 3


def test_moit_control_characters_fail_their_entry(tmp_path):
    root = tmp_path / "3d-mol-dataset"
    write_lmdb(root / "pubchem/train/3d-pubchem.lmdb",
               {"1": _record("1"), "2": _record("2", smiles="CCN", description="An amine.\x00")}, protocol=4)
    lines = [{"instruction": "q", "input": "1", "output": "46.07 g/mol\u0000", "task": "Molecular Weight"},
             {"instruction": "q\x1b", "input": "1", "output": "46.07 g/mol", "task": "Molecular Weight"},
             {"instruction": "q", "input": "1", "output": "46.07 g/mol", "task": "Molecular Weight"}]
    path = root / "pubchem/train/2d_computed_properties.json"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = read("3d-moit", root, tasks="Caption,Molecular Weight")
    failed = {k: (e.stage, e.reason) for k, e in errors(out).items()}
    assert failed == {
        "pubchem-train-2-caption": ("read", "description holds the control character '\\x00' (character 10): "
                                            "not text, a binary file's bytes?"),
        "pubchem-train-2d_computed_properties#0": ("read", "line 1: output holds the control character '\\x00' "
                                                           "(character 12): not text, a binary file's bytes?"),
        "pubchem-train-2d_computed_properties#1": ("read", "line 2: instruction holds the control character "
                                                           "'\\x1b' (character 2): not text, a binary file's bytes?")}
    assert sorted(items(out)) == ["pubchem-train-1-caption", "pubchem-train-1-molecular-weight"]
    # a JSON array with a raw NUL inside a string: the entry fails, named by its position
    path.write_text(json.dumps(lines).replace("\\u0000", "\0"))
    failed = errors(read("3d-moit", root, tasks="Molecular Weight"))
    assert failed["pubchem-train-2d_computed_properties#0"].reason.startswith("entry 0: output holds the control")
    assert failed["pubchem-train-2d_computed_properties#1"].reason.startswith("entry 1: instruction holds")


def test_control_problem_rule():
    from deepmolm_plugin.data.sources.base import control_problem  # new (here: the other tests run on old code)

    for text in ("plain", "a\ttab", "two\nlines", "a lone\rCR", "café ☃", ""):
        assert control_problem(text, "x") is None
    for char in [chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"] + [chr(c) for c in range(0x7f, 0xa0)]:
        assert control_problem(f"ab{char}", "description") == (
            f"description holds the control character {char!r} (character 3): not text, a binary file's bytes?")
