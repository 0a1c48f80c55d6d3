"""`--model-path out/stage2` typed in a folder whose out/ holds no stage2.

`usage.model_folder` takes `owner/name` for a Hugging Face Hub id; a relative path of that
shape (the README's own `out/stage2`) typed from the wrong folder went to transformers as a
Hub id: about a minute of huggingface.co retries, then a traceback (chat, model_vqa). Now a
value whose first part is a folder here, and which is not in the Hub cache, is a missing
folder, said in one line.
"""

from __future__ import annotations

import pytest

from deepmolm_plugin import usage


def test_a_relative_path_whose_first_folder_exists_is_no_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    (tmp_path / "out").mkdir()
    with pytest.raises(usage.UsageError) as error:
        usage.model_folder("out/stage2", "--model-path")
    assert str(error.value) == ("--model-path out/stage2: no such folder (out/ here holds no stage2; not a model in "
                                "the Hugging Face cache either)")
