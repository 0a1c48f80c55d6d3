"""`--model-path out/stage2` typed in a folder whose out/ holds no stage2.

`usage.model_folder` takes `owner/name` for a Hugging Face Hub id; a relative path of that
shape (the README's own `out/stage2`) typed from the wrong folder went to the Hub as an id
and failed there with nothing pointing at the typo. It is not refused for that (a real Hub
id `Qwen/Qwen2-0.5B` beside a local `Qwen/` download folder must still load), but where it
fails (offline here; transformers' load error in `loading.read_config`) the message says
that `out/` here holds no `stage2`.
"""

from __future__ import annotations

import pytest
from huggingface_hub import constants

from deepmolm_plugin import usage


def test_a_hub_id_beside_a_local_folder_of_its_owners_name_is_not_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    (tmp_path / "Qwen" / "Qwen2-7B").mkdir(parents=True)  # huggingface-cli download --local-dir Qwen/Qwen2-7B
    usage.model_folder("Qwen/Qwen2-0.5B-Instruct", "--model-path")


def test_offline_a_path_typed_in_another_folder_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    (tmp_path / "out").mkdir()
    with pytest.raises(usage.UsageError) as error:
        usage.model_folder("out/stage2", "--model-path")
    assert str(error.value) == ("--model-path out/stage2: no such folder (out/ here holds no stage2: a path typed in "
                                "another folder?), and not a model in the Hugging Face cache (HF_HUB_OFFLINE is set)")
    assert usage.typed_elsewhere("elsewhere/stage2") == ""  # no such first folder here: no hint
