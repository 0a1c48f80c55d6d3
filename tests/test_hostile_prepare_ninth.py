"""Ninth hostile sweep of deepmolm-prepare (sweep F, findings 4-6): what was wrong before.

- chebi20: a row with a trailing tab (``705<TAB>CCN<TAB>The molecule is ethylamine.<TAB>``, a
  TSV export artefact) was dropped as "4 tab-separated fields, expected 3" and named
  ``chebi20-train-line5`` although its CID was valid. The same for chebi20-mm's and csv's
  trailing comma.
- Invisible format characters at the ends of a source text (``... acetic acid. \\u202e``)
  stayed in the training answer: str.strip() keeps Unicode category Cf.
- ``--shard 0/2``, then ``--shard 1/3`` and ``--shard 2/3`` into one --out were all accepted;
  ``--merge`` then said "shards [1] of 2 are unfinished", the N of whichever marker sorted
  first.
"""

import csv
import json

import pytest

from deepmolm_plugin.data.prepare import cli
from deepmolm_plugin.data import prompts
from deepmolm_plugin.data.prompts import blank, conversation, reply_problem
from deepmolm_plugin.data.sources import chebi20_mm, csv_source  # noqa: F401  (registered)
from deepmolm_plugin.data.sources.base import SourceError

from test_prepare import prepare, records
from test_sources import errors, items, read

RUN = ["--image-size", "32", "--no-progress"]
HEADER_TSV = "CID\tSMILES\tdescription\r\n"


def jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- 1. trailing separators; a row of the wrong width is named by its CID --------------


def test_chebi20_trailing_tab_is_no_field(tmp_path):
    (tmp_path / "train.txt").write_bytes(("\ufeff" + HEADER_TSV +
                                          "705\tCCN\tThe molecule is ethylamine.\t\r\n"
                                          "706\tCCC\tThe molecule is propane.\t\t \r\n"
                                          "707\tCCCC\tButane.\textra text\r\n"
                                          "708\tCO\r\n"
                                          "x9\tC\tMethane.\tmore\r\n").encode())
    out = read("chebi20", tmp_path)
    got, bad = items(out), errors(out)
    assert got["chebi20-train-705"].answer == "The molecule is ethylamine."  # was dropped
    assert got["chebi20-train-706"].answer == "The molecule is propane."
    # a real 4th field: refused, named by the valid CID (was chebi20-train-line4), saying what it is
    assert bad["chebi20-train-707"].reason == ("line 4: 4 tab-separated fields, expected 3: a 4th field "
                                               "'extra text' after the description")
    assert bad["chebi20-train-708"].reason == "line 5: 2 tab-separated fields, expected 3: no description"
    assert "chebi20-train-line6" in bad  # no CID to name it by: the line
    assert len(out) == 5


def test_chebi20_trailing_tab_after_a_blank_description_is_still_a_blank_description(tmp_path):
    (tmp_path / "train.txt").write_text(HEADER_TSV + "12\tCO\t\t\n")
    [error] = read("chebi20", tmp_path)
    assert isinstance(error, SourceError) and error.id == "chebi20-train-12" and "blank description" in error.reason


def test_chebi20_mm_wide_row_is_named_by_its_cid_and_says_what_is_extra(tmp_path):
    # a trailing empty field is not dropped here (review): the release leaves columns blank, so a
    # stray comma would shift the row's fields without a word
    with open(tmp_path / "train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(chebi20_mm.HEADER)
        writer.writerow(["9", "CCO", "Ethanol.", "20.2", "", "", "", ""])
        writer.writerow(["10", "CC", "Ethane.", "0", "", "", "", "", "stray"])
    out = read("chebi20-mm", tmp_path, tasks="description")
    got, bad = items(out), errors(out)
    assert got["chebi20-mm-train-9-description"].answer == "Ethanol."
    assert bad["chebi20-mm-train-10"].reason == ("line 3: 9 fields, expected 8: a 9th field 'stray' after the "
                                                 "SELFIES")


def test_csv_row_wider_than_its_header_is_refused_saying_what_is_extra(tmp_path):
    # review: `CCN,1,5,` under smiles,y,z (a decimal comma, an empty z) was read as y=1, z=5 once a trailing
    # empty cell was dropped; a table's last column may be empty, so a wide row stays an error
    (tmp_path / "t.csv").write_text("smiles,y,z\nCCO,1,2\nCCN,1,5,\nCC,3,4,x\n")
    out = read("csv", tmp_path / "t.csv", label_columns="y,z")
    assert sorted(items(out)) == ["t#0:property:y", "t#0:property:z"]
    assert errors(out)["t#1"].reason == "row 1 (line 3) has 4 fields, the header 3: a 4th field '' after the column 'z'"
    assert errors(out)["t#2"].reason == ("row 2 (line 4) has 4 fields, the header 3: a 4th field 'x' after the "
                                         "column 'z'")


def test_prepare_keeps_the_trailing_tab_row(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "train.txt").write_text(HEADER_TSV + "704\tCC(=O)O\tAcetic acid.\r\n"
                                               "705\tCCN\tThe molecule is ethylamine.\t\r\n")
    out = tmp_path / "o"
    code, _ = prepare("--format", "chebi20", "--input", tmp_path / "in", "--out", out, *RUN)
    assert code == 0 and jsonl(out / "failures.jsonl") == []
    assert sorted(r["id"] for r in records(out / "train.json")) == ["chebi20-train-704", "chebi20-train-705"]


# --- 2. invisible format characters at the ends of a text -----------------------------


@pytest.mark.parametrize("start, end", [("", "\u202e"), ("\u200b", "\u200b"), ("", "\u202a"), ("\u202c", ""),
                                        ("", "\u2066"), ("\u2069", ""), ("\u2060", "\u2060"), ("\ufeff", "\ufeff"),
                                        (" \u200b\t", " \u202e\u200b \t")])
def test_conversation_trims_inert_invisible_characters_at_the_ends(start, end):
    human, gpt = conversation(f"{start}Describe it.{end}", f"{start}The molecule is acetic acid.{end}")
    assert gpt["value"] == "The molecule is acetic acid."
    assert human["value"] == "<image>\nDescribe it."


def test_bidi_controls_inside_a_text_and_meaningful_ones_at_its_ends_are_kept():
    inner = "The name \u2067\u05d0\u05d1\u2069 is Hebrew; \u202eRLO\u202c here."
    assert conversation("Describe it.", inner)[1]["value"] == inner
    # review: a leading RLM sets the paragraph's direction, an isolate around the first or last words is a
    # pair, an Arabic number sign and an emoji tag sequence are visible: none is trimmed
    for kept in ("\u200fThe name is Hebrew.\u200e", "\u2067\u05d0\u05d1\u2069 is its name",
                 "its name is \u2067\u05d0\u05d1\u2069", "\u0600123", "a flag \U0001f3f4\U000e0067\U000e0062\U000e007f"):
        assert prompts.trimmed(kept) == kept, repr(kept)
    assert prompts.trimmed(" \u200b" + inner + "\u200b ") == inner


def test_trimmed_empties_only_blank_texts_and_keeps_the_answer_rules():
    for text in ("", " ", "\u200b\u200b", "\u202c \n\u202e", "a", " a\u200b", "\u200ba b\u200b", "\u200f"):
        assert prompts.trimmed(text) != "" or blank(text), repr(text)
    with pytest.raises(ValueError, match="empty answer"):
        conversation("Describe it.", "\u200b\u202e ")
    with pytest.raises(ValueError, match="empty answer"):
        conversation("Describe it.", "\u200f")  # blank, though trimmed keeps a direction mark
    with pytest.raises(ValueError, match="empty instruction"):
        conversation("<image>\u200b", "An answer.")
    # a leading line break hidden behind an invisible character is trimmed with it: the
    # answer then passes the reply rule (was: kept, and refused or trained as it was)
    answer = conversation("Describe it.", "\u200b\nAn answer.")[1]["value"]
    assert answer == "An answer." and reply_problem(answer) is None
    with pytest.raises(ValueError, match="control token"):  # still refused inside
        conversation("Describe it.", "An <|im_end|> answer.\u200b")


def test_the_image_token_still_moves_to_the_front():
    human, _ = conversation("\u200b<image>\u200b\nName it.\u202e", "Ethanol.")
    assert human["value"] == "<image>\nName it."
    human, _ = conversation("Look at <image> and name it.", "Ethanol.")
    assert human["value"] == "<image>\nLook at and name it."


def test_prepare_trims_a_bidi_override_at_the_end_of_a_chebi20_description(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "train.txt").write_text(HEADER_TSV + "704\tCC(=O)O\tThe molecule is acetic acid. \u202e\r\n"
                                               "705\tCCN\t\u200bThe molecule is ethylamine.\ufeff\r\n")
    out = tmp_path / "o"
    assert prepare("--format", "chebi20", "--input", tmp_path / "in", "--out", out, *RUN)[0] == 0
    answers = {r["id"]: r["conversations"][1]["value"] for r in records(out / "train.json")}
    assert answers == {"chebi20-train-704": "The molecule is acetic acid.",
                       "chebi20-train-705": "The molecule is ethylamine."}


def test_prepare_trims_a_csv_text_column(tmp_path):
    (tmp_path / "t.csv").write_text("smiles,description\nCCO,\u2069Ethanol.\u2066\n")  # a closer first, an opener last
    out = tmp_path / "o"
    assert prepare("--format", "csv", "--input", tmp_path / "t.csv", "--out", out, *RUN,
                   "--text-columns", "description")[0] == 0
    [record] = records(out / "train.json")
    assert record["conversations"][1]["value"] == "Ethanol."


# --- 3. shards of one --out with different N -----------------------------------------


def shard_args(tmp_path, out, *extra):
    data = tmp_path / "shin.csv"
    if not data.exists():
        data.write_text("smiles,y\n" + "".join(f"{s},{i}\n" for i, s in enumerate(
            ["C", "CC", "CCC", "CCCC", "CO", "CCO", "CCCO", "CN", "CCN", "CCCN", "CF", "CCF"])))
    return ("--format", "csv", "--input", data, "--out", out, *RUN, "--label-columns", "y", "--chunk-size", "2",
            *extra)


def test_a_shard_with_another_n_is_refused_before_it_computes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "sh"
    assert prepare(*shard_args(tmp_path, out, "--shard", "0/2"))[0] == 0
    capsys.readouterr()
    computed = []
    monkeypatch.setattr(cli, "compute", lambda *a, **k: computed.append(a) or (6, 0, 0))
    assert prepare(*shard_args(tmp_path, out, "--shard", "1/3"))[0] == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and not computed
    assert "setting shards: 2 -> 3" in err and "shard-0-of-2.json" in err and "--shard 1/2" in err
    assert sorted(p.name for p in (out / ".progress").glob("shard-*")) == ["shard-0-of-2.json"]
    monkeypatch.undo()
    assert prepare(*shard_args(tmp_path, out, "--shard", "2/3"))[0] == 2
    assert "--shard I/2" in capsys.readouterr().err
    # the same N goes on, and the merge is the single run's output
    assert prepare(*shard_args(tmp_path, out, "--shard", "1/2"))[0] == 0
    assert prepare(*shard_args(tmp_path, out, "--merge"))[0] == 0
    assert len(records(out / "train.json")) == 12


def test_the_shard_count_is_kept_in_run_json_and_a_plain_run_may_finish(tmp_path, capsys):
    out = tmp_path / "sh"
    assert prepare(*shard_args(tmp_path, out, "--shard", "1/2"))[0] == 0
    assert json.loads((out / ".progress" / "run.json").read_text())["shards"] == 2
    assert prepare(*shard_args(tmp_path, out, "--shard", "0/4"))[0] == 2  # no marker of N=2 needed: run.json
    assert "setting shards: 2 -> 4" in capsys.readouterr().err
    # (second review) an array cancelled before any of its shards finished, resubmitted with another N: told
    # that forgetting the recorded N lets it go on
    (out / ".progress" / "shard-1-of-2.json").rename(tmp_path / "marker")
    assert prepare(*shard_args(tmp_path, out, "--shard", "0/4"))[0] == 2
    assert "or delete .progress/run.json to start the array again with N=4" in capsys.readouterr().err
    (tmp_path / "marker").rename(out / ".progress" / "shard-1-of-2.json")
    # without --shard: computes the rest, whatever N the shards had
    assert prepare(*shard_args(tmp_path, out))[0] == 0
    assert len(records(out / "train.json")) == 12


def test_merge_names_markers_of_mixed_n(tmp_path, capsys):
    # as an earlier version left it (or two tasks with other N that started at the same moment)
    out, aside = tmp_path / "sh", tmp_path / "aside"
    aside.mkdir()
    for shard in ("0/2", "1/3", "2/3"):
        assert prepare(*shard_args(tmp_path, out, "--shard", shard))[0] == 0
        run = json.loads((out / ".progress" / "run.json").read_text())
        run.pop("shards", None)  # no record of the N ...
        (out / ".progress" / "run.json").write_text(json.dumps(run))
        for marker in (out / ".progress").glob("shard-*"):  # ... and no marker, while the next starts
            marker.rename(aside / marker.name)
    for marker in aside.iterdir():
        marker.rename(out / ".progress" / marker.name)
    capsys.readouterr()
    assert prepare(*shard_args(tmp_path, out, "--merge"))[0] == 2
    err = capsys.readouterr().err
    assert "different N (N=2: shard-0-of-2.json; N=3: shard-1-of-3.json, shard-2-of-3.json)" in err
    assert "1 chunks are not committed (chunk 3)" in err and "of 2 are unfinished" not in err
    # the markers themselves refuse a next shard with another N
    assert prepare(*shard_args(tmp_path, out, "--shard", "1/2"))[0] == 2
    assert "shard-1-of-3.json, shard-2-of-3.json" in capsys.readouterr().err

