"""The feature cache's end-of-run note says WHICH of its two causes it is: new views (nothing to
do) or entries of another tower / dtype / image mode (use the same ones). Was: always "either
these views were not cached before, or the entries were made with another dtype ... image mode
or tower". The cache keeps one record per context (`contexts/<id>.json`) to tell them apart."""

import io
import json
import logging
import os
import shutil
from contextlib import redirect_stderr
from types import SimpleNamespace

import torch

from deepmolm_plugin.encoder import feature_cache
from deepmolm_plugin.encoder.feature_cache import (FORMAT, FeatureCache, merged_stats, opened_caches,
                                                   print_summary, summary_lines)
from deepmolm_plugin.encoder.tower import DeepEncoderVisionTower
from deepmolm_plugin.result_files import shared_mode


def _tower(config, cache, like=None, dtype=None):
    """A tower on `cache`; with `like`, that tower's weights (the same tower digest)."""
    args = SimpleNamespace(deepencoder_config=config.to_dict(), vision_tower_weights="random",
                           vision_feature_cache=str(cache))
    tower = DeepEncoderVisionTower("deepencoder", args)
    if like is not None:
        tower.vision_tower.load_state_dict(like.vision_tower.state_dict())
    if dtype is not None:
        tower.vision_tower.to(dtype)
    return tower


def _run(tower_factory, views):
    """One "run": open the cache (build the tower), look the views up; its summary lines."""
    with opened_caches() as caches:
        tower = tower_factory()
        tower(views)
    (root, totals), = merged_stats(caches).items()
    return tower, summary_lines(root, totals)


def _note(lines):
    assert len(lines) == 2, lines
    return lines[1]


def _records(root):
    return sorted((root / "contexts").glob("*.json"))


def test_new_views_of_a_cached_context_are_said_to_be_new(tmp_path, tiny_config):
    first, _ = _run(lambda: _tower(tiny_config, tmp_path), torch.randn(2, 3, 128, 128))
    _, lines = _run(lambda: _tower(tiny_config, tmp_path, like=first), torch.randn(2, 3, 128, 128))
    note = _note(lines)
    assert note.endswith("these views were not cached before (the cache holds entries of this tower, dtype and "
                         "image mode, for other views)"), note
    assert "another dtype" not in note and "either" not in note


def test_another_dtype_is_named_with_what_the_cache_holds(tmp_path, tiny_config):
    first, _ = _run(lambda: _tower(tiny_config, tmp_path), torch.randn(2, 3, 128, 128))
    bf16, lines = _run(lambda: _tower(tiny_config, tmp_path, like=first, dtype=torch.bfloat16),
                       torch.randn(2, 3, 128, 128))
    note = _note(lines)
    assert (f"the cache holds no entries made with this run's tower / dtype / image mode; it holds entries of: "
            f"float32, image mode base, tower {first.tower_digest()[:12]} (this run: bfloat16, image mode base, "
            f"tower {bf16.tower_digest()[:12]}): another dtype (model_vqa's --dtype") in note, note
    # the same weights in bfloat16 have another digest: not called another tower
    assert note.endswith("; whether the tower is the same cannot be told: its digest covers the weights in the "
                         "dtype they are held in"), note
    assert "not cached before" not in note and "another tower" not in note


def test_another_tower_is_named(tmp_path, tiny_config):
    first, _ = _run(lambda: _tower(tiny_config, tmp_path), torch.randn(1, 3, 128, 128))
    other, lines = _run(lambda: _tower(tiny_config, tmp_path), torch.randn(1, 3, 128, 128))  # fresh random weights
    note = _note(lines)
    assert note.endswith(f"tower {first.tower_digest()[:12]} (this run: float32, image mode base, tower "
                         f"{other.tower_digest()[:12]}): another tower"), note


def test_one_record_per_context_as_entries_are_written(tmp_path, tiny_config):
    tower = _tower(tiny_config, tmp_path)
    for _ in range(3):
        tower(torch.randn(2, 3, 128, 128))
    (record,) = _records(tmp_path)
    digest = tower.tower_digest()
    assert json.loads(record.read_text()) == {"format": FORMAT, "image_mode": "base", "dtype": "float32",
                                              "tower": digest[:12]}
    assert record.stem == feature_cache._context_id(digest, "base", "torch.float32")
    assert record.stat().st_mode & 0o777 == shared_mode()  # as entries: 0666 less the umask
    assert list((tmp_path / ".tmp").iterdir()) == []  # written through .tmp and renamed, as entries are
    # entries are still recognised by their names only; the stale-file clean-up leaves records alone
    shutil.move(str(record), str(tmp_path / "kept.json"))
    for folder in tmp_path.iterdir():
        if folder.is_dir() and folder.name not in ("contexts", ".tmp"):
            shutil.rmtree(folder)
    shutil.move(str(tmp_path / "kept.json"), str(record))
    old = record.stat().st_mtime - 2 * 3600
    os.utime(record, (old, old))
    again = FeatureCache(tmp_path)
    assert not again.held_entries and again.removed_stale == 0 and record.exists()


def test_a_read_only_cache_writes_no_record(tmp_path, tiny_config, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: (False if str(p) == str(tmp_path) and mode & os.W_OK
                                                       else real_access(p, mode)))
    tower = _tower(tiny_config, tmp_path)
    tower(torch.randn(1, 3, 128, 128))
    assert tower.feature_cache.read_only and not (tmp_path / "contexts").exists()


def test_a_record_that_cannot_be_written_costs_nothing_but_a_warning(tmp_path, tiny_config, caplog):
    (tmp_path / "contexts").write_text("a file where the records' folder belongs")
    with caplog.at_level(logging.WARNING, logger="deepmolm_plugin.encoder.feature_cache"):
        tower = _tower(tiny_config, tmp_path)
        x = torch.randn(2, 3, 128, 128)
        expected = tower(x)
        tower(torch.randn(2, 3, 128, 128))
        torch.testing.assert_close(tower(x), expected)
    assert tower.feature_cache.stats()["unstored"] == 0 and tower.feature_cache.hits == 2
    assert caplog.text.count("cannot write its record of what made its entries") == 1, caplog.text


def test_a_cache_filled_before_records_keeps_both_causes_and_says_why(tmp_path, tiny_config):
    first, _ = _run(lambda: _tower(tiny_config, tmp_path), torch.randn(2, 3, 128, 128))
    shutil.rmtree(tmp_path / "contexts")  # as a cache filled by an older plugin
    bf16, lines = _run(lambda: _tower(tiny_config, tmp_path, like=first, dtype=torch.bfloat16),
                       torch.randn(1, 3, 128, 128))
    note = _note(lines)
    assert "either these views were not cached before, or the entries were made with another dtype" in note
    assert note.endswith("the cache cannot tell which: its entries were stored before it kept a record of what "
                         "made them"), note
    # its first record is preceded by one saying that older entries may be of any context
    assert sorted(p.stem for p in _records(tmp_path)) == sorted(
        ["before-record", feature_cache._context_id(bf16.tower_digest(), "base", "torch.bfloat16")])
    _, lines = _run(lambda: _tower(tiny_config, tmp_path, like=first), torch.randn(1, 3, 128, 128))
    note = _note(lines)
    assert "it holds entries of: bfloat16, image mode base" in note
    assert note.endswith("it also holds entries stored before it kept this record, which may be of this run's "
                         "tower, dtype and image mode (then these views were not cached before)"), note


def test_training_summary_carries_the_cause(tmp_path, tiny_config, monkeypatch):
    from deepmolm_plugin.train import report_feature_cache
    from deepmolm_plugin.training.options import PROG

    monkeypatch.setenv("RANK", "0")
    first, _ = _run(lambda: _tower(tiny_config, tmp_path), torch.randn(1, 3, 128, 128))
    with opened_caches() as caches:
        _tower(tiny_config, tmp_path, like=first, dtype=torch.bfloat16)(torch.randn(1, 3, 128, 128))
    err = io.StringIO()
    with redirect_stderr(err):
        report_feature_cache(caches, str(tmp_path))
    lines = err.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith(f"{PROG}: note: feature cache {tmp_path}"), lines
    assert "holds no entries made with this run's tower / dtype / image mode" in lines[1]
    assert "another dtype" in lines[1]


def test_model_vqa_summary_carries_the_cause(tmp_path, tiny_config):
    first, _ = _run(lambda: _tower(tiny_config, tmp_path), torch.randn(1, 3, 128, 128))
    with opened_caches() as caches:
        _tower(tiny_config, tmp_path, like=first)(torch.randn(1, 3, 128, 128))
    out = io.StringIO()
    print_summary(caches, file=out)
    assert out.getvalue().splitlines()[1].endswith("these views were not cached before (the cache holds entries "
                                                   "of this tower, dtype and image mode, for other views)")
