"""Hostile input to deepmolm-kflm2, the image processor and the chat prompt: each case once
passed silently (wrong rows, wrong columns, no training, an empty subset, a lost frame) or
ended in a traceback; now it is a clear error naming the record and the reason, or works."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from deepmolm_plugin.encoder.image_processor import DeepEncoderImageProcessor
from deepmolm_plugin.property import cli as kcli
from deepmolm_plugin.property.report import summarise
from deepmolm_plugin.property.train import regression_metrics

SMALL = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C1CCCCC1N", "O=C(O)c1ccccc1", "CCN(CC)CC", "Clc1ccc(Cl)cc1",
         "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "C#N", "OCC(O)CO", "c1ccncc1", "CCCCCCCC", "[Na+].[Cl-]", "CS(C)=O",
         "C[C@H](N)C(=O)O", "c1ccc2ccccc2c1", "FC(F)(F)c1ccccc1", "CCOC(=O)C", "NC(=O)N", "C1=CC=CN1"]
ACYCLIC = ["C" * k for k in range(1, 16)] + ["C" * k + "O" for k in range(1, 16)] + ["C" * k + "N" for k in range(1, 11)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: threads cost more than they give


def _csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _run(data, out, targets=("y",), task="regression", extra=()):
    return ["--data", str(data), "--targets", *targets, "--task", task, "--seeds", "1", "--epochs", "2",
            "--hidden", "8", "--ffn-hidden", "8", "--features", "none", "--out", str(out), "--quiet", "--no-plots",
            *extra]


# ------------------------------------------------------------------------- kflm2: arguments
def test_sizes_that_do_not_sum_to_one_are_a_usage_error(tmp_path, capsys):
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(SMALL * 2)])
    with pytest.raises(SystemExit) as error:  # was a ValueError traceback from the split, after writing --out
        kcli.main(_run(data, tmp_path / "run", extra=["--sizes", "0.8", "0.1", "0.2"]))
    assert error.value.code == 2
    assert "--sizes 0.8 0.1 0.2: the three fractions must sum to 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_repeated_or_misused_columns_are_named():
    # csv.DictReader kept only the last of two "y" columns, silently.
    assert "['y'] appear more than once" in kcli.column_problem(["smiles", "y", "y"], ["y"], None)
    assert "more than once" in kcli.column_problem(["smiles", "y"], ["y", "y"], None)
    assert "is the SMILES column" in kcli.column_problem(["smiles", "y"], ["smiles"], None)
    assert kcli.column_problem(["name", "name", "smiles", "y"], ["y"], None) is None  # unused: harmless


# ---------------------------------------------------------------------------- kflm2: content
def test_label_text_that_is_not_a_number_is_an_error_listing_rows(tmp_path):
    rows = [(s, "abc" if i == 2 else "<0.5" if i == 7 else str(i)) for i, s in enumerate(SMALL)]
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], rows)
    # was: silently masked as "missing", only a count in data_report.json
    with pytest.raises(SystemExit, match=r"2 label\(s\) that are not numbers: row 2 \(y='abc'\), row 7 "
                                         r"\(y='<0.5'\)"):
        kcli.load_table(data, ["y"])


def test_rows_with_the_wrong_number_of_fields_are_an_error(tmp_path):
    data = tmp_path / "d.csv"
    lines = ["smiles,y", "CCO,1", "c1ccccc1,2,3", "CCN", *[f"{s},{i}" for i, s in enumerate(SMALL[3:])]]
    data.write_text("\n".join(lines) + "\n\n")  # a trailing blank line is no row
    with pytest.raises(SystemExit, match=r"2 row\(s\) whose number of fields differs from the header's 2: "
                                         r"row 1 \(3 fields, line 3\), row 2 \(1 fields, line 4\)"):
        kcli.load_table(data, ["y"])
    data.write_text("\n".join(lines[:2] + lines[4:]) + "\n\n")
    assert kcli.load_table(data, ["y"]).rows_read == len(SMALL) - 2
    # a quote never closed joins every later line into one row: said so, with its lines (was
    # only "row 1 (1 fields)" and the advice to quote cells that contain commas)
    data.write_text("\n".join(["smiles,y", "CCO,1", '"CCN,2', *lines[4:]]) + "\n")
    with pytest.raises(SystemExit, match=rf"row 1 \(1 fields, lines 3-{len(lines) - 1} joined by quotes; a quote "
                                         r"never closed joins all later lines into one row\)"):
        kcli.load_table(data, ["y"])


def test_a_target_without_labels_is_refused_before_anything_is_written(tmp_path):
    data = _csv(tmp_path / "d.csv", ["smiles", "y", "z"], [(s, "", i) for i, s in enumerate(SMALL * 2)])
    # was: trained, with every metric averaged over z alone under the heading "targets: y, z"
    with pytest.raises(SystemExit, match="target 'y' has no label in the 40 usable molecules"):
        kcli.main(_run(data, tmp_path / "run", targets=("y", "z")))
    assert not (tmp_path / "run" / "config.json").exists()


def test_a_single_class_classification_target_is_refused(tmp_path):
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, 1) for s in SMALL * 2])
    with pytest.raises(SystemExit, match="'y' has only class 1 in its 40 labelled molecules"):
        kcli.main(_run(data, tmp_path / "run", task="classification"))


def test_a_split_with_an_empty_subset_is_refused(tmp_path):
    # Acyclic molecules share the empty scaffold: the scaffold split put all 40 in test and
    # reported the test RMSE of a model trained on nothing.
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(ACYCLIC)])
    with pytest.raises(SystemExit, match=r"--split scaffold seed 0: the train and valid subset\(s\) would be "
                                         r"empty \(train 0, valid 0, test 40 of 40 molecules in 1 scaffold set"):
        kcli.main(_run(data, tmp_path / "run", extra=["--split", "scaffold"]))
    assert not (tmp_path / "run" / "config.json").exists()


def test_batch_size_one_trains(tmp_path):
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, 0.1 * i) for i, s in enumerate(SMALL * 2)])
    # was: every 1-molecule batch skipped as a "tail", so nothing was trained (train loss 0)
    assert kcli.main(_run(data, tmp_path / "run", extra=["--batch-size", "1", "--epochs", "1"])) == 0
    seed = json.loads((tmp_path / "run" / "seeds" / "seed_0.json").read_text())
    assert seed["members"][0]["curve"][0]["train_loss"] > 0


# ---------------------------------------------------------------------------- kflm2: metrics
def test_regression_metrics_say_which_tasks_they_leave_out():
    y = np.array([[1.0, np.nan], [2.0, np.nan], [4.0, np.nan]])
    m = regression_metrics(y, np.zeros((3, 2)), ["a", "b"])
    assert m["skipped_tasks"] == ["b"] and list(m["per_task"]) == ["a"]
    summary = summarise("regression", [{"metrics": {"test": m}}])
    assert summary["test"]["skipped_tasks_seed_counts"] == {"b": 1}


# ------------------------------------------------------------------------------------- images
def test_an_image_too_thin_for_the_view_is_a_clear_error(tmp_path):
    processor = DeepEncoderImageProcessor(image_size=128, tile_size=64)
    # was: PIL's "height and width must be > 0", naming neither the image nor the reason
    with pytest.raises(ValueError, match=r"\(images\[1\]\) is 3x5000 px: .*short side would be 0\.08 px"):
        processor.preprocess([Image.new("RGB", (30, 30)), Image.new("RGB", (3, 5000))])
    with pytest.raises(ValueError, match="1x10000 px"):
        processor.num_llm_positions((1, 10000))  # no count for what preprocess refuses
    assert processor.preprocess(Image.new("RGB", (1, 200)))["pixel_values"].shape == (1, 3, 128, 128)


def test_an_animation_is_refused_not_cut_to_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (40, 40), c) for c in ("red", "green", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    processor = DeepEncoderImageProcessor(image_size=128, tile_size=64)
    with pytest.raises(ValueError, match=r"anim\.gif' has 3 frames"):
        processor.preprocess(str(tmp_path / "anim.gif"))
    frames[0].save(tmp_path / "still.gif")
    assert processor.preprocess(str(tmp_path / "still.gif"))["pixel_values"].shape == (1, 3, 128, 128)


def test_premultiplied_la_images_load_like_la():
    la = Image.new("LA", (16, 16), (0, 255))
    la.paste((0, 0), (0, 0, 8, 16))  # left half transparent: white after compositing
    processor = DeepEncoderImageProcessor(image_size=128, tile_size=64)
    expected = processor.preprocess(la)["pixel_values"]
    assert torch.equal(processor.preprocess(la.convert("La"))["pixel_values"], expected)  # was a ValueError


# --------------------------------------------------------------------------------------- chat
def test_a_question_with_the_image_placeholder_is_refused():
    import deepmolm_plugin

    deepmolm_plugin.register()
    from deepmolm_plugin.gui.chat import build_prompt

    # was: a second <image> slot in the prompt for the one image
    with pytest.raises(ValueError, match="question 2 contains '<image>'"):
        build_prompt("qwen2", [("hi", "hello"), ("what is <image>?", None)])
    assert build_prompt("qwen2", [("what is this?", None)]).count("<image>") == 1
    # an earlier empty reply left its assistant turn open: the next question landed in it
    prompt = build_prompt("qwen2", [("first?", "  "), ("second?", None)])
    assert "first?" not in prompt and prompt.count("<image>") == 1
    assert prompt.endswith("<image>\nsecond?<|im_end|>\n<|im_start|>assistant\n")
