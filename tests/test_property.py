"""deepmolm_plugin.property (deepmolm-kflm2): KFLM2's protocol flaws stay fixed.

Real data from ../shared/data/moleculenet (CI has ../shared beside the repository).
Every model here is tiny and trained a few epochs: seconds in all.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from deepmolm_plugin.property import cli as kcli
from deepmolm_plugin.property.embedding_cache import EmbeddingCache, model_fingerprint
from deepmolm_plugin.property.featurizers import LLMEmbedding, make_featurizer
from deepmolm_plugin.property.lora import lm_batch, lora_finetune
from deepmolm_plugin.property.features import ATOM_DIM, BOND_DIM, collate_graphs, mol_to_graph, parse_smiles
from deepmolm_plugin.property.models import CrossAttention, PropertyModel
from deepmolm_plugin.property.splits import make_split, murcko_scaffold, scaffold_sets
from deepmolm_plugin.property.train import (
    Inputs, TrainConfig, masked_loss, roc_auc, run_seed)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "moleculenet"
ESOL = DATA / "delaney-processed.csv"
ESOL_TARGET = "measured log solubility in mols per litre"



pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: threads cost more than they give


def _graphs(smiles):
    return [mol_to_graph(parse_smiles(s)[0]) for s in smiles]


SMALL = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C1CCCCC1N", "O=C(O)c1ccccc1", "CCN(CC)CC", "Clc1ccc(Cl)cc1",
         "CC(C)Cc1ccc(C(C)C(=O)O)cc1", "C#N", "OCC(O)CO", "c1ccncc1", "CCCCCCCC", "[Na+].[Cl-]", "CS(C)=O",
         "C[C@H](N)C(=O)O", "c1ccc2ccccc2c1", "FC(F)(F)c1ccccc1", "CCOC(=O)C", "NC(=O)N", "C1=CC=CN1"]


# ------------------------------------------------------------------------------ features
def test_graph_features_are_complete_and_bidirectional():
    mol = parse_smiles("c1ccccc1C(=O)[O-]")[0]
    g = mol_to_graph(mol)
    assert g.atoms.shape == (mol.GetNumAtoms(), ATOM_DIM) and ATOM_DIM > 70  # no 64-feature truncation
    assert g.edges.shape == (2 * mol.GetNumBonds(), BOND_DIM)
    # both directions, with bond e and e ^ 1 the two directions of one bond
    src, dst = g.edge_index
    assert np.array_equal(src[0::2], dst[1::2]) and np.array_equal(dst[0::2], src[1::2])
    assert np.array_equal(g.edges[0::2], g.edges[1::2])
    # aromaticity and H count survive: benzene CH vs the ipso carbon differ in exactly those slots
    from deepmolm_plugin.property.features import atom_features

    ch, ipso = atom_features(mol.GetAtomWithIdx(0)), atom_features(mol.GetAtomWithIdx(5))
    assert ch != ipso
    aromatic_slot = 101 + 7 + 6 + 4 + 6 + 7 + 4  # after the one-hot blocks
    assert ch[aromatic_slot] == 1.0 and atom_features(mol.GetAtomWithIdx(6))[aromatic_slot] == 0.0
    batch = collate_graphs(_graphs(["CCO", "[Na+].[Cl-]", "c1ccccc1"]))
    assert batch.num_mols == 3 and torch.equal(batch.rev[batch.rev], torch.arange(batch.rev.numel()))
    assert torch.equal(batch.src[batch.rev], batch.dst)


# -------------------------------------------------------------------------------- splits
@pytest.mark.parametrize("kind", ["scaffold", "scaffold-sorted"])
def test_scaffold_split_puts_each_scaffold_in_one_subset(kind):
    table = kcli.load_table(ESOL, [ESOL_TARGET])
    scaffolds = scaffold_sets(table.mols)
    split = make_split(kind, table.mols, seed=3, scaffolds=scaffolds)
    n = len(table.mols)
    assert sorted(np.concatenate(list(split.values())).tolist()) == list(range(n))  # a partition
    where = {}
    for name, idx in split.items():
        for i in idx:
            where.setdefault(murcko_scaffold(table.mols[i]), set()).add(name)
    assert all(len(v) == 1 for v in where.values())
    assert abs(len(split["train"]) - 0.8 * n) < 0.05 * n and len(split["valid"]) > 0.05 * n
    assert len(split["test"]) > 0.05 * n


def test_splits_reproduce_exactly_and_vary_with_the_seed():
    table = kcli.load_table(ESOL, [ESOL_TARGET])
    for kind in ("random", "scaffold"):
        a, b = make_split(kind, table.mols, 7), make_split(kind, table.mols, 7)
        c = make_split(kind, table.mols, 8)
        assert all(np.array_equal(a[k], b[k]) for k in a)
        assert not np.array_equal(a["test"], c["test"])
    # the deterministic MoleculeNet variant does not depend on the seed
    s1, s2 = make_split("scaffold-sorted", table.mols, 1), make_split("scaffold-sorted", table.mols, 2)
    assert all(np.array_equal(s1[k], s2[k]) for k in s1)


# ---------------------------------------------------------------------- losses / metrics
def test_masked_labels_are_never_trained_on():
    out = torch.randn(6, 3, requires_grad=True)
    target = torch.randn(6, 3)
    target[0, 1] = target[3, 0] = target[5, 2] = float("nan")
    for task in ("regression", "classification"):
        t = target if task == "regression" else (target > 0).float().where(~target.isnan(), target)
        loss = masked_loss(task, out, t)
        (grad,) = torch.autograd.grad(loss, out)
        assert torch.all(grad[t.isnan()] == 0) and torch.all(grad[~t.isnan()] != 0)
        m = ~t.isnan()
        if task == "regression":
            expected = ((out[m] - t[m]) ** 2).mean()
        else:
            expected = torch.nn.functional.binary_cross_entropy_with_logits(out[m], t[m])
        assert torch.allclose(loss, expected)  # not diluted by zeros for the masked entries
    # end to end: in every training step the gradient reaching a missing label's output is 0
    import deepmolm_plugin.property.train as ktrain

    seen = []

    def spy(task, out, target):
        out.register_hook(lambda g, t=target: seen.append((g.detach().clone(), t.isnan())))
        return real(task, out, target)

    real = ktrain.masked_loss
    cfg = TrainConfig(task="regression", hidden=16, ffn_hidden=16, epochs=3, patience=5, batch_size=8)
    y = np.random.default_rng(0).normal(size=(len(SMALL), 2))
    y[[1, 4, 9], 1] = np.nan  # what a CSV's empty cells become (see test_unparseable_smiles_...)
    split = {"train": np.arange(14), "valid": np.arange(14, 17), "test": np.arange(17, 20)}
    try:
        ktrain.masked_loss = spy
        result = run_seed(Inputs(graphs=_graphs(SMALL)), y, split, cfg, 0, ["a", "b"])
    finally:
        ktrain.masked_loss = real
    assert seen and sum(int(nan.sum()) for _, nan in seen) == 3 * 3  # 3 missing labels x 3 epochs
    assert all(torch.all(g[nan] == 0) for g, nan in seen)
    assert result["metrics"]["train"]["per_task"]["b"]["n"] == 11  # metrics skip them too


def test_auc_is_computed_from_probabilities():
    y = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    prob = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.6, 0.55])
    auc = roc_auc(y, prob)
    assert auc == pytest.approx(13 / 16)
    assert auc != roc_auc(y, (prob > 0.5).astype(float))  # hard labels would give another number
    import sklearn.metrics as sklearn  # pinned: the independent reference for our ROC-AUC
    assert auc == pytest.approx(sklearn.roc_auc_score(y, prob))
    # a trained classifier reports the AUC of its probabilities
    labels = np.array([[1.0 if "c1" in s or "C1" in s else 0.0] for s in SMALL])
    cfg = TrainConfig(task="classification", hidden=16, ffn_hidden=16, epochs=2, patience=5, batch_size=8)
    split = {"train": np.arange(12), "valid": np.arange(12, 16), "test": np.arange(16, 20)}
    r = run_seed(Inputs(graphs=_graphs(SMALL)), labels, split, cfg, 0, ["ring"])
    prob = np.array(r["predictions"]["test"]["pred"])[:, 0]
    assert np.all((prob > 0) & (prob < 1)) and len(np.unique(prob)) > 2
    assert r["metrics"]["test"]["roc_auc"] == pytest.approx(roc_auc(labels[16:, 0], prob))


def test_single_class_tasks_are_skipped_and_reported():
    from deepmolm_plugin.property.train import classification_metrics

    y = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, np.nan]])
    m = classification_metrics(y, np.full((3, 2), 0.5), ["a", "b"])
    assert m["skipped_tasks"] == ["b"] and list(m["per_task"]) == ["a"]


def test_seeds_reproduce_exactly():
    cfg = TrainConfig(task="regression", hidden=16, ffn_hidden=16, epochs=3, patience=5, batch_size=8, dropout=0.1)
    inputs = Inputs(graphs=_graphs(SMALL), embed=np.random.default_rng(1).normal(size=(20, 5)).astype(np.float32))
    y = np.random.default_rng(2).normal(size=(20, 1))
    split = make_split("random", [None] * 20, seed=4)
    a = run_seed(inputs, y, split, cfg, 4, ["t"])
    b = run_seed(inputs, y, split, cfg, 4, ["t"])
    c = run_seed(inputs, y, split, cfg, 5, ["t"])
    assert a["predictions"] == b["predictions"] and a["members"] == b["members"]
    assert a["predictions"]["test"]["pred"] != c["predictions"]["test"]["pred"]


# -------------------------------------------------------------------------------- fusions
def _fusion_inputs(seed=0, token_dim=12):
    g = torch.Generator().manual_seed(seed)
    graph = collate_graphs(_graphs(["CCO", "c1ccccc1N", "CC(=O)O"]))
    embed = torch.randn(3, 10, generator=g)
    tokens = torch.randn(3, 6, token_dim, generator=g)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[0, 4:] = False
    return graph, embed, tokens, mask


@pytest.mark.parametrize("fusion", ["gated", "attention"])
def test_gated_and_attention_fusions_use_both_inputs(fusion):
    model = PropertyModel(1, graph=True, embed_dim=10, fusion=fusion, hidden=16, ffn_hidden=16,
                          token_dim=12 if fusion == "attention" else None, fusion_dim=16, heads=2).eval()
    graph, embed, tokens, mask = _fusion_inputs()
    extra = {"tokens": tokens, "token_mask": mask} if fusion == "attention" else {}
    base = model(graph, embed, **extra)
    other_graph = collate_graphs(_graphs(["CCN", "c1ccccc1O", "CC(=O)N"]))
    assert not torch.allclose(model(other_graph, embed, **extra), base)  # graph matters
    assert not torch.allclose(model(graph, embed + 1.0, **extra), base)  # embedding matters
    if fusion == "attention":
        assert not torch.allclose(model(graph, embed, tokens=tokens + 1.0, token_mask=mask), base)  # tokens
        # padded token positions are masked: changing them changes nothing
        t2 = tokens.clone()
        t2[0, 4:] = 100.0
        assert torch.allclose(model(graph, embed, tokens=t2, token_mask=mask), base)


def test_cross_attention_is_real_attention_over_both_sequences():
    cross = CrossAttention(node_dim=8, token_dim=12, dim=16, heads=2).eval()
    g = torch.Generator().manual_seed(0)
    nodes, tokens = torch.randn(2, 5, 8, generator=g), torch.randn(2, 7, 12, generator=g)
    nmask, tmask = torch.ones(2, 5, dtype=torch.bool), torch.ones(2, 7, dtype=torch.bool)
    out = cross(nodes, nmask, tokens, tmask)
    node_half, token_half = out[:, :16], out[:, 16:]
    t2 = tokens.clone()
    t2[:, 3] += 1.0  # one token changes: the atoms' side (which attended to it) changes
    out2 = cross(nodes, nmask, t2, tmask)
    assert not torch.allclose(out2[:, :16], node_half)
    n2 = nodes.clone()
    n2[:, 2] += 1.0  # one atom changes: the tokens' side changes
    assert not torch.allclose(cross(n2, nmask, tokens, tmask)[:, 16:], token_half)


def test_attention_fusion_requires_llm_token_states():
    with pytest.raises(ValueError, match="llm"):
        PropertyModel(1, graph=True, embed_dim=10, fusion="attention", token_dim=None)


# --------------------------------------------------------------------------- LLM branch
@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    from deepmolm_plugin.tiny_llm import build_qwen2, train_chatml_tokenizer

    smiles = [row["smiles"].strip() for row in csv.DictReader(open(ESOL))][:300] if ESOL.is_file() else SMALL
    tokenizer = train_chatml_tokenizer(smiles + SMALL, vocab_size=400)
    path = tmp_path_factory.mktemp("llm") / "qwen2-smiles"
    build_qwen2(path, tokenizer, hidden_size=32, layers=2, heads=4, kv_heads=2, intermediate=64, seed=0)
    return path


def test_llm_embedding_mean_pools_without_padding_and_caches(tiny_llm, tmp_path):
    feat = LLMEmbedding(tiny_llm, cache_dir=tmp_path / "cache", batch_size=4)
    mols = [parse_smiles(s)[0] for s in SMALL]
    emb = feat(mols, SMALL)
    assert emb.shape == (len(SMALL), 32) and np.isfinite(emb).all()
    # padding excluded: each SMILES alone (no padding) gives the same vector as in a padded batch
    tokenizer, model = feat.model()
    for i in (0, 7, 12):
        with torch.no_grad():
            ids = tokenizer(SMALL[i], return_tensors="pt")
            alone = model.base_model(**ids).last_hidden_state[0].mean(0).numpy()
        np.testing.assert_allclose(emb[i], alone, rtol=1e-4, atol=1e-5)
    # cache hit: a second featuriser computes nothing
    again = LLMEmbedding(tiny_llm, cache_dir=tmp_path / "cache")
    again._states = lambda smiles: pytest.fail(f"recomputed {smiles}")
    np.testing.assert_array_equal(again(mols, SMALL), emb)
    assert again.cache.misses == 0 and again.cache.hits == len(SMALL)
    tokens = feat.tokens(mols[:3], SMALL[:3])
    assert [t.shape[0] for t in tokens] == [len(tokenizer(s)["input_ids"]) for s in SMALL[:3]]


def test_llm_embedding_reads_a_deepmolm_checkpoint(trained_checkpoint, tmp_path, monkeypatch):
    """`--features llm:<DeepMoLM checkpoint>` (documented) stopped with KeyError 'llava_qwen2'
    in a fresh process: nothing had registered our Auto classes (or the host's tower)."""
    from transformers import AutoModelForCausalLM
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from deepmolm_plugin.model.llava_qwen2 import LlavaQwen2Config

    # as in a fresh `deepmolm-kflm2` process: transformers does not know llava_qwen2
    monkeypatch.delitem(CONFIG_MAPPING._extra_content, "llava_qwen2", raising=False)
    monkeypatch.delitem(AutoModelForCausalLM._model_mapping._extra_content, LlavaQwen2Config, raising=False)
    feat = LLMEmbedding(trained_checkpoint, cache_dir=tmp_path / "cache", batch_size=4)
    hidden = json.loads((trained_checkpoint / "config.json").read_text())["hidden_size"]
    emb = feat([parse_smiles(s)[0] for s in SMALL[:3]], SMALL[:3])
    assert feat.dim == hidden and emb.shape == (3, hidden) and np.isfinite(emb).all()


def test_cache_key_follows_the_model_files(tiny_llm, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_llm, copy)
    assert model_fingerprint(copy) == model_fingerprint(tiny_llm)
    cfg = json.loads((copy / "config.json").read_text())
    cfg["rms_norm_eps"] = 1e-5
    (copy / "config.json").write_text(json.dumps(cfg))
    assert model_fingerprint(copy) != model_fingerprint(tiny_llm)
    cache = EmbeddingCache(tmp_path / "c", "k")
    cache.put_many({"CCO": np.ones(3, np.float32)})
    found, missing = EmbeddingCache(tmp_path / "c", "k").get_many(["CCO", "CCN"])
    assert list(found) == ["CCO"] and missing == ["CCN"]


def test_lora_finetune_excludes_padding_from_the_loss(tiny_llm, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llm)
    batch = lm_batch(tokenizer, ["CCO", "CC(=O)Nc1ccc(O)cc1"])
    assert torch.equal(batch["labels"] == -100, batch["attention_mask"] == 0) and (batch["labels"] == -100).any()
    model = AutoModelForCausalLM.from_pretrained(tiny_llm).eval()
    longer = lm_batch(tokenizer, ["CCO", "CC(=O)Nc1ccc(O)cc1"], pad_to=40)  # more padding, same loss
    with torch.no_grad():
        assert torch.allclose(model(**batch).loss, model(**longer).loss, atol=1e-6)
    info = lora_finetune(tiny_llm, SMALL, tmp_path / "tuned", r=4, alpha=8, max_steps=2, batch_size=8)
    assert info["steps"] == 2 and all(np.isfinite(info["losses"])) and info["trainable_parameters"] > 0
    assert info["cut_smiles"] == 0
    short = lora_finetune(tiny_llm, SMALL, tmp_path / "short", r=4, alpha=8, max_steps=1, max_length=3)
    assert 0 < short["cut_smiles"] < len(SMALL)  # was cut without a word
    assert sorted(p.name for p in tmp_path.iterdir()) == ["short", "tuned"]  # no partial folder left
    tuned = make_featurizer(f"llm:{tmp_path / 'tuned'}", cache_dir=tmp_path / "cache")
    emb = tuned([parse_smiles(s)[0] for s in SMALL[:4]], SMALL[:4])
    assert emb.shape == (4, 32)


@pytest.mark.parametrize("settings, message", [
    ({"max_steps": 0}, "max_steps must be an integer >= 1, got 0"),  # was: the base model saved as tuned
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"alpha": 0}, "alpha must be a finite number > 0"),  # was: a LoRA scaled by 0, the base model saved
    ({"alpha": -8}, "alpha must be a finite number > 0"),  # was: trained with the sign flipped
    ({"max_length": 1}, "max_length must be an integer >= 2"),  # was: NaN losses, the base model saved
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),  # was: "range() arg 3 must not be zero"
    ({"r": 0}, "r must be an integer >= 1"),
    ({"dropout": 2}, r"dropout must be in \[0, 1\)"),
    ({"lr": float("nan")}, "lr must be a finite number > 0"),
])
def test_lora_settings_that_train_nothing_are_refused_before_loading(tmp_path, settings, message):
    with pytest.raises(ValueError, match="lora_finetune: " + message):
        lora_finetune(tmp_path / "no-model-needed", SMALL, tmp_path / "out", **settings)
    assert not (tmp_path / "out").exists()


def test_lora_corpus_and_output_folder_are_checked(tiny_llm, tmp_path):
    # was: a string trained character by character, None an AttributeError, "xyz!!" trained on;
    # out_dir = model_dir replaced the base model in place, another run's folder was overwritten
    for corpus, message in (("CCO", "one string; give a list"),
                            (["CCO", None, 5, " "], r"3 corpus item\(s\) .*#1 None .*#2 5 .*#3 ' '"),
                            (["CCO", "xyz!!"], r"#1 'xyz!!'")):
        with pytest.raises(ValueError, match=message):
            lora_finetune(tiny_llm, corpus, tmp_path / "out", max_steps=1)
    with pytest.raises(ValueError, match="is model_dir: the base model would be overwritten"):
        lora_finetune(tiny_llm, SMALL, tiny_llm, max_steps=1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "other-run.txt").write_text("kept")
    with pytest.raises(ValueError, match=r"is not empty \(overwrite=True replaces it\)"):
        lora_finetune(tiny_llm, SMALL, tmp_path / "out", max_steps=1)
    with pytest.raises(ValueError, match=r"the loss is (nan|inf) at step [2-4] .*nothing was saved"):
        lora_finetune(tiny_llm, SMALL, tmp_path / "out", max_steps=4, lr=1e30, overwrite=True, r=4, alpha=8)
    assert (tmp_path / "out" / "other-run.txt").read_text() == "kept"  # a failed run replaced nothing
    lora_finetune(tiny_llm, SMALL, tmp_path / "out", max_steps=np.int64(1), overwrite=True, r=np.int64(4), alpha=8)
    assert not (tmp_path / "out" / "other-run.txt").exists() and (tmp_path / "out" / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# --------------------------------------------------------------------------------- CLI
def _common(out, extra=()):
    return ["--data", str(ESOL), "--targets", ESOL_TARGET, "--task", "regression", "--max-rows", "60",
            "--seeds", "2", "--epochs", "3", "--patience", "3", "--hidden", "16", "--ffn-hidden", "16",
            "--batch-size", "16", "--out", str(out), "--quiet", *extra]


def test_cli_on_a_small_subset_writes_reports_and_resumes(tmp_path):
    out = tmp_path / "esol"
    args = _common(out, ["--split", "scaffold", "--features", "rdkit2d+morgan", "--fusion", "gated",
                         "--cache-dir", str(tmp_path / "cache")])
    assert kcli.main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == [0, 1] and len(results["per_seed"]) == 2
    assert results["summary"]["test"]["rmse"]["n"] == 2
    assert "rdkit2d+morgan" in results["featurisers"] and "gated" in results["featurisers"]
    split = json.loads((out / "splits" / "seed_0.json").read_text())
    assert split["kind"] == "scaffold" and len(split["train"]) + len(split["valid"]) + len(split["test"]) == 60
    assert (out / "results.md").read_text().count("| 1 |") == 1
    assert re.search(r"^\| 0 \| \d+\.\d{3} \| \d+\.\d{3} \| ", (out / "results.md").read_text(), re.M)  # test: a number
    assert (out / "plots" / "learning_curves.png").stat().st_size > 0
    assert list((out / "plots").glob("parity_test_*.png"))
    before = (out / "seeds" / "seed_0.json").stat().st_mtime_ns
    assert kcli.main(args) == 0  # resume: nothing retrained
    assert (out / "seeds" / "seed_0.json").stat().st_mtime_ns == before
    with pytest.raises(SystemExit, match="different configuration"):
        kcli.main(args + ["--epochs", "4"])


def test_cli_llm_branch_end_to_end(tiny_llm, tmp_path, capsys):
    for fusion in ("concat", "attention"):
        out = tmp_path / fusion
        args = _common(out, ["--split", "random", "--features", f"llm:{tiny_llm}", "--fusion", fusion,
                             "--cache-dir", str(tmp_path / "cache"), "--no-plots"])
        assert kcli.main(args) == 0
        results = json.loads((out / "results.json").read_text())
        assert results["featurisers"].endswith(f"llm[qwen2-smiles] ({fusion} fusion)")
        assert results["run"]["llm_fingerprint"] == model_fingerprint(tiny_llm)
        assert np.isfinite(results["summary"]["test"]["rmse"]["mean"])
    with pytest.raises(SystemExit) as exit_:  # a usage error, before the data are read
        kcli.main(_common(tmp_path / "bad", ["--features", "rdkit2d", "--fusion", "attention"]))
    assert exit_.value.code == 2 and "needs the graph and an llm:<folder>" in capsys.readouterr().err


def test_unparseable_smiles_are_reported_and_excluded(tmp_path):
    path = tmp_path / "mixed.csv"
    rows = [("CCO", "1.0", ""), ("C1CC", "2.0", "1"), ("not a smiles", "3.0", "0"), ("", "1.0", "1"),
            ("c1ccccc1", "", ""), *[(s, str(i), str(i % 2)) for i, s in enumerate(SMALL[1:])]]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["smiles", "a", "b"])
        w.writerows(rows)
    table = kcli.load_table(path, ["a", "b"], task="regression")
    assert table.rows_read == len(rows)
    assert [bad["row"] for bad in table.invalid] == [1, 2, 3]
    assert table.unlabelled_rows == [4]  # parsed, but no label at all
    assert len(table.smiles) == len(rows) - 4 and np.isnan(table.y[0, 1])  # empty cell: missing, not 0
    out = tmp_path / "run"
    kcli.main(["--data", str(path), "--targets", "a", "b", "--task", "regression", "--seeds", "1", "--epochs", "2",
               "--hidden", "8", "--ffn-hidden", "8", "--features", "none", "--out", str(out), "--quiet", "--no-plots"])
    report = json.loads((out / "data_report.json").read_text())
    assert report["invalid_smiles"] == 3 and report["unlabelled_rows"] == 1 and report["missing_labels"] == 1
    md = (out / "results.md").read_text()
    assert "unparseable SMILES excluded: 3" in md


def test_real_files_report_their_unparseable_smiles():
    table = kcli.load_table(DATA / "BBBP.csv", ["p_np"], task="classification")
    assert table.rows_read == 2050 and len(table.invalid) == 11 and len(table.smiles) == 2039
    tox = kcli.load_table(DATA / "tox21.csv", ["NR-AR", "SR-ARE"], task="classification", max_rows=50)
    assert np.isnan(tox.y).any()  # empty cells stay missing


def test_fixed_test_sets_llinas(tmp_path):
    out = tmp_path / "llinas"
    kcli.main(["--data", str(DATA / "aqsol_llinas_train.csv"), "--targets", "y", "--task", "regression",
               "--test-file", str(DATA / "llinas2020_set1_test.csv"), "--test-file",
               str(DATA / "llinas2020_set2_test.csv"), "--max-rows", "150", "--seeds", "1", "--epochs", "2",
               "--hidden", "8", "--ffn-hidden", "8", "--features", "none", "--out", str(out), "--quiet",
               "--no-plots"])
    results = json.loads((out / "results.json").read_text())
    assert {"llinas2020_set1_test", "llinas2020_set2_test"} <= set(results["summary"])
    assert results["summary"]["llinas2020_set2_test"]["rmse"]["n"] == 1
    split = json.loads((out / "splits" / "seed_0.json").read_text())
    assert "test" not in split and len(split["valid"]) > 0
    assert results["data"]["test_files"]["llinas2020_set1_test"]["molecules"] == 100
    assert "| llinas2020_set1_test: " in (out / "results.md").read_text()  # several test sets: named


# ------------------------------------------------------------------ resume and label hygiene
def _small_csv(path, labels=None):
    """A 40-row regression CSV from SMALL (twice over), labels 0.1 * row unless given."""
    smiles = (SMALL * 2)[:40]
    labels = labels or [f"{0.1 * i:.1f}" for i in range(len(smiles))]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["smiles", "y"])
        w.writerows(zip(smiles, labels))
    return path


def _tiny_run(data, out, extra=()):
    return ["--data", str(data), "--targets", "y", "--task", "regression", "--seeds", "1", "--epochs", "2",
            "--hidden", "8", "--ffn-hidden", "8", "--features", "none", "--out", str(out), "--quiet", "--no-plots",
            *extra]


def test_an_edited_data_file_is_not_resumed(tmp_path):
    data, out = _small_csv(tmp_path / "d.csv"), tmp_path / "run"
    assert kcli.main(_tiny_run(data, out)) == 0
    seed_file = out / "seeds" / "seed_0.json"
    before = seed_file.stat().st_mtime_ns
    assert kcli.main(_tiny_run(data, out)) == 0  # same bytes: resumed
    assert seed_file.stat().st_mtime_ns == before
    labels = [f"{0.1 * i:.1f}" for i in range(40)]
    labels[5] = "9.9"  # same path, same rows, one label edited
    _small_csv(data, labels)
    with pytest.raises(SystemExit, match="different configuration.*data_sha256"):
        kcli.main(_tiny_run(data, out))
    assert kcli.main(_tiny_run(data, out, ["--overwrite"])) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["data_sha256"] == kcli.file_sha256(data)
    assert json.loads(seed_file.read_text())["fingerprint"] == config["fingerprint"]


def test_a_truncated_seed_file_is_trained_again(tmp_path, capsys):
    data, out = _small_csv(tmp_path / "d.csv"), tmp_path / "run"
    assert kcli.main(_tiny_run(data, out)) == 0
    seed_file = out / "seeds" / "seed_0.json"
    complete = json.loads(seed_file.read_text())
    seed_file.write_text(seed_file.read_text()[: len(seed_file.read_text()) // 2])  # a writer killed midway
    capsys.readouterr()
    assert kcli.main(_tiny_run(data, out)) == 0
    assert "seed_0.json is not a complete JSON result" in capsys.readouterr().err
    redone = json.loads(seed_file.read_text())
    assert redone["metrics"] == complete["metrics"]  # seeded: the same numbers again
    assert sorted(p.name for p in (out / "seeds").iterdir()) == ["seed_0.json"]  # no temporary files left


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path, monkeypatch):
    from deepmolm_plugin import result_files

    target = tmp_path / "seed_0.json"
    target.write_text('{"old": true}')

    def killed(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(result_files.os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        result_files.write_atomic(target, '{"new": true}')
    assert target.read_text() == '{"old": true}' and list(tmp_path.iterdir()) == [target]


def test_non_finite_labels_are_rejected_with_their_rows(tmp_path):
    labels = [f"{0.1 * i:.1f}" for i in range(40)]
    labels[3], labels[7], labels[12], labels[20] = "inf", "-inf", "nan", "1e999"
    labels[5], labels[9] = "", "NA"  # missing, as before
    data = _small_csv(tmp_path / "bad.csv", labels)
    message = r"4 non-finite label\(s\).*row 3 \(y='inf'\), row 7 \(y='-inf'\), row 12 \(y='nan'\), row 20"
    with pytest.raises(SystemExit, match=message) as error:
        kcli.main(_tiny_run(data, tmp_path / "run"))
    assert "row 5" not in str(error.value) and "row 9" not in str(error.value)
    labels[3], labels[7], labels[12], labels[20] = "1", "2", "3", "4"
    table = kcli.load_table(_small_csv(tmp_path / "ok.csv", labels), ["y"])
    assert table.unlabelled_rows == [5, 9] and not table.invalid  # missing: masked, the rows kept out
    assert len(table.smiles) == 38 and np.isfinite(table.y).all()


def test_an_roc_panel_without_curves_says_why_without_a_warning():
    import warnings

    from deepmolm_plugin import plots as draw

    fig, axes = draw.panels(2, figsize=(4, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warned about the empty legend
        draw.roc(axes[0], [], empty="no ROC: one class only")
        draw.roc(axes[1], [([0, 1], [0, 1], "seed 0 (0.500)")])
    assert [t.get_text() for t in axes[0].texts] == ["no ROC: one class only"] and axes[0].get_legend() is None
    assert not axes[1].texts and axes[1].get_legend() is not None


def _strict(path):
    """The file parsed as strict JSON (a bare NaN or Infinity raises)."""
    def refuse(constant):
        raise ValueError(f"{path.name}: {constant} is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def test_undefined_metrics_are_null_in_strict_json_and_said_in_the_report(tmp_path, capsys):
    # Was: a test split with one class (no ROC-AUC) or constant labels (no R²) wrote bare
    # NaN into results.json and every seed file (jq and JavaScript refuse them), exit 0
    # with "n/a" for the only test metric; a resumed run then also crashed on the nulls.
    smiles = SMALL
    with open(tmp_path / "rare.csv", "w", newline="") as f:
        csv.writer(f).writerows([["smiles", "y"]] + [[s, int(i in (3, 7, 11))] for i, s in enumerate(smiles)])
    run = ["--data", str(tmp_path / "rare.csv"), "--targets", "y", "--task", "classification", "--seeds", "3",
           "--epochs", "2", "--hidden", "8", "--ffn-hidden", "8", "--features", "none", "--out",
           str(tmp_path / "cls"), "--quiet"]
    assert kcli.main(run) == 1
    assert "no seed's test subset has both classes of any target" in capsys.readouterr().err
    files = [tmp_path / "cls" / "results.json", *sorted((tmp_path / "cls" / "seeds").glob("seed_*.json"))]
    docs = [_strict(p) for p in files]
    assert docs[0]["summary"]["test"]["roc_auc"]["mean"] is None
    assert all(d["metrics"]["test"]["roc_auc"] is None for d in docs[1:])
    first = (tmp_path / "cls" / "results.md").read_text()
    assert kcli.main(run) == 1  # every seed resumed from its file, nulls and all
    strip = lambda text: re.sub(r"\| [0-9.]+ \|$", "|", text, flags=re.M)  # noqa: E731 (the seconds column)
    assert strip((tmp_path / "cls" / "results.md").read_text()) == strip(first)

    labels = ["1.0"] * 36 + ["2.0"] * 4  # most random test subsets of 4 hold one value: no R² there
    data = _small_csv(tmp_path / "flat.csv", labels)
    assert kcli.main(_tiny_run(data, tmp_path / "reg", ["--seeds", "3"])) == 0
    summary = _strict(tmp_path / "reg" / "results.json")["summary"]["test"]
    assert summary["r2"]["n"] < 3 and summary["constant_tasks_seed_counts"] == {"y": 3 - summary["r2"]["n"]}
    assert "labels in the subset are all equal (R² undefined" in (tmp_path / "reg" / "results.md").read_text()


def test_result_files_get_the_umask_not_private_modes(tmp_path):
    import os

    from deepmolm_plugin import result_files

    old = os.umask(0o022)
    try:
        result_files._umask.cache_clear()
        result_files.write_atomic(tmp_path / "r.json", "{}")
    finally:
        os.umask(old)
        result_files._umask.cache_clear()
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644  # mkstemp's own mode is 0600


def test_ctrl_c_keeps_finished_seeds_and_a_rerun_resumes(tmp_path, monkeypatch, capsys):
    """was: a KeyboardInterrupt traceback and exit -2, not a word of the seeds kept."""
    data, out = _small_csv(tmp_path / "d.csv"), tmp_path / "run"
    real_run_seed = kcli.run_seed

    def interrupted_at_seed_1(*args, **kwargs):
        if args[4] == 1:
            raise KeyboardInterrupt
        return real_run_seed(*args, **kwargs)

    monkeypatch.setattr(kcli, "run_seed", interrupted_at_seed_1)
    assert kcli.main(_tiny_run(data, out, ["--seeds", "2"])) == 130
    assert "interrupted; the seeds finished so far are kept: rerun the same command" in capsys.readouterr().err
    kept = (out / "seeds" / "seed_0.json").stat().st_mtime_ns
    monkeypatch.setattr(kcli, "run_seed", real_run_seed)
    assert kcli.main(_tiny_run(data, out, ["--seeds", "2"])) == 0
    assert (out / "seeds" / "seed_0.json").stat().st_mtime_ns == kept


def test_reports_without_their_config_are_removed_when_a_run_starts(tmp_path, monkeypatch):
    """was: with config.json deleted, a run of another configuration killed before its end
    left the old run's results.json standing beside the new config.json."""
    data, out = _small_csv(tmp_path / "d.csv"), tmp_path / "run"
    assert kcli.main(_tiny_run(data, out)) == 0
    (out / "config.json").unlink()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(kcli, "run_seed", killed)
    assert kcli.main(_tiny_run(data, out, ["--hidden", "9"])) == 130
    assert json.loads((out / "config.json").read_text())["train"]["hidden"] == 9
    assert not (out / "results.json").exists() and not (out / "results.md").exists()
