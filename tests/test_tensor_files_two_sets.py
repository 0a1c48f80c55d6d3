"""A folder holding `model.safetensors` and a shard index with its shards.

transformers loads the single file and ignores the index; our checks (`find_tensor_files`:
stored dtypes, NaN, names) read the shards. A sharded save copied into a folder that still
held `model.safetensors` (the shards' lm_head NaN) answered normally, exit 0, checked on
files that were not the ones loaded. Now such a folder is refused, naming both sets.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from deepmolm_plugin.tensor_files import CheckpointError, find_tensor_files


def _sharded(folder):
    save_file({"a": torch.zeros(2)}, str(folder / "model-00001-of-00002.safetensors"))
    save_file({"b": torch.zeros(2)}, str(folder / "model-00002-of-00002.safetensors"))
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))


def test_a_shard_index_beside_the_single_file_is_refused(tmp_path):
    _sharded(tmp_path)
    assert [p.name for p in find_tensor_files(tmp_path)] == ["model-00001-of-00002.safetensors",
                                                             "model-00002-of-00002.safetensors"]
    save_file({"a": torch.zeros(2), "b": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError) as error:
        find_tensor_files(tmp_path)
    assert "holds both model.safetensors and the shard index model.safetensors.index.json" in str(error.value)
    # another family's single file (an adapter) beside the index is no second set of these weights
    (tmp_path / "model.safetensors").rename(tmp_path / "adapter_model.safetensors")
    assert len(find_tensor_files(tmp_path)) == 2
