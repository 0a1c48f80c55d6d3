"""Review rv12B findings 6-8, mended: the feature-cache note of ranks (or one process's caches)
sharing a fresh cache, the context record written before its entry, and generate's cap at the
room the context leaves whichever way the call sets its length."""

from __future__ import annotations

import errno
import io
import multiprocessing
import os
from contextlib import redirect_stderr

import pytest
import torch
from transformers import GenerationConfig

from deepmolm_plugin.encoder import feature_cache
from deepmolm_plugin.encoder.feature_cache import FeatureCache, print_summary
from deepmolm_plugin.training.options import PROG
from test_chat_vqa_twelfth import PROMPT, ROOM, _fp, _generate, _image, model  # noqa: F401 (model: a fixture)

TOWER = "a" * 64


def _view(value: float) -> torch.Tensor:
    return torch.full((3, 8, 8), value)


def _miss_and_store(cache: FeatureCache, value: float, dtype=torch.float32) -> None:
    """One looked-up view that misses and is stored, as the tower does."""
    key = cache.key(_view(value), TOWER, "base", dtype)
    assert cache.get(key) is None
    cache.put(key, torch.zeros(4, 5))


def _context(dtype) -> str:
    return feature_cache._context_id(TOWER, "base", str(dtype))


# --- 6. openings of one cache in one run count as the first of them ------------------------------
def test_a_fresh_cache_opened_twice_in_one_process_gives_no_note(tmp_path):
    first = FeatureCache(tmp_path)
    _miss_and_store(first, 1.0)
    later = FeatureCache(tmp_path)  # opened after the first one stored an entry
    _miss_and_store(later, 2.0)
    out = io.StringIO()
    print_summary([first, later], file=out)
    # was: "held entries, but none matched ...: its entries were stored before it kept a record"
    assert out.getvalue() == f"feature cache {tmp_path}: 0 hits, 2 misses, 0 damaged, 0 unreadable, 0 unstored\n"


def _two_ranks(rank, store, roots, queue):
    """Rank 1 opens each cache after rank 0 has stored its first entry there (model loads take
    their own time on each rank); each rank looks up views of its own, none cached."""
    import torch.distributed as dist

    from deepmolm_plugin.train import report_feature_cache

    os.environ["RANK"] = str(rank)
    dist.init_process_group("gloo", store=dist.FileStore(store, 2), rank=rank, world_size=2)
    said = {}
    for name, root in roots.items():
        if name == "older" and rank == 0:  # a cache filled before this run, by a float32 run
            _miss_and_store(FeatureCache(root), 9.0)
        dist.barrier()
        dtype = torch.bfloat16 if name == "older" else torch.float32
        first = 1 if name == "older" else 0  # the rank that opens this cache first
        cache = None
        if rank == first:
            cache = FeatureCache(root)
            _miss_and_store(cache, 1.0, dtype)
        dist.barrier()
        if rank != first:
            cache = FeatureCache(root)
            _miss_and_store(cache, 2.0, dtype)
        err = io.StringIO()
        with redirect_stderr(err):
            report_feature_cache([cache], root)
        said[name] = err.getvalue()
    dist.destroy_process_group()
    queue.put((rank, said))


def test_ranks_sharing_a_cache_say_what_it_held_before_the_run(tmp_path):
    roots = {"fresh": str(tmp_path / "fresh"), "older": str(tmp_path / "older")}
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_two_ranks, args=(rank, str(tmp_path / "store"), roots, queue))
               for rank in (0, 1)]
    for worker in workers:
        worker.start()
    said = dict(queue.get(timeout=240) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
    assert said[1] == {"fresh": "", "older": ""}
    # a cache this run created: no note (was: "its entries were stored before it kept a record")
    assert said[0]["fresh"] == (f"{PROG}: feature cache {roots['fresh']} (summed over 2 ranks): 0 hits, 2 misses, "
                                "0 damaged, 0 unreadable, 0 unstored\n")
    # a float32 cache looked up in bfloat16: rank 0 opened it after rank 1 stored this run's first
    # bfloat16 entry; the cause is the dtype (was: "these views were not cached before", from
    # the record rank 1 wrote in this run)
    note = said[0]["older"].splitlines()[1]
    assert "holds no entries made with this run's tower / dtype / image mode" in note, note
    assert "another dtype" in note and "not cached before" not in note, note


# --- 7. the context record is on disk before its first entry --------------------------------------
def test_a_cache_opened_between_an_entry_and_its_record_finds_the_record(tmp_path, monkeypatch):
    writer = FeatureCache(tmp_path)
    opened = []
    real_write = FeatureCache._write

    def write_then_open(self, path, write):
        real_write(self, path, write)
        if path.suffix == ".safetensors" and self is writer:  # another process opens the cache right now
            opened.append(FeatureCache(tmp_path))

    monkeypatch.setattr(FeatureCache, "_write", write_then_open)
    _miss_and_store(writer, 1.0)
    other, = opened
    _miss_and_store(other, 2.0)
    # was: no record yet, so the other one wrote before-record.json into a cache that never held
    # an entry without its record, and every later note hedged with it
    assert other.held_entries and set(other.recorded) == {_context(torch.float32)}
    assert sorted(p.name for p in (tmp_path / "contexts").iterdir()) == [f"{_context(torch.float32)}.json"]


def test_a_record_that_failed_once_is_written_with_the_next_entry(tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path)
    real_write, failed = FeatureCache._write, []

    def disk_full_once(self, path, write):
        if path.parent.name == "contexts" and not failed:
            failed.append(path)
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, path, write)

    monkeypatch.setattr(FeatureCache, "_write", disk_full_once)
    _miss_and_store(cache, 1.0)
    _miss_and_store(cache, 2.0)
    # was: tried once per run, so the entries stored after a passing failure had no record
    assert failed and (tmp_path / "contexts" / f"{_context(torch.float32)}.json").is_file()


# --- 8. generate's cap, whichever way the call sets its length -----------------------------------
def _plain(model, **kwargs):
    ends = []
    out = model.generate(torch.tensor([PROMPT]), images=_image(), molecule_fp=_fp()[None],
                         on_context_end=lambda *a: ends.append(a), **kwargs)
    return out, ends


@pytest.mark.parametrize("length", [
    {"generation_config": GenerationConfig(max_new_tokens=40, do_sample=False)},
    {"max_length": 40, "do_sample": False},
    {"do_sample": False},  # transformers' default: 20 new tokens
], ids=["generation_config", "max_length", "default"])
def test_generate_caps_every_way_of_setting_the_length(model, length):
    out, ends = _plain(model, **length)
    # was: 40, 29 and 20 new tokens after a prompt that left 3 positions, without a word
    assert out.shape[1] == ROOM
    assert ends == [(ROOM, model.prompt_positions + ROOM)]
    if "generation_config" in length:  # capped on a copy: the caller's config is left as it was
        assert length["generation_config"].max_new_tokens == 40


def test_an_end_token_of_the_given_generation_config_at_the_room_is_no_cut(model):
    last = int(_generate(model)[0, -1])
    ends = []
    out = _generate(model, generation_config=GenerationConfig(eos_token_id=last, do_sample=False),
                    on_context_end=lambda *a: ends.append(a))
    assert int(out[0, -1]) == last
    assert ends == []  # was: its end token not read, and the ended reply called cut


def test_a_max_length_the_prompt_fills_is_one_clear_error(model):
    with pytest.raises(ValueError, match=rf"^max_length=5 leaves no new token after this prompt of "
                                         rf"{model.prompt_positions} positions"):
        _plain(model, max_length=5, do_sample=False)
