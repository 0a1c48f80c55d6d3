"""Sixteenth round: the chat CLI and model_vqa check their arguments before torch and
transformers load. `model.stopping` (imported by both for its light helpers) sat in the
`model` package, whose `__init__` loaded the LLM classes, so a typo in `--model-path` took
about 7 s of imports to be told (the chat CLI's own comment promised "bad input fails in a
second"); now the package loads its classes on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

# torch and transformers made unimportable: any import of them fails loudly
_BLOCKED = "import sys; sys.modules.update(torch=None, transformers=None, llava=None); "


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _BLOCKED + code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("module, argv", [
    ("deepmolm_plugin.cli", ["--model-path", "/no/such/model", "--smiles", "CCO"]),
    ("deepmolm_plugin.eval.model_vqa", ["--model-path", "/no/such/model", "--question-file", "/no/q.jsonl",
                                        "--answers-file", "/no/a.jsonl"]),
])
def test_a_missing_model_folder_is_told_before_torch_loads(module, argv):
    proc = _run(f"from {module} import main; main({argv!r})")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--model-path /no/such/model: no such folder" in proc.stderr and "Traceback" not in proc.stderr


def test_the_model_package_still_gives_its_classes_on_first_use():
    proc = subprocess.run([sys.executable, "-c", "import sys, deepmolm_plugin.model as m; "
                           "light = 'transformers' not in sys.modules; "
                           "print(light, m.LlavaQwen2Config.model_type, 'transformers' in sys.modules)"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True", "llava_qwen2", "True"]
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        import deepmolm_plugin.model as model

        model.Nope  # noqa: B018
