"""Review of the fourteenth sweep's changes, mended.

What was wrong -> what happens now:
- deepmolm-kflm2 rerun with a changed option on an --out holding results was refused only
  after every input had been featurised (an llm: model run over every SMILES) -> refused
  before featurising (`check_rerun`), the writes after.
- symlog axes lost the minus sign of negative ticks ("100" for -100) -> kept.
- a title with a deliberate line break lost it when wrapped to fit -> each line wrapped apart.
- the trained context (`tokenizer_model_max_length`) was read three ways: 256.0 was no
  context to the llm: featuriser and `true` a context of 1 to generate -> one reader
  (`model.llava_qwen2.trained_context`) everywhere.
- lora_finetune saved the tokenizer with the pad token it was given for training (id 0 where
  it had none) -> the tokenizer is saved as the base model's folder has it.
- experiment_fusion said "< 2 seeds with an MAE" where 2 of 3 seeds had one -> "a seed
  without an MAE".
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import deepmolm_plugin
from deepmolm_plugin.property import cli as kcli

from test_hostile_kflm2 import FORTY, _run
from test_hostile_kflm2_eleventh import tiny_llm  # noqa: F401  (the fixture: a tiny Qwen2 for llm: features)

TREE = Path(deepmolm_plugin.__file__).resolve().parents[1]
sys.path.insert(0, str(TREE / "scripts"))

import experiment_fusion as ef  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------- 1. a changed rerun refused before featurising
def test_a_changed_configuration_rerun_is_refused_before_featurising(tmp_path, monkeypatch):
    data = tmp_path / "data.csv"
    data.write_text("smiles,y\n" + "".join(f"{s},{0.1 * i}\n" for i, s in enumerate(FORTY)))
    out = tmp_path / "run"
    extra = ("--features", "rdkit2d", "--cache-dir", str(tmp_path / "c"))
    assert kcli.main(_run(data, out, extra=extra)) == 0
    calls = []
    real = kcli.build_inputs
    monkeypatch.setattr(kcli, "build_inputs", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    try:
        rc = kcli.main(_run(data, out, extra=extra + ("--epochs", "2")))
    except SystemExit as e:
        rc = e.code
    assert rc != 0
    assert calls == []  # was: train and test inputs featurised, then the refusal


# ------------------------------------------------------------------- 2. symlog tick signs
def test_symlog_negative_ticks_keep_their_minus_sign(tmp_path):
    import deepmolm_plugin.plots as draw
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig, (ax,) = draw.panels(1, figsize=(4, 3))
    ax.plot([-1000, 1000], [-1000, 1000])
    ax.set_yscale("symlog")
    ax.set_ylim(-1000, 1000)
    draw.save(fig, tmp_path / "symlog.png", 50)
    FigureCanvasAgg(fig).draw()
    ticks = [(t.get_position()[1], t.get_text()) for t in ax.get_yticklabels()]
    negative = [label for y, label in ticks if y < 0 and label]
    assert negative and all(label.startswith(("-", "\u2212")) for label in negative), ticks
    assert not any("$" in label for _, label in ticks), ticks


# ------------------------------------------------------------- 3. title line breaks kept
def test_a_two_line_title_keeps_its_break_when_wrapped():
    import deepmolm_plugin.plots as draw

    fig, axes = draw.panels(3, figsize=(10, 2))
    target = "FreeSolv hydration free energy of the molecule"
    axes[0].set_title(f"{target}\n(regression)")
    fig.canvas.draw()
    assert draw.fit_titles(fig)
    lines = axes[0].get_title().split("\n")
    assert lines[-1] == "(regression)", lines  # was: "molecule (regression)" run together
    assert " ".join(lines[:-1]) == target
    draw.pyplot().close(fig)


# --------------------------------------------------------------- 4. one context reader
@pytest.mark.parametrize("value, expected", [(256.0, 256), (True, None)])
def test_the_trained_context_is_read_alike_everywhere(value, expected):
    from deepmolm_plugin.gui.chat import model_context
    from deepmolm_plugin.model.llava_qwen2 import LlavaQwen2ForCausalLM
    from deepmolm_plugin.property.causal_lm import context_limit

    config = SimpleNamespace(tokenizer_model_max_length=value, max_position_embeddings=None)
    model = SimpleNamespace(config=config)
    answers = {"chat": model_context(config), "generate": LlavaQwen2ForCausalLM.context_length(model),
               "featuriser": context_limit(config)[0]}
    assert answers == {"chat": expected, "generate": expected, "featuriser": expected}


# ------------------------------------------------------- 5. the tokenizer saved as loaded
def test_lora_finetune_saves_the_tokenizer_without_the_training_pad_token(tiny_llm, tmp_path):
    from transformers import AutoTokenizer

    from deepmolm_plugin.property.lora import lora_finetune

    base = tmp_path / "nopad"
    shutil.copytree(tiny_llm, base)
    cfg = json.loads((base / "tokenizer_config.json").read_text())
    (base / "tokenizer_config.json").write_text(json.dumps(cfg | {"pad_token": None}))
    assert AutoTokenizer.from_pretrained(base).pad_token is None
    lora_finetune(base, FORTY[:8], tmp_path / "tuned", r=2, alpha=4, max_steps=1, batch_size=4)
    saved = AutoTokenizer.from_pretrained(tmp_path / "tuned")
    assert saved.pad_token is None  # was: the eos / unk / id-0 token set for training batches


# ------------------------------------------------------- 6. experiment_fusion's undecidable
def test_a_seed_without_an_mae_is_said_as_such():
    diff = {"per_seed": [-0.5, None, -0.4], "mean": None, "se": None}
    assert ef.beats(diff) == "not decidable: a seed without an MAE"
    assert ef.beats({"per_seed": [-0.5], "mean": -0.5, "se": None}) == "not decidable: < 2 seeds"
    p = {"fusion-image_only": {"t": {"mean": None}}, "fusion_shuffled_fp-fusion": {"t": {"mean": 0.3}}}
    assert ef.shuffled_loses_gain(p, "t") == "not decidable: a seed without an MAE"
