"""Frozen-tower feature cache: one encode per view, keyed by content, weights, mode and dtype;
safe against damaged files and concurrent writers; refused for a training tower."""

import logging
import multiprocessing
import os
from types import SimpleNamespace

import pytest
import torch

from deepmolm_plugin.encoder.feature_cache import FeatureCache, tensor_digest
from deepmolm_plugin.encoder.tower import DeepEncoderVisionTower


def _tower(config, cache=None, **kw):
    args = SimpleNamespace(deepencoder_config=config.to_dict(), vision_tower_weights="random",
                           vision_feature_cache=None if cache is None else str(cache), **kw)
    return DeepEncoderVisionTower("deepencoder", args)


class Calls:
    """Counts encoder forwards and the views they took."""

    def __init__(self, tower):
        self.calls, self.views = 0, 0
        tower.vision_tower.register_forward_pre_hook(self._hook)

    def _hook(self, module, inputs):
        self.calls += 1
        self.views += inputs[0].shape[0]


def _files(root):
    return sorted(p for p in root.rglob("*.safetensors"))


def test_second_pass_reads_every_view(tmp_path, tiny_config):
    tower = _tower(tiny_config, tmp_path / "cache")
    plain = _tower(tiny_config)
    plain.vision_tower.load_state_dict(tower.vision_tower.state_dict())
    calls = Calls(tower)
    x = torch.randn(3, 3, 128, 128)
    first = tower(x)
    assert (calls.calls, calls.views) == (1, 3) and len(_files(tmp_path / "cache")) == 3
    second = tower(x)
    assert calls.calls == 1  # nothing encoded again
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(second, plain(x))
    assert tower.feature_cache.stats()["hits"] == 3

    # A new batch mixing seen and unseen views encodes only the unseen ones, in one call.
    y = torch.cat([x[1:2], torch.randn(2, 3, 128, 128)])
    torch.testing.assert_close(tower(y), plain(y))
    assert (calls.calls, calls.views) == (2, 5)


def test_shared_across_towers_and_runs_with_the_same_weights(tmp_path, tiny_config):
    first = _tower(tiny_config, tmp_path)
    x = torch.randn(2, 3, 128, 128)
    expected = first(x)
    again = _tower(tiny_config, tmp_path)
    again.vision_tower.load_state_dict(first.vision_tower.state_dict())
    calls = Calls(again)
    torch.testing.assert_close(again(x), expected)
    assert calls.calls == 0


def test_other_weights_mode_or_dtype_miss(tmp_path, tiny_config):
    tower = _tower(tiny_config, tmp_path)
    x = torch.randn(1, 3, 128, 128)
    tower(x)
    calls = Calls(tower)
    with torch.no_grad():  # weights changed in place: the digest notices
        tower.vision_tower.clip.ln_pre.weight.add_(1.0)
    tower(x)
    assert calls.calls == 1
    other_mode = _tower(tiny_config, tmp_path, image_mode="tiles")
    other_mode.vision_tower.load_state_dict(tower.vision_tower.state_dict())
    mode_calls = Calls(other_mode)
    other_mode(x)
    assert mode_calls.calls == 1
    tower.vision_tower.to(torch.bfloat16)
    tower(x)
    assert calls.calls == 2
    assert len(_files(tmp_path)) == 4


def test_weights_written_through_param_data_miss(tmp_path, tiny_config):
    """`p.data.copy_(w)` (hand-written weight loaders) bumps no version counter: the cache
    served the old weights' features for the new weights until the sampled values joined
    the signature."""
    tower = _tower(tiny_config, tmp_path)
    x = torch.randn(1, 3, 128, 128)
    before = tower(x)
    calls = Calls(tower)
    for p in tower.vision_tower.sam.parameters():
        p.data.copy_(torch.randn_like(p))
    after = tower(x)
    assert calls.calls == 1 and not torch.allclose(before, after)
    plain = _tower(tiny_config)
    plain.vision_tower.load_state_dict(tower.vision_tower.state_dict())
    torch.testing.assert_close(after, plain(x))
    tower(x)
    assert calls.calls == 1  # the new weights' features are served from the cache


def _fresh(tower):
    """An uncached copy of `tower` as it is now: what a forward must give."""
    import copy

    plain = copy.deepcopy(tower)
    plain.feature_cache = None
    return plain


@pytest.mark.parametrize("edit", ["activation", "eps", "encoder"])
def test_edits_that_change_no_tensor_miss(tmp_path, tiny_config, edit):
    """A swapped activation, an edited norm eps, or an encoder of another configuration put
    in the tower's place with the same weights: the output changes, no tensor does. The
    cache served the old features for all three."""
    from deepmolm_plugin.encoder.model import DeepEncoder

    tower = _tower(tiny_config, tmp_path)
    x = torch.randn(1, 3, 128, 128)
    before = tower(x)
    if edit == "activation":
        tower.vision_tower.sam.blocks[0].mlp.act = torch.nn.ReLU()
    elif edit == "eps":
        tower.vision_tower.clip.ln_pre.eps = 10.0
    else:
        other = DeepEncoder(tiny_config.__class__(**{**tiny_config.to_dict(), "clip_layer_norm_eps": 1.0}))
        other.load_state_dict(tower.vision_tower.state_dict())
        tower.vision_tower = other.requires_grad_(False)
    expected = _fresh(tower)(x)
    assert not torch.allclose(before, expected)
    torch.testing.assert_close(tower(x), expected)
    assert tower.feature_cache.stats()["hits"] == 0


def test_autocast_and_plain_forwards_keep_their_own_entries(tmp_path, tiny_config, caplog):
    """Under autocast (bf16 on an fp32 tower: `--bf16 True` training) entries were filled
    with bf16 features that every later read called damaged, and plain fp32 entries were
    served to autocast forwards."""
    tower = _tower(tiny_config, tmp_path)
    x = torch.randn(1, 3, 128, 128)
    plain = tower(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = _fresh(tower)(x)
        with caplog.at_level(logging.WARNING, logger="deepmolm_plugin.encoder.feature_cache"):
            first, second = tower(x), tower(x)
    assert not torch.equal(expected, plain)
    torch.testing.assert_close(first, expected, rtol=0, atol=0)
    torch.testing.assert_close(second, expected, rtol=0, atol=0)
    assert "damaged" not in caplog.text
    assert tower.feature_cache.stats()["hits"] == 1 and len(_files(tmp_path)) == 2
    torch.testing.assert_close(tower(x), plain, rtol=0, atol=0)  # the plain entry still serves


def test_entries_that_cannot_be_read_or_written_cost_no_run(tmp_path, tiny_config, caplog):
    """A folder in an entry's place crashed the run (IsADirectoryError), as did a write that
    failed (a full disk): the features are computed and used, the problem reported once."""
    tower = _tower(tiny_config, tmp_path)
    x = torch.randn(2, 3, 128, 128)
    expected = _fresh(tower)(x)
    tower(x)
    blocked = _files(tmp_path)[0]
    blocked.unlink()
    blocked.mkdir()  # neither readable nor replaceable
    with caplog.at_level(logging.WARNING, logger="deepmolm_plugin.encoder.feature_cache"):
        torch.testing.assert_close(tower(x), expected)
        torch.testing.assert_close(tower(x), expected)
    stats = tower.feature_cache.stats()
    assert stats["hits"] == 2 and stats["unreadable"] == 2 and stats["unstored"] == 2 and stats["damaged"] == 0
    assert caplog.text.count("cannot store") == 1 and caplog.text.count("cannot be read") == 1
    with pytest.raises(ValueError, match="folder name is empty"):
        FeatureCache("")


def test_unreadable_entries_are_reported_once_not_as_damaged_per_view(tmp_path, tiny_config, caplog):
    # was: "damaged" for every view on every forward (here: a file where the entries'
    # sub-folders belong, ENOTDIR; a cache copied without read permission is alike)
    import shutil

    tower = _tower(tiny_config, tmp_path)
    x = torch.randn(2, 3, 128, 128)
    expected = tower(x)
    for folder in {path.parent for path in _files(tmp_path)}:
        shutil.rmtree(folder)
        folder.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="deepmolm_plugin.encoder.feature_cache"):
        for _ in range(3):
            torch.testing.assert_close(tower(x), expected)
    stats = tower.feature_cache.stats()
    assert stats["unreadable"] == 6 and stats["damaged"] == 0 and stats["hits"] == 0
    assert caplog.text.count("cannot be read") == 1 and "damaged" not in caplog.text


def test_a_store_failure_is_reported_once_whatever_its_text(tmp_path, tiny_config, caplog, monkeypatch):
    # safetensors' error text names the random temporary file: every view was a "new" reason
    from safetensors import SafetensorError

    import deepmolm_plugin.encoder.feature_cache as feature_cache

    def failing_save(tensors, filename, metadata=None):
        raise SafetensorError(f"Error while serializing: I/O error writing {filename}")

    monkeypatch.setattr(feature_cache, "save_tensors", failing_save)
    tower = _tower(tiny_config, tmp_path)
    with caplog.at_level(logging.WARNING, logger="deepmolm_plugin.encoder.feature_cache"):
        tower(torch.randn(3, 3, 128, 128))
    assert tower.feature_cache.unstored == 3 and caplog.text.count("cannot store") == 1


def test_a_deeply_nested_header_is_damage_not_a_crash(tmp_path, tiny_config):
    # json.loads raised RecursionError, which ended the forward
    tower = _tower(tiny_config, tmp_path)
    x = torch.randn(1, 3, 128, 128)
    expected = tower(x)
    (path,) = _files(tmp_path)
    header = b"[" * 100_000 + b"]" * 100_000
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    torch.testing.assert_close(tower(x), expected)
    assert tower.feature_cache.damaged == 1


def test_training_tower_refuses_the_cache(tmp_path, tiny_config):
    tower = _tower(tiny_config, tmp_path, unfreeze_mm_vision_tower=True)
    with pytest.raises(RuntimeError, match="frozen tower.*--unfreeze_mm_vision_tower"):
        tower(torch.randn(1, 3, 128, 128))
    frozen = _tower(tiny_config, tmp_path)
    frozen.requires_grad_(True)  # from outside: the message must not name an option never given
    with pytest.raises(RuntimeError, match="frozen tower.*set from outside the tower") as error:
        frozen(torch.randn(1, 3, 128, 128))
    assert "--unfreeze" not in str(error.value)


def test_damaged_file_is_reported_recomputed_and_replaced(tmp_path, tiny_config, caplog):
    tower = _tower(tiny_config, tmp_path)
    x = torch.randn(1, 3, 128, 128)
    expected = tower(x)
    (path,) = _files(tmp_path)
    for damage in (lambda b: b[: len(b) // 2], lambda b: b[:-4] + b"\x00\x00\x80\x7f", lambda b: b""):
        path.write_bytes(damage(path.read_bytes()))
        with caplog.at_level(logging.WARNING, logger="deepmolm_plugin.encoder.feature_cache"):
            torch.testing.assert_close(tower(x), expected)
        assert "damaged" in caplog.text and str(path) in caplog.text
        caplog.clear()
        assert tower.feature_cache.get(path.stem) is not None  # replaced by a whole entry
    assert tower.feature_cache.damaged == 3


def test_stray_temporary_files_are_ignored(tmp_path, tiny_config):
    tower = _tower(tiny_config, tmp_path)
    x = torch.randn(1, 3, 128, 128)
    expected = tower(x)
    (path,) = _files(tmp_path)
    (path.parent / ".tmp-otherhost-1-deadbeef").write_bytes(b"half a file")  # a writer that died
    calls = Calls(tower)
    torch.testing.assert_close(tower(x), expected)
    assert calls.calls == 0


def _writer(root, key, value, rounds):
    cache = FeatureCache(root)
    for _ in range(rounds):
        cache.put(key, torch.full((64, 256), value))


def test_concurrent_writers_never_expose_partial_files(tmp_path):
    key = "ab" + "0" * 62
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_writer, args=(tmp_path, key, 1.0, 200)) for _ in range(2)]
    for w in writers:
        w.start()
    reader = FeatureCache(tmp_path)
    seen = 0
    while any(w.is_alive() for w in writers):
        features = reader.get(key)
        if features is not None:
            seen += 1
            assert torch.equal(features, torch.full((64, 256), 1.0))
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert seen > 0 and reader.damaged == 0 and reader.get(key) is not None
    assert [p.name for p in (tmp_path / "ab").iterdir()] == [f"{key}.safetensors"]  # no temporary left


def test_list_of_views_is_one_call_per_size(tiny_config):
    tower = _tower(tiny_config)
    calls = Calls(tower)
    tiles = [torch.randn(2, 3, 64, 64), None, torch.randn(3, 3, 64, 64), torch.randn(0, 3, 64, 64),
             torch.randn(3, 128, 128)]
    out = tower(tiles)
    assert calls.calls == 2  # all 64 px tiles together, the 128 px view alone
    assert [None if o is None else tuple(o.shape) for o in out] == [(2, 1, 64), None, (3, 1, 64), None, (1, 4, 64)]
    torch.testing.assert_close(out[2], tower(tiles[2]))


def test_key_depends_on_view_bytes_dtype_and_shape():
    x = torch.zeros(3, 8, 8)
    assert tensor_digest(x) == tensor_digest(x.clone())
    assert tensor_digest(x) != tensor_digest(x.to(torch.bfloat16))
    assert tensor_digest(x) != tensor_digest(x.reshape(3, 4, 16))
    y = x.clone()
    y[0, 0, 0] = 1e-7
    assert tensor_digest(x) != tensor_digest(y)


def test_cache_folder_that_is_a_file_is_an_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        FeatureCache(tmp_path / "f")


def test_launcher_option_fills_the_cache_once(tiny_setup, tmp_path):
    """`--vision_feature_cache` through the real launcher: the first run stores every view
    it encodes, a second run on the same data and weights writes nothing new."""
    from host_fixtures import run_module, train_args

    cache = tmp_path / "features"
    weights = tmp_path / "tower"
    from deepmolm_plugin.encoder import DeepEncoder, DeepEncoderConfig

    DeepEncoder(DeepEncoderConfig.load(tiny_setup["encoder_config"])).save_pretrained(weights)
    for run in ("first", "second"):
        args = train_args(tiny_setup, tmp_path / run, "--vision_feature_cache", str(cache), steps=4)
        args[args.index("--vision_tower_weights") + 1] = str(weights)
        run_module("deepmolm_plugin.train", args, cwd=tmp_path)
        files = {p: p.stat().st_mtime_ns for p in _files(cache)}
        if run == "first":
            assert len(files) == len(tiny_setup["records"])  # one global view per record
            stored = files
    assert files == stored  # nothing encoded (nor written) again

    refused = run_module("deepmolm_plugin.train", [*train_args(tiny_setup, tmp_path / "bad"),
                                                   "--vision_feature_cache", str(cache),
                                                   "--unfreeze_mm_vision_tower", "True"], cwd=tmp_path, check=False)
    assert refused.returncode != 0 and "--vision_feature_cache" in refused.stderr


def test_zero3_ranks_share_the_cache_and_stay_in_step(tiny_setup, tmp_path):
    """Two CPU ranks under DeepSpeed ZeRO-3 (every tower weight partitioned): the digest
    gathers the weights, and a rank whose views are all cached still joins the encoder's
    weight gathers when the other rank encodes (without that it would wait forever).
    The second run adds unseen records, so its batches mix hits and misses per rank."""
    import json
    import subprocess
    import sys

    from host_fixtures import ROOT, train_args

    cache = tmp_path / "features"
    more = json.loads(tiny_setup["data"].read_text()) + [
        {"id": f"new{i}", "smiles": s, "conversations": [
            {"from": "human", "value": "<image>\nWhat is this molecule?"},
            {"from": "gpt", "value": f"It is molecule {i}."}]}
        for i, s in enumerate(["CCCC", "CCCl", "c1ccncc1", "OCCO"])]
    (tmp_path / "more.json").write_text(json.dumps(more))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    counts = []
    for run, data in (("first", tiny_setup["data"]), ("second", tmp_path / "more.json")):
        args = train_args(tiny_setup, tmp_path / run, "--deepspeed", str(ROOT / "scripts" / "zero3.json"),
                          "--use_cpu", "True", "--vision_feature_cache", str(cache),
                          "--per_device_train_batch_size", "1", steps=4)
        args[args.index("--data_path") + 1] = str(data)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "deepmolm_plugin.train", *args]
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, text=True, capture_output=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-6000:]
        counts.append(len(_files(cache)))
    assert counts[0] == 4 and counts[1] > 4


def test_zero3_tiles_mode_with_tiles_on_one_rank_only(tiny_setup, tmp_path):
    """Tiles mode under ZeRO-3, two CPU ranks, one record each: a wide image (tiles) and a
    small one (one view, no tiles). The rank without tiles projected nothing where the
    other projected its tiles, and the run aborted at step 1 ("collective mismatch";
    NCCL would hang). It now runs a blank tile with the others, through the feature cache."""
    import json
    import subprocess
    import sys

    from PIL import Image, ImageDraw

    from host_fixtures import ROOT, train_args

    records = []
    for i, (smiles, size) in enumerate([("CCO", (200, 150)), ("c1ccccc1", (50, 50))]):
        picture = Image.new("RGB", size, "white")
        ImageDraw.Draw(picture).line((0, 0, *size), fill="black", width=3)
        picture.save(tmp_path / f"m{i}.png")
        records.append({"id": f"m{i}", "image": f"m{i}.png", "smiles": smiles, "conversations": [
            {"from": "human", "value": "<image>\nWhat is this molecule?"}, {"from": "gpt", "value": f"Molecule {i}."}]})
    (tmp_path / "train.json").write_text(json.dumps(records))
    args = train_args(tiny_setup, tmp_path / "out", "--deepspeed", str(ROOT / "scripts" / "zero3.json"),
                      "--use_cpu", "True", "--image_mode", "tiles", "--vision_feature_cache", str(tmp_path / "cache"),
                      "--per_device_train_batch_size", "1", steps=2)
    args[args.index("--data_path") + 1] = str(tmp_path / "train.json")
    args += ["--image_folder", str(tmp_path)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "deepmolm_plugin.train", *args], cwd=tmp_path, env=env, text=True,
                          capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert proc.stdout.count("'loss'") + proc.stderr.count("'loss'") == 2


def test_all_hits_rank_joins_another_ranks_encode_under_zero3(tmp_path, tiny_config, monkeypatch):
    """The lockstep rule alone: weights marked as ZeRO-3 partitioned, another rank
    reporting a miss (the all-reduce returns 1): this rank runs one view, output unused."""
    tower = _tower(tiny_config, tmp_path)
    x = torch.randn(2, 3, 128, 128)
    expected = tower(x)  # fills the cache
    for p in tower.vision_tower.parameters():
        p.ds_id = 0
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda flag, op=None: flag.fill_(1))
    calls = Calls(tower)
    torch.testing.assert_close(tower(x), expected)
    assert (calls.calls, calls.views) == (1, 1)
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda flag, op=None: flag)  # nobody misses
    tower(x)
    assert calls.calls == 1


def test_a_file_named_like_the_temporary_folder_costs_storing_not_the_run(tmp_path, tiny_config, caplog):
    # was: NotADirectoryError from the cache's start-up clean-up, after the LLM had loaded
    (tmp_path / ".tmp").write_text("x")
    with caplog.at_level(logging.WARNING):
        tower = _tower(tiny_config, tmp_path)
        x = torch.randn(1, 3, 128, 128)
        expected = tower(x)
    assert "cannot list its temporary folder" in caplog.text
    assert tower.feature_cache.stats()["unstored"] == 1 and _files(tmp_path) == []
    torch.testing.assert_close(tower(x), expected)


def test_a_tower_built_under_inference_mode_can_use_the_cache(tmp_path, tiny_config):
    # was: "Inference tensors do not track version counter" from the weights' signature
    with torch.inference_mode():
        tower = _tower(tiny_config, tmp_path)
        x = torch.randn(1, 3, 128, 128)
        first = tower(x)
        assert torch.equal(tower(x), first) and tower.feature_cache.hits == 1
        for p in tower.vision_tower.parameters():  # other weights: a miss, not stale features
            p.add_(0.5)
        tower(x)
        assert tower.feature_cache.misses == 2


def test_killed_writers_temporary_files_are_removed_once_stale(tmp_path, tiny_config):
    # was: left in the entry folders for ever (a killed run, every restart)
    tower = _tower(tiny_config, tmp_path)
    tower(torch.randn(2, 3, 128, 128))
    tmp = tmp_path / ".tmp"
    assert len(_files(tmp_path)) == 2 and list(tmp.iterdir()) == []  # written, renamed away
    stale, fresh = tmp / "host-1-aa.part", tmp / "host-2-bb.part"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")  # a live writer on another rank
    old = stale.stat().st_mtime - 2 * 3600
    os.utime(stale, (old, old))
    again = FeatureCache(tmp_path)
    assert again.removed_stale == 1 and not stale.exists() and fresh.exists()
    assert len(_files(tmp_path)) == 2


def test_a_read_only_cache_serves_what_it_holds(tmp_path, tiny_config, monkeypatch, caplog):
    # was: refused ("not writable"): a cache filled once and shared on a read-only mount
    from deepmolm_plugin import usage

    filled = _tower(tiny_config, tmp_path)
    x, new = torch.randn(2, 3, 128, 128), torch.randn(1, 3, 128, 128)
    expected = filled(x)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: (False if str(p) == str(tmp_path) and mode & os.W_OK
                                                       else real_access(p, mode)))
    assert usage.cache_folder(tmp_path, "--vision_feature_cache") == tmp_path
    with pytest.raises(usage.UsageError, match="is not writable"):  # a new cache there still cannot be made
        usage.cache_folder(tmp_path / "new", "--vision_feature_cache")
    with caplog.at_level(logging.WARNING, logger="deepmolm_plugin.encoder.feature_cache"):
        tower = filled
        tower.enable_feature_cache(tmp_path)  # the same weights, the cache opened read-only
        torch.testing.assert_close(tower(x), expected, rtol=0, atol=0)
        tower(new)
        tower(new)
    stats = tower.feature_cache.stats()
    assert (stats["hits"], stats["unstored"]) == (2, 2) and len(_files(tmp_path)) == 2
    assert caplog.text.count("is read-only") == 1 and "cannot store" not in caplog.text


def test_non_finite_features_are_used_but_never_stored(tmp_path, tiny_config, caplog):
    """Was: a NaN output (damaged weights, float16 overflow) went into the cache and every
    later run read it back as the view's features."""
    tower = _tower(tiny_config, tmp_path)
    with torch.no_grad():
        next(tower.parameters()).fill_(float("nan"))
    x = torch.randn(1, 3, 128, 128)
    with caplog.at_level(logging.WARNING):
        out = tower(x)
    assert torch.isnan(out).any()
    assert tower.feature_cache.stats()["unstored"] == 1 and _files(tmp_path) == []
    assert "are not finite (NaN or inf): not stored" in caplog.text


def test_only_the_writers_own_temporary_files_are_removed(tmp_path):
    """was: every file older than an hour in `<root>/.tmp/` was deleted: a project folder
    given as the cache by mistake lost its own `.tmp/` files."""
    (tmp_path / "notes.txt").write_text("a folder that is not empty")
    tmp = tmp_path / ".tmp"
    tmp.mkdir()
    mine, part = tmp / "my_notes.txt", tmp / "node1-4242-0123abcd.part"
    for path in (mine, part):
        path.write_text("old")
        old = path.stat().st_mtime - 2 * 3600
        os.utime(path, (old, old))
    assert FeatureCache(tmp_path).removed_stale == 1
    assert mine.read_text() == "old" and not part.exists()


def _stored_entry(tmp_path, tiny_config):
    tower = _tower(tiny_config, tmp_path)
    x = torch.randn(1, 3, 128, 128)
    expected = tower(x)
    (path,) = _files(tmp_path)
    return tower, x, expected, path


def test_a_stored_non_finite_entry_is_damaged_not_served(tmp_path, tiny_config, caplog):
    """was: served as a hit for ever (entries written before put() refused NaN)."""
    import hashlib

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from deepmolm_plugin.encoder.feature_cache import _raw_bytes

    tower, x, expected, path = _stored_entry(tmp_path, tiny_config)
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    features = load_file(str(path))["features"]
    features[0, 0] = float("nan")
    metadata["sha256"] = hashlib.sha256(_raw_bytes(features)).hexdigest()  # a whole, consistent entry
    save_file({"features": features}, str(path), metadata=metadata)
    with caplog.at_level(logging.WARNING, logger="deepmolm_plugin.encoder.feature_cache"):
        torch.testing.assert_close(tower(x), expected)
    assert tower.feature_cache.damaged == 1 and "not finite" in caplog.text
    assert tower.feature_cache.get(path.stem) is not None  # replaced by the finite features


def test_an_entry_that_is_a_fifo_or_too_large_does_not_block_or_fill_memory(tmp_path, tiny_config, caplog):
    """was: a FIFO in an entry's place blocked the forward for ever (a link to /dev/zero
    read without end): only a regular file of a plausible size is read."""
    import threading

    tower, x, expected, path = _stored_entry(tmp_path, tiny_config)
    path.unlink()
    os.mkfifo(path)
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("out", tower(x)), daemon=True)
    with caplog.at_level(logging.WARNING, logger="deepmolm_plugin.encoder.feature_cache"):
        worker.start()
        worker.join(60)
    assert not worker.is_alive(), "the forward blocked on the FIFO"
    torch.testing.assert_close(result["out"], expected)
    assert tower.feature_cache.unreadable == 1 and "not a regular file" in caplog.text
    path.unlink()
    tower(x)  # stored again
    path.write_bytes(path.read_bytes() + b"\0" * (2 << 20))
    torch.testing.assert_close(tower(x), expected)
    assert tower.feature_cache.damaged == 1 and "more than features of the expected shape take" in caplog.text
