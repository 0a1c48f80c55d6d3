"""deepmolm-kflm2, fourteenth sweep: the llm: featuriser's model loading (a tokenizer larger
than the embedding table, the dtype of a bf16-saved DeepMoLM folder, a tokenizer with neither
pad nor eos token), its context limit, the float16 token states, the model fingerprint,
refusals of molecules before --out is written, and the figures' tick labels and parity plot."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from deepmolm_plugin import usage
from deepmolm_plugin.property import cli as kcli
from deepmolm_plugin.property.embedding_cache import model_fingerprint
from deepmolm_plugin.property.featurizers import FeaturizerError, LLMEmbedding

from test_hostile_kflm2 import FORTY, _run
from test_hostile_property_images import _csv

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TWO = ["CCO", "CC(=O)Oc1ccccc1C(=O)O"]  # two lengths: the batch is padded


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    from deepmolm_plugin.tiny_llm import build_qwen2, train_chatml_tokenizer

    tokenizer = train_chatml_tokenizer(FORTY + TWO, vocab_size=300)
    path = tmp_path_factory.mktemp("llm") / "qwen2-smiles"
    build_qwen2(path, tokenizer, hidden_size=16, layers=1, heads=2, kv_heads=1, intermediate=32, seed=0)
    return path


def _copy(src, dst, config=None):
    shutil.copytree(src, dst)
    if config:
        cfg = json.loads((dst / "config.json").read_text())
        (dst / "config.json").write_text(json.dumps(cfg | config))
    return dst


def _mols(smiles):
    from rdkit import Chem

    return [Chem.MolFromSmiles(s) for s in smiles]


def _table(tmp_path, extra_rows=()):
    rows = [(s, round(0.1 * i - 2, 3)) for i, s in enumerate(FORTY)] + list(extra_rows)
    return _csv(tmp_path / "data.csv", ["smiles", "y"], rows)


# ------------------------------------------------- 1. a tokenizer larger than the table
def test_tokenizer_larger_than_the_embedding_table_is_refused_before_out(tiny_llm, tmp_path, capsys):
    from transformers import AutoTokenizer

    from deepmolm_plugin.property.causal_lm import load_causal_lm

    big = _copy(tiny_llm, tmp_path / "bigtok")
    tok = AutoTokenizer.from_pretrained(big)
    rows = json.loads((big / "config.json").read_text())["vocab_size"]
    tok.add_tokens([f"X{i}" for i in range(rows - len(tok) + 5)])
    tok.save_pretrained(big)
    # was: loaded, and an IndexError at the first SMILES using an extra id, after --out was written
    with pytest.raises(usage.UsageError, match="embedding table has"):
        load_causal_lm(str(big), progress=False)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        kcli.main(_run(_table(tmp_path), out, extra=("--features", f"llm:{big}", "--cache-dir", str(tmp_path / "c"))))
    assert e.value.code == 2 and "embedding table has" in capsys.readouterr().err and not out.exists()


# ---------------------------------------------------------- 2. float32 whatever was saved
def test_a_bf16_saved_deepmolm_folder_is_featurised_in_float32_and_keyed_so(tiny_llm, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    bf16 = _copy(tiny_llm, tmp_path / "bf16", {"model_type": "llava_qwen2", "architectures": ["LlavaQwen2ForCausalLM"],
                                              "dtype": "bfloat16"})
    weights = load_file(str(bf16 / "model.safetensors"))
    save_file({k: v.to(torch.bfloat16) for k, v in weights.items()}, str(bf16 / "model.safetensors"),
              metadata={"format": "pt"})
    feat = LLMEmbedding(bf16, cache_dir=tmp_path / "c", progress=False)
    _, model = feat.model()
    # was: run in bfloat16 (the config's dtype), the cache key saying "dtype None"
    assert model.get_input_embeddings().weight.dtype == torch.float32
    assert feat.cache_key().endswith("|dtype float32")
    explicit = LLMEmbedding(bf16, cache_dir=tmp_path / "c2", dtype=torch.float32, progress=False)
    np.testing.assert_array_equal(feat(_mols(TWO), TWO), explicit(_mols(TWO), TWO))


# ----------------------------------------------------------------- 3. the trained context
LONG = "CC(C)" * 20 + "O"


def _short_context(tiny_llm, dst):
    """A copy of `tiny_llm` whose config records a trained context that every FORTY SMILES fits
    and LONG does not."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llm)
    limit = max(len(tok(s)["input_ids"]) for s in FORTY + TWO)
    assert len(tok(LONG)["input_ids"]) > limit
    return _copy(tiny_llm, dst, {"tokenizer_model_max_length": limit}), limit


def test_the_context_limit_is_the_trained_context_and_the_error_names_it(tiny_llm, tmp_path):
    short, limit = _short_context(tiny_llm, tmp_path / "ctx")
    feat = LLMEmbedding(short, cache_dir=tmp_path / "c", progress=False)
    # was: max_position_embeddings, and the SMILES featurised past the trained context
    with pytest.raises(FeaturizerError, match=rf"model's {limit} \(its trained context, tokenizer_model_max_length"):
        feat(_mols([LONG]), [LONG])


# ------------------------------------------- 4. molecule refusals before --out is written
def test_a_refused_molecule_leaves_no_out_and_the_fixed_rerun_runs(tiny_llm, tmp_path, capsys):
    short, limit = _short_context(tiny_llm, tmp_path / "ctx")
    out = tmp_path / "run"
    args = ("--features", f"llm:{short}", "--cache-dir", str(tmp_path / "c"))
    assert kcli.main(_run(_table(tmp_path, [(LONG, -1.0)]), out, extra=args)) == 2
    assert f"more than the model's {limit} (its trained context" in capsys.readouterr().err
    assert not out.exists()  # was: config.json, seeds/ and splits/ written first
    assert kcli.main(_run(_table(tmp_path), out, extra=args)) == 0


def test_a_folder_without_seed_results_is_not_another_configurations_results(tmp_path):
    out, data = tmp_path / "run", _table(tmp_path)
    assert kcli.main(_run(data, out)) == 0
    for path in [out / "results.json", out / "results.md", *(out / "seeds").glob("seed_*.json")]:
        path.unlink()  # as a run stopped before its first seed ended leaves the folder
    # was: TableError "holds results of a different configuration (changed: train.epochs ...)"
    assert kcli.main(_run(data, out, extra=("--epochs", "2"))) == 0
    assert json.loads((out / "config.json").read_text())["train"]["epochs"] == 2


# -------------------------------------------------------- 5. float16 token states overflow
def test_token_states_beyond_float16_are_refused_before_caching(tiny_llm, tmp_path):
    from safetensors.torch import load_file, save_file

    big = _copy(tiny_llm, tmp_path / "bignorm")
    weights = load_file(str(big / "model.safetensors"))
    weights["model.norm.weight"] = weights["model.norm.weight"] * 1e7
    save_file(weights, str(big / "model.safetensors"), metadata={"format": "pt"})
    feat = LLMEmbedding(big, cache_dir=tmp_path / "c", progress=False)
    assert np.isfinite(feat(_mols(TWO), TWO)).all()  # finite in float32
    # was: cached as inf, refused later as "training diverged ... lower --lr"
    with pytest.raises(FeaturizerError, match="CCO.*float16"):
        feat.tokens(_mols(TWO), TWO)
    assert feat.token_cache.get_many(TWO)[1] == TWO  # nothing cached


# ------------------------------------------------------------------ 6. the fingerprint
def test_the_fingerprint_ignores_checkpoint_subfolders(tiny_llm, tmp_path):
    folder = _copy(tiny_llm, tmp_path / "steps")
    (folder / "checkpoint-2").mkdir()
    (folder / "checkpoint-2" / "optimizer.pt").write_bytes(b"state")
    (folder / "checkpoint-2" / "config.json").write_text("{}")
    before = model_fingerprint(folder)
    shutil.rmtree(folder / "checkpoint-2")  # what save_total_limit does
    assert model_fingerprint(folder) == before
    (folder / "config.json").write_text((folder / "config.json").read_text() + " ")
    assert model_fingerprint(folder) != before  # a loaded file still counts


# ------------------------------------------------------ 7. neither pad nor eos token
def test_a_tokenizer_without_pad_and_eos_tokens_gives_the_same_embeddings(tiny_llm, tmp_path):
    nopad = _copy(tiny_llm, tmp_path / "nopad")
    cfg = json.loads((nopad / "tokenizer_config.json").read_text())
    (nopad / "tokenizer_config.json").write_text(json.dumps(cfg | {"pad_token": None, "eos_token": None}))
    plain = LLMEmbedding(tiny_llm, cache_dir=tmp_path / "c1", progress=False)
    odd = LLMEmbedding(nopad, cache_dir=tmp_path / "c2", progress=False)
    assert odd.model()[0].pad_token_id is not None
    # was: transformers' ValueError (no padding token) at the first batch
    np.testing.assert_allclose(odd(_mols(TWO), TWO), plain(_mols(TWO), TWO), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------- 8. figures
def test_log_axes_tick_labels_are_plain_text(tmp_path):
    import deepmolm_plugin.plots as draw

    fig, (ax,) = draw.panels(1, figsize=(4, 3))
    ax.plot([1, 2, 3], [0.9, 0.5, 0.2])
    ax.set_yscale("log")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    draw.save(fig, tmp_path / "log.png", 50)
    FigureCanvasAgg(fig).draw()  # the labels as drawn (save closed the figure)
    labels = [t.get_text() for t in ax.get_yticklabels() + ax.get_yticklabels(minor=True)]
    assert any(labels) and not any("$" in t or "mathdefault" in t for t in labels), labels


def test_parity_plot_fits_its_title_says_measured_once_and_names_the_seeds(tmp_path, monkeypatch):
    from pathlib import Path

    import deepmolm_plugin.plots as draw
    from deepmolm_plugin.property import report

    drawn = []
    real = draw.save
    monkeypatch.setattr(report.draw, "save", lambda fig, path, dpi: (drawn.append(fig), real(fig, path, dpi))[1])
    name = "measured log solubility in mols per litre"
    seeds = [{"seed": k, "predictions": {"test": {"y": [[0.1 * i] for i in range(5)],
                                                  "pred": [[0.1 * i + k] for i in range(5)]}}} for k in (0, 1)]
    report.plot_parity(seeds, [name], Path(tmp_path / "parity"))
    (fig,) = drawn
    (ax,) = fig.axes
    assert ax.get_xlabel() == name  # was "measured measured ..."
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["seed 0", "seed 1"]  # was: no legend
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()  # laid out by save, which closed the figure
    box = ax.title.get_window_extent(renderer)
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width  # was: cut off on the right
