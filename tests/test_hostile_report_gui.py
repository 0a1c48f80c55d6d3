"""Hostile input to the evaluation report and the GUI's chat: each test is a case that
crashed, killed the process or silently gave something else before its fix."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from deepmolm_plugin.eval.markdown import markdown
from deepmolm_plugin.eval.metrics import molecules, text
from deepmolm_plugin.eval.outputs import write_outputs
from deepmolm_plugin.eval.scoring import build_report
from gui_helpers import RecordingModel


def _report(tmp_path, questions, name="run"):
    """(report, rows) of answers [(question_id, task, reference answer, prediction)]."""
    refs, answers = tmp_path / f"{name}_q.jsonl", tmp_path / f"{name}_a.jsonl"
    refs.write_text("".join(json.dumps({"question_id": q, "task": t, "answer": a, "metric": "property"}) + "\n"
                            for q, t, a, _ in questions))
    answers.write_text("".join(json.dumps({"question_id": q, "text": p}) + "\n" for q, _, _, p in questions))
    return build_report([answers], refs)


# --- plots ---------------------------------------------------------------------------------------
def test_parity_plot_of_values_near_the_float_maximum_is_written(tmp_path):
    # A property without a range takes any finite answer: 1.75e308 is valid, and the padded
    # axis limits overflowed to inf (ValueError: Axis limits cannot be NaN or Inf).
    report, rows = _report(tmp_path, [("1", "foo", "0", "1.75e308"), ("2", "foo", "1", "2")])
    write_outputs(report, rows, tmp_path / "out")
    assert report["plots"] == ["plots/parity_foo.png"]
    assert (tmp_path / "out" / "plots" / "parity_foo.png").stat().st_size > 1000
    table = (tmp_path / "out" / "metrics.md").read_text()
    assert "8.75e+307" in table and max(len(line) for line in table.splitlines()) < 400  # no 300-digit cell


def test_parity_refuses_undrawable_values_by_name():
    from deepmolm_plugin import plots as draw

    fig, (ax,) = draw.panels(1, figsize=(3, 3))
    with pytest.raises(ValueError, match=r"1 value\(s\) beyond"):
        draw.parity(ax, [([0.0, 1.0], [1.7e308, 1.0], None)], size=4, alpha=1, pad=0.05)
    draw.pyplot().close(fig)


def test_tasks_whose_file_names_collide_get_a_plot_each(tmp_path):
    # Names alike but for case or punctuation are one task spelled twice (refused by the
    # report); names of other scripts all become "task" in a file name.
    report, rows = _report(tmp_path, [("1", "\u03b1", "1", "1"), ("2", "\u03b2", "2", "2"), ("3", "\u03b3", "3", "3")])
    write_outputs(report, rows, tmp_path / "out")
    files = sorted(p.name for p in (tmp_path / "out" / "plots").iterdir())
    assert len(report["plots"]) == len(set(report["plots"])) == len(files) == 3, files
    assert "parity_task.png" in files  # the first keeps its plain name
    assert len({f.lower() for f in files}) == 3  # distinct on case-insensitive file systems too


def test_a_rerun_leaves_no_plot_of_the_earlier_run(tmp_path):
    out = tmp_path / "out"
    write_outputs(*_report(tmp_path, [("1", "old task", "1", "1")], "first"), out)
    assert (out / "plots" / "parity_old_task.png").is_file()
    write_outputs(*_report(tmp_path, [("1", "new task", "1", "1")], "second"), out)
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["parity_new_task.png"]
    write_outputs(*_report(tmp_path, [("1", "new task", "1", "1")], "third"), out, make_plots=False)
    assert list((out / "plots").iterdir()) == []  # --no-plots: nothing that metrics.json does not list
    assert "plots" not in json.loads((out / "metrics.json").read_text())


# --- the markdown table ---------------------------------------------------------------------------
def test_a_task_name_with_a_pipe_or_line_break_stays_one_table_row(tmp_path):
    report, _ = _report(tmp_path, [("1", "a|b\nc", "1", "1"), ("2", "plain", "2", "2")])
    rows = [line for line in markdown(report).splitlines() if line.startswith("| ") and "task" not in line]
    assert len(rows) == 2
    # Unescaped pipes separate columns: both rows have the header's 6 columns.
    assert all(len(line.replace("\\|", "").split("|")) == 8 for line in rows), rows
    assert rows[0].startswith("| a\\|b c |")


# --- SMILES and IUPAC -----------------------------------------------------------------------------
def test_a_huge_smiles_is_invalid_not_a_segmentation_fault():
    # RDKit's MolToSmiles recursed once per chain atom: a 20,000-carbon chain killed the process.
    code = ("from deepmolm_plugin.eval.metrics import molecules as m\n"
            "r = m.smiles_metrics(['C' * 20000, 'CCO'], ['CCO', 'C' * 20000])\n"
            "print(r['n'], r['n_valid'], r['n_invalid_references'], m.canonical_smiles('C' * 20000))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["1", "0", "1", "None"]
    assert molecules.canonical_smiles("C" * molecules.MAX_ATOMS) is not None  # the cap itself is scored


def test_an_empty_iupac_answer_to_an_empty_reference_is_no_exact_match(wordnet):
    got = molecules.iupac_metrics(["", "The IUPAC name is.", "ethanol"], ["", "", "ethanol"], wordnet=wordnet)
    assert got["exact_match"] == pytest.approx(100 / 3)  # was 100: "" == "" counted as a right name
    assert got["n_empty_references"] == 2


# --- long texts -----------------------------------------------------------------------------------
def test_a_reference_beyond_max_tokens_is_refused_before_rouge_allocates(tmp_path):
    # Two 100,000-token texts: ROUGE-L's LCS table took 22 GB before the process was killed.
    # (A long answer is scored on its first MAX_TOKENS tokens: tests/test_hostile_report_seventh.py.)
    long = "word " * (text.MAX_TOKENS + 1)
    with pytest.raises(text.TextTooLong, match="reference 1 of 1"):
        text.text_metrics(["a"], [long * 10], wordnet=object())  # fails before METEOR uses it


# --- the GUI's chat -------------------------------------------------------------------------------


def _chat(tiny_config, context):
    import deepmolm_plugin

    deepmolm_plugin.register()
    from tiny_models import make_tiny_tokenizer

    from deepmolm_plugin.encoder.image_processor import DeepEncoderImageProcessor
    from deepmolm_plugin.gui.views import ModelViews

    processor = DeepEncoderImageProcessor.from_config(tiny_config)
    session = SimpleNamespace(model=RecordingModel(context), tokenizer=make_tiny_tokenizer(), conv_mode="qwen2",
                              lock=threading.Lock(), image_processor=processor)
    size = processor.image_size
    views = ModelViews(images=torch.zeros(1, 3, size, size), image_size=(size, size), tile_images=None,
                       tile_grid=None, view=Image.new("RGB", (size, size)), mosaic=None)
    molecule = SimpleNamespace(views=views, batch_fp=lambda device: None)
    return session, molecule, processor.num_llm_positions((size, size))


def test_a_question_longer_than_the_context_is_refused_not_cut(tiny_config):
    from deepmolm_plugin.gui.chat import stream_reply

    session, molecule, image_positions = _chat(tiny_config, context=0)
    session.model.config.tokenizer_model_max_length = image_positions + 60
    assert list(stream_reply(session, molecule, [("What is it?", None)], 0.0, 4))  # fits: answered
    assert len(session.model.calls) == 1
    # The host cut the embedded prompt at tokenizer_model_max_length from the end: the
    # question and the assistant's turn were dropped and the model continued the history.
    turns = [("What is it? " * 40, None)]
    with pytest.raises(ValueError, match=rf"more than this model's context of {image_positions + 60}"):
        list(stream_reply(session, molecule, turns, 0.0, 4))
    assert len(session.model.calls) == 1 and not session.lock.locked()


def test_temperature_nan_is_refused():
    from deepmolm_plugin.gui.chat import sampling_kwargs

    with pytest.raises(ValueError, match="temperature must be at least 0"):
        sampling_kwargs(float("nan"), 8)
    assert sampling_kwargs(1e-3, 8)["do_sample"] is True
    # 1e-39 through the page's API: the logits / temperature overflowed, a RuntimeError from the sampler
    with pytest.raises(ValueError, match="temperature 1e-39 is too small to sample with"):
        sampling_kwargs(1e-39, 8)


def test_a_report_killed_while_written_leaves_no_metrics_json(tmp_path, monkeypatch):
    # Was: metrics.json came first and plainly written; a run killed before metrics.md and
    # per_question.jsonl left it, and a resuming caller (the fusion experiment, which takes
    # metrics.json as "scored") read another run's per_question.jsonl or none.
    from deepmolm_plugin.eval import outputs

    out = tmp_path / "out"
    report, rows = _report(tmp_path, [("1", "foo", "1", "1")])

    def killed(report):
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs, "markdown", killed)
    with pytest.raises(KeyboardInterrupt):
        write_outputs(report, rows, out, make_plots=False)
    assert not (out / "metrics.json").exists()
    assert [p.name for p in out.iterdir() if p.is_file()] == ["per_question.jsonl"]  # whole, no temporary files


def test_questions_left_out_of_the_scores_are_said_under_the_table(tmp_path):
    # Was: "2 answers to 2 questions" above a property row of n 1, and nothing saying why.
    report, rows = _report(tmp_path, [("1", "foo", "1.5", "1.5"), ("2", "foo", "no number here", "2")])
    table = markdown(report)
    assert "| foo | 1 |" in table
    assert "Left out of n and the scores" in table and "foo: 1 question(s) without a reference value" in table
    assert "Left out" not in markdown(_report(tmp_path, [("1", "foo", "1.5", "1.5")], "all")[0])
