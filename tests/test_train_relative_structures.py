"""A record's relative `structure` without --structure_folder.

The resolver reads a relative structure path from --structure_folder; without the option
the record failed when it was first read, after the model had loaded (the README's stage-2
command left the option out: minutes of loading, then exit 1). Now the launcher refuses it
with the records, before anything heavy is imported.
"""

from __future__ import annotations

import json

import pytest

from deepmolm_plugin import usage
from deepmolm_plugin.training.inputs import check_inputs, check_relative_structures


def _records(tmp_path, structure):
    path = tmp_path / "train.json"
    path.write_text(json.dumps([{"id": "mol1", "structure": structure, "conversations": [
        {"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A molecule."}]}]))
    return str(path)


def test_a_relative_structure_without_its_folder_is_refused_before_loading(tmp_path):
    data = _records(tmp_path, "mol1.sdf")
    with pytest.raises(usage.UsageError) as error:
        check_inputs(["--data_path", data, "--output_dir", str(tmp_path / "out")])
    assert str(error.value) == (f"--data_path {data}: record 'mol1': structure mol1.sdf is relative but "
                                "--structure_folder is not set (the folder it is read from)")


def test_an_absolute_structure_needs_no_folder(tmp_path):
    (tmp_path / "mol1.sdf").write_text("")
    check_relative_structures(json.loads(open(_records(tmp_path, str(tmp_path / "mol1.sdf"))).read()), "d")
