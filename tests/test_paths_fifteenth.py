"""A path name too long, and a pipe given as an input file, in every tool's path checks.

Was: a part over 255 bytes (or a path over 4096) an `OSError: [Errno 36] File name too long`
traceback (Python 3.11's Path.is_dir / is_file / exists raise it); a pipe (`<(...)`, a FIFO)
"no such file", "does not exist" or "answer file(s) missing". Now: one line naming the
option and the reason, the tool's usage-error status.
"""

from __future__ import annotations

import json
import os

import pytest

from deepmolm_plugin import usage

LONG = "y" * 300
TOO_LONG = "name too long: over 255 bytes in one name or 4096 in the path"


@pytest.fixture
def place(tmp_path):
    """A model folder (config.json), a question file, a records file, a CSV and a FIFO."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    (tmp_path / "q.jsonl").write_text('{"question_id": "a", "text": "x"}\n')
    (tmp_path / "data.csv").write_text("smiles,y\nCCO,1\nCCC,2\n")
    (tmp_path / "train.json").write_text(json.dumps([{"id": "a", "conversations": []}]))
    os.mkfifo(tmp_path / "fifo")
    return tmp_path


def _fingerprint(argv):
    from deepmolm_plugin.molecule.tools import fingerprint_main
    return fingerprint_main(argv)


def _render(argv):
    from deepmolm_plugin.molecule.tools import render_main
    return render_main(argv)


def _kflm2(argv):
    from deepmolm_plugin.property.cli import main
    return main(argv)


def _prepare(argv):
    from deepmolm_plugin.data.prepare.cli import main
    return main(argv)


def _questions(argv):
    from deepmolm_plugin.eval.questions import main
    return main(argv)


def _report(argv):
    from deepmolm_plugin.eval.report import main
    return main(argv)


def _vqa(argv):
    from deepmolm_plugin.eval.model_vqa import main
    return main(argv)


def _chat(argv):
    from deepmolm_plugin.cli import main
    return main(argv)


def _train(argv):
    from deepmolm_plugin.train import main
    return main(argv)


KFLM2 = ["--targets", "y", "--task", "regression"]
VQA = ["--model-path", "{d}/model"]

# (tool, argv with {d} the test folder and {bad} the long name or the FIFO, option, status)
LONG_CASES = {
    "fingerprint--out": (_fingerprint, ["--smiles", "CCO", "--out", "{d}/{bad}.jsonl"], "--out", 2),
    "render--out": (_render, ["--smiles", "CCO", "--out", "{d}/{bad}"], "--out", 2),
    "kflm2--data": (_kflm2, ["--data", "{d}/{bad}.csv", *KFLM2], "--data", 2),
    "kflm2--out": (_kflm2, ["--data", "{d}/data.csv", *KFLM2, "--out", "{d}/{bad}"], "--out", 2),
    "prepare--input": (_prepare, ["--format", "csv", "--input", "{d}/{bad}.csv", "--out", "{d}/po"], "--input", 2),
    "prepare--out": (_prepare, ["--format", "csv", "--input", "{d}/data.csv", "--out", "{d}/{bad}"], "--out", 2),
    "questions-DATA": (_questions, ["{d}/{bad}.json", "{d}/qq.jsonl"], "DATA", 2),
    "report-ANSWERS": (_report, ["{d}/{bad}.jsonl", "--out", "{d}/rep", "--no-plots"], "ANSWERS", 2),
    "report--out": (_report, ["{d}/q.jsonl", "--out", "{d}/{bad}", "--no-plots"], "--out", 2),
    "vqa--question-file": (_vqa, [*VQA, "--question-file", "{d}/{bad}.jsonl", "--answers-file", "{d}/a.jsonl"],
                           "--question-file", 2),
    "vqa--answers-file": (_vqa, [*VQA, "--question-file", "{d}/q.jsonl", "--answers-file", "{d}/{bad}.jsonl"],
                          "--answers-file", 2),
    "chat--structure": (_chat, ["--model-path", "{d}/model", "--structure", "{d}/{bad}.sdf"], "--structure", 2),
    "chat--model-path": (_chat, ["--model-path", "{d}/{bad}", "--smiles", "C"], "--model-path", 2),
    "train--data_path": (_train, ["--data_path", "{d}/{bad}.json", "--output_dir", "{d}/tt"], "--data_path", 2),
}

NOT_REGULAR = "is not a regular file (a pipe or a device): save it to a file first"
FIFO_CASES = {
    "kflm2--data": (_kflm2, ["--data", "{bad}", *KFLM2, "--out", "{d}/ko"], "--data", 2),
    "prepare--input": (_prepare, ["--format", "csv", "--input", "{bad}", "--out", "{d}/po", "--no-progress"],
                       "--input", 2),
    "questions-DATA": (_questions, ["{bad}", "{d}/qq.jsonl"], "DATA", 2),
    # a refused report: "error: ..." and exit 1 (its documented status for refused inputs)
    "report-ANSWERS": (_report, ["{bad}", "--out", "{d}/rep", "--no-plots"], "answer file(s)", 1),
    "vqa--question-file": (_vqa, [*VQA, "--question-file", "{bad}", "--answers-file", "{d}/a.jsonl"],
                           "--question-file", 2),
    "chat--image-file": (_chat, ["--model-path", "{d}/model", "--image-file", "{bad}"], "--image-file", 2),
    "chat--structure": (_chat, ["--model-path", "{d}/model", "--structure", "{bad}"], "--structure", 2),
    "train--data_path": (_train, ["--data_path", "{bad}", "--output_dir", "{d}/tt"], "--data_path", 2),
}


def _run(capsys, tool, argv):
    """(exit status, stderr) of a tool's main run in this process."""
    try:
        status = tool(argv)
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    if isinstance(status, str):  # SystemExit("error: ..."): Python prints it, status 1
        err, status = err + status + "\n", 1
    return status, err


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    if lines and lines[0].startswith("usage:"):  # deepmolm-prepare's option errors: argparse's block first
        lines = [line for line in lines if not (line.startswith("usage:") or line.startswith(" "))]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("case", sorted(LONG_CASES))
def test_a_name_too_long_is_one_line(case, place, capsys):
    tool, argv, option, status = LONG_CASES[case]
    argv = [a.format(d=place, bad=LONG) for a in argv]
    got, err = _run(capsys, tool, argv)
    line = _one_line(err)
    assert got == status, err
    assert option in line and TOO_LONG in line, line


@pytest.mark.parametrize("case", sorted(FIFO_CASES))
def test_a_pipe_is_not_a_regular_file(case, place, capsys):
    tool, argv, option, status = FIFO_CASES[case]
    argv = [a.format(d=place, bad=place / "fifo") for a in argv]
    got, err = _run(capsys, tool, argv)
    line = _one_line(err)
    assert got == status, err
    assert option in line and NOT_REGULAR in line, line
    assert "no such file" not in line and "does not exist" not in line and "missing" not in line


def test_a_refused_report_leaves_no_out_folder(place, capsys):
    """Its docs say nothing is written when it refuses: the --out (and the folder above it)
    its lock created are removed again; a folder that was there is kept."""
    got, err = _run(capsys, _report, [str(place / "fifo"), "--out", str(place / "new" / "rep"), "--no-plots"])
    assert got == 1 and NOT_REGULAR in err
    assert not (place / "new").exists()
    (place / "kept").mkdir()
    got, err = _run(capsys, _report, [str(place / "fifo"), "--out", str(place / "kept"), "--no-plots"])
    assert got == 1 and (place / "kept").is_dir()


@pytest.mark.parametrize("check", ["existing_file", "existing_folder", "output_folder", "output_file",
                                   "cache_folder", "model_folder"])
@pytest.mark.parametrize("where", ["part", "path"])
def test_no_usage_check_raises_oserror_on_a_name(check, where, tmp_path):
    """Every path check of usage.py: a UsageError naming the option, never OSError."""
    value = str(tmp_path / LONG) if where == "part" else str(tmp_path) + "/ab" * 2100
    with pytest.raises(usage.UsageError, match=f"--opt .*{TOO_LONG}"):
        getattr(usage, check)(value, "--opt")


def test_a_folder_not_searchable_is_a_usage_error(tmp_path, monkeypatch):
    """A folder on the way this user may not search: os.stat's EACCES (simulated: root, who runs
    the tests here, searches every folder) is a UsageError naming the option, not OSError."""
    import errno

    locked = tmp_path / "locked"
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if str(path).startswith(str(locked)):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    monkeypatch.setattr(os, "lstat", stat)
    with pytest.raises(usage.UsageError, match="--opt .*no permission"):
        usage.existing_file(locked / "x", "--opt")
