"""Fifteenth round of mends: one reader for a model config's fields (a config object and
config.json's dict alike), one range for a depiction's side in every tool, one LLM pass
per molecule for deepmolm-kflm2's --fusion attention, and a model whose LLM is in llm/
loaded with the tokenizer and training dtype of llm/."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import torch
import pytest

from deepmolm_plugin.config_fields import config_field, has_config_field

from test_hostile_report_ninth import character_tokenizer  # noqa: F401  (module fixtures)
from test_kflm2_fourteenth import TWO, _mols, tiny_llm  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------ 1. one config reader
@pytest.mark.parametrize("kind", ["dict", "object"])
def test_config_fields_read_alike_from_an_object_and_a_dict(kind):
    from deepmolm_plugin.dtypes import trained_dtype
    from deepmolm_plugin.molecule.inputs import model_depiction, model_limits
    from deepmolm_plugin.molecule_fp import FingerprintSettings
    from deepmolm_plugin.projector.config import ProjectorConfig

    fields = {"model_type": "llava_qwen2", "mm_vision_tower": "deepencoder", "hidden_size": 64,
              "fp_bits": 4096, "render_size": 256, "max_atoms": None, "conformer_policy": "generate",
              "dtype": "bfloat16"}
    config = fields if kind == "dict" else SimpleNamespace(**fields)
    assert config_field(config, "render_size") == 256 and config_field(config, "absent", 7) == 7
    assert has_config_field(config, "max_atoms") and not has_config_field(config, "absent")
    assert ProjectorConfig.from_host_config(config).hidden_size == 64
    assert FingerprintSettings.from_config(config).bits == 4096
    assert model_limits(config) == {"max_atoms": None}  # recorded null: no cap, not the default
    depiction = model_depiction(config)
    assert (depiction.policy, depiction.render_size, depiction.notes) == ("generate", 256, ())
    import torch

    assert trained_dtype(config) == torch.bfloat16


def test_an_older_config_json_gives_its_dtype_as_torch_dtype():
    import torch

    from deepmolm_plugin.dtypes import trained_dtype

    assert trained_dtype({"torch_dtype": "float32"}) == torch.float32
    assert trained_dtype({"dtype": None, "torch_dtype": "bfloat16"}) == torch.bfloat16
    assert trained_dtype(SimpleNamespace(torch_dtype="bfloat16")) is None  # objects carry it as dtype


# ------------------------------------------------- 2. one range for a depiction's side
@pytest.mark.parametrize("size, ok", [(15, False), (16, True), (8192, True), (8193, False), (True, False),
                                      (256.0, False)])
def test_a_depiction_side_is_held_to_one_range_everywhere(size, ok, tmp_path):
    from deepmolm_plugin.molecule.inputs import model_depiction, model_render_size, render_size_problem

    assert (render_size_problem(size) is None) == ok
    if ok:
        assert model_render_size({"render_size": size}) == size
        assert model_depiction({}, render_size=size).render_size == size
        return
    with pytest.raises(ValueError, match="16-8192 pixels"):
        model_render_size({"render_size": size})
    with pytest.raises(ValueError, match="render_size.*16-8192 pixels"):
        model_depiction({}, render_size=size)
    if isinstance(size, int) and not isinstance(size, bool):  # the command-line tools take whole numbers
        smi = tmp_path / "m.csv"
        smi.write_text("id,smiles\nethanol,CCO\n")
        for tool, option in (("deepmolm_plugin.molecule.tools", None), ("deepmolm_plugin.data.prepare", None)):
            argv = ([sys.executable, "-c", "import sys; from deepmolm_plugin.molecule.tools import render_main;"
                     " sys.exit(render_main(sys.argv[1:]))", str(smi), "--out", str(tmp_path / "r"), "--size",
                     str(size)] if tool.endswith("tools") else
                    [sys.executable, "-m", tool, "--format", "csv", "--input", str(smi), "--out", str(tmp_path / "p"),
                     "--image-size", str(size)])
            done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            assert done.returncode != 0, (tool, done.stdout, done.stderr)
            assert (">= 16" if size < 16 else "<= 8192") in done.stderr, (tool, done.stderr)


# ------------------------------------------ 3. one LLM pass for --fusion attention
def test_fusion_attention_runs_the_llm_once_per_molecule(tiny_llm, tmp_path):  # noqa: F811
    from deepmolm_plugin.property.cli import build_inputs
    from deepmolm_plugin.property.featurizers import LLMEmbedding

    feat = LLMEmbedding(tiny_llm, cache_dir=tmp_path / "c", progress=False)
    passes = []
    states = feat._states
    feat._states = lambda smiles: passes.append(list(smiles)) or states(smiles)
    table = SimpleNamespace(mols=_mols(TWO), smiles=TWO)
    inputs = build_inputs(table, graph=False, featurizer=feat, tokens=True)
    assert passes == [TWO]  # was: [TWO, TWO], the means and then the tokens
    fresh = LLMEmbedding(tiny_llm, cache_dir=tmp_path / "fresh", progress=False)
    np.testing.assert_allclose(inputs.embed, fresh(_mols(TWO), TWO), rtol=1e-6, atol=1e-7)
    assert [t.shape[0] for t in inputs.tokens] == [len(s) for s in fresh._states(TWO)]
    assert build_inputs(table, graph=False, featurizer=feat, tokens=True) and passes == [TWO]  # both cached


# ------------------------------- 4. "auto"'s line once for a model whose LLM is in llm/
def test_auto_dtype_is_said_once_for_a_model_whose_llm_is_in_a_subfolder(trained_checkpoint, tmp_path, monkeypatch,
                                                                          caplog):
    """A VILA-style folder: the model in llm/, a top-level config.json with llm_cfg. The loader
    reads llm/'s config; the chat CLI read the top one for its own "auto" line, which records
    no dtype, so the choice was said twice, once without and once with the training dtype.
    And the loader read the tokenizer from the top folder: "no usable tokenizer", though
    the model beside it in llm/ loaded."""
    import json
    import logging

    from deepmolm_plugin import dtypes

    from test_dtype_cache_eleventh import _chat_dtype

    monkeypatch.setattr(dtypes, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(dtypes, "_logged", set())
    folder = tmp_path / "vila"
    (folder / "llm").mkdir(parents=True)
    for path in trained_checkpoint.iterdir():
        (folder / "llm" / path.name).symlink_to(path)
    top = json.loads((trained_checkpoint / "config.json").read_text())
    assert top.get("dtype", top.get("torch_dtype")) == "float32"
    top = {k: v for k, v in top.items() if k not in ("dtype", "torch_dtype")} | {"llm_cfg": {}}
    (folder / "config.json").write_text(json.dumps(top))
    with caplog.at_level(logging.INFO, logger="deepmolm_plugin.dtypes"):
        assert _chat_dtype(folder, monkeypatch) == torch.bfloat16
    said = [r.getMessage() for r in caplog.records if r.name == "deepmolm_plugin.dtypes"]
    assert len(said) == 1 and "trained in float32" in said[0], said


# ------------------------------------------- 5. `~` in eval.report --tokenizer hf:
def test_report_tokenizer_folder_expands_tilde(tmp_path, character_tokenizer, monkeypatch, capsys):  # noqa: F811
    from deepmolm_plugin.eval import report

    from test_hostile_report_ninth import _files

    monkeypatch.setenv("HOME", str(character_tokenizer.parent))
    answers, refs = _files(tmp_path, [("c1", "caption", "An alcohol.", "An alcohol.")])
    with pytest.raises(SystemExit):
        report.main([str(answers), "--references", str(refs), "--out", str(tmp_path / "out"),
                     f"--tokenizer=hf:~/{character_tokenizer.name}"])
    err = capsys.readouterr().err
    # it loaded (and is refused for its white-space tokens); was: "no tokenizer loads from this folder"
    assert "returned the token ' '" in err and f"hf:{character_tokenizer}" in err, err


# ------------------------------ 6. experiment_fusion --from-json: names and the work lock
def _experiment_script():
    import importlib
    from pathlib import Path

    import deepmolm_plugin

    scripts = Path(deepmolm_plugin.__file__).resolve().parents[1] / "scripts"
    sys.path.insert(0, str(scripts))
    return importlib.import_module("experiment_fusion"), scripts


def test_from_json_writes_beside_a_results_file_with_a_dot_in_its_name(tmp_path, capsys):
    import shutil

    ef, scripts = _experiment_script()
    path = tmp_path / "fusion.v2.json"
    shutil.copy(scripts / "results" / "experiment_fusion.json", path)
    ef.experiment(["--from-json", str(path)])
    # was: fusion.md and fusion.png, another results file's names (`with_suffix` replaced ".v2")
    assert (tmp_path / "fusion.v2.md").is_file() and (tmp_path / "fusion.v2.png").is_file()
    assert not (tmp_path / "fusion.md").exists() and not (tmp_path / "fusion.png").exists()
    assert "fusion.v2_parity.png is not drawn again" in capsys.readouterr().err


def test_from_json_does_not_read_a_work_folder_a_run_holds(tmp_path, capsys):
    import shutil

    ef, scripts = _experiment_script()
    path = tmp_path / "experiment_fusion.json"
    shutil.copy(scripts / "results" / "experiment_fusion.json", path)
    before = path.read_text()
    work = tmp_path / "work"
    work.mkdir()
    held = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                             "from deepmolm_plugin import output_lock; "
                             "output_lock.hold(output_lock.folder_lock(Path(sys.argv[1]), 'experiment_fusion')); "
                             "print('held', flush=True); time.sleep(120)", str(work)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert held.stdout.readline().strip() == "held"
        with pytest.raises(SystemExit) as exit_:
            ef.experiment(["--from-json", str(path), "--work", str(work)])
    finally:
        held.kill()
        held.wait()
    assert exit_.value.code == 2 and "--work" in capsys.readouterr().err
    assert path.read_text() == before and not (tmp_path / "experiment_fusion.md").exists()  # nothing written


# --------------------- 7. the property head's note knows the standard-molecule rules
def test_a_head_trained_on_older_standard_molecules_is_named():
    from deepmolm_plugin.data.graphs import graph_features_note
    from deepmolm_plugin.molecule.standard import STANDARD_RULES
    from deepmolm_plugin.property.features import GRAPH_FEATURES
    from patches.molecule_data import use_model_molecule_settings

    class Dataset:
        molecules = SimpleNamespace(policy="auto", render_size=64, limits={}, fp=None)
        prepared = ({}, None)

    config = SimpleNamespace(fp_bits=4096, fp_levels=4)
    use_model_molecule_settings(Dataset(), config)
    assert (config.graph_features, config.standard_molecule) == (GRAPH_FEATURES, STANDARD_RULES)
    assert graph_features_note(config) is None
    assert graph_features_note({"graph_features": GRAPH_FEATURES, "standard_molecule": STANDARD_RULES}) is None
    # was: None, though its graphs of C[S+](C)[O-] and CS(C)=O were two molecules' graphs
    older = SimpleNamespace(graph_features=GRAPH_FEATURES)
    note = graph_features_note(older)
    assert "rules it does not record (1 or 2) (this code: 2)" in note and "charge-separated hypervalent" in note
    assert "standard-molecule rules 1 (this code: 2)" in graph_features_note({**vars(older), "standard_molecule": 1})
    assert "graph features" not in note  # only what differs


# ---------------- 8. "auto" on a CPU that reports AVX512-BF16 without AMX says it may be slower
@pytest.mark.parametrize("amx, said", [(True, "(AMX-BF16)"), (False, "no AMX: on some such CPUs bf16 matmuls run "
                                                                      "slower than fp32")])
def test_auto_names_the_bf16_kind_and_the_way_to_fp32(amx, said, monkeypatch, caplog):
    import logging

    from deepmolm_plugin import dtypes

    report = {"avx2": True, "amx_bf16": amx, "avx512_bf16": True}
    monkeypatch.setattr(torch._C._cpu, "_get_cpu_capability", lambda: report)
    monkeypatch.setattr(dtypes, "_logged", set())
    with caplog.at_level(logging.WARNING, logger="deepmolm_plugin.dtypes"):
        assert dtypes.resolve_dtype("auto", "cpu") == torch.bfloat16  # the rule stays: native bf16 -> bf16
    line = caplog.records[-1].getMessage()
    assert said in line and (("--dtype float32" in line) != amx), line


# ------- 9. a structure, atom list or tokens beside their own charge-separated SMILES
@pytest.mark.parametrize("spelling", ["C[S+](C)[O-]", "CS(C)=O"])
def test_a_charge_separated_smiles_goes_with_its_own_structure_and_tokens(spelling, tmp_path):
    """The builders write C[S+](C)[O-] neutral (`hypervalent`), so its structure and tokens are
    CS(C)=O's; the SMILES beside them was compared as written: refused ("its structure is
    'CS(C)=O' but its SMILES is 'C[S+](C)[O-]'", "level-0 tokens ... 2 of 4 rows differ")."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    from deepmolm_plugin.molecule.inputs import InputResolver

    mol = Chem.AddHs(Chem.MolFromSmiles("C[S+](C)[O-]"))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    sdf = tmp_path / "dmso.sdf"
    sdf.write_text(Chem.MolToMolBlock(mol) + "$$$$\n")  # written charge-separated, as XYZ perception gives it
    atoms = {"atoms": [a.GetSymbol() for a in mol.GetAtoms()],
             "coordinates": mol.GetConformer().GetPositions().tolist()}
    resolver = InputResolver(render_folder=str(tmp_path / "renders"), render_size=64)
    tokens = resolver.molecule_fp({"smiles": spelling}, "made")
    for fields in ({"structure": str(sdf), "smiles": spelling}, {**atoms, "smiles": spelling},
                   {"smiles": "C[S+](C)[O-]", "molecule_fp": tokens.tolist()},
                   {"smiles": "CS(C)=O", "molecule_fp": tokens.tolist()}):
        resolved = resolver.resolve(fields, "q")
        assert sorted(resolved.molecule_fp[:, 0].tolist()) == sorted(tokens[:, 0].tolist())
    # another molecule's tokens are still refused (dimethyl sulfide: no oxygen row)
    with pytest.raises(Exception, match="atom rows|level-0"):
        resolver.resolve({"smiles": "C[S+](C)[O-]", "molecule_fp": resolver.molecule_fp({"smiles": "CSC"}, "x").tolist()},
                         "q")


def test_an_sdf_with_a_bond_left_out_is_not_told_about_pdb_records(tmp_path):
    """Was: "...not bonded: the file left out bonds (incomplete CONECT records?)" for every
    format, which sent an SDF's user looking for PDB records."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    from deepmolm_plugin.molecule import read_structures

    ethanol, water = (Chem.AddHs(Chem.MolFromSmiles(s)) for s in ("CCO", "O"))
    for mol in (ethanol, water):
        AllChem.EmbedMolecule(mol, randomSeed=1)
    both = Chem.CombineMols(ethanol, water)
    conf = both.GetConformer()
    c0 = conf.GetAtomPosition(0)
    w = ethanol.GetNumAtoms()  # water's oxygen, moved to 0.9 A from ethanol's first carbon
    conf.SetAtomPosition(w, (c0.x + 0.9, c0.y, c0.z))
    for k in (1, 2):
        conf.SetAtomPosition(w + k, (c0.x + 0.9, c0.y + 0.95 * (k * 2 - 3), c0.z + 0.3))
    path = tmp_path / "two.sdf"
    path.write_text(Chem.MolToMolBlock(both) + "$$$$\n")
    [failed] = read_structures(str(path), policy="auto")
    reason = getattr(failed, "reason", "")
    assert "a bond length, but not bonded" in reason and "molfile" in reason, failed


# ----------------------------------- 10. deepmolm-kflm2 says what its long passes do
def test_kflm2_says_each_long_pass_and_is_quiet_with_quiet(tmp_path, capsys, monkeypatch):
    from deepmolm_plugin.property import cli as kcli
    from deepmolm_plugin.property.featurizers import molecule_bar

    from test_hostile_kflm2 import FORTY, _run
    from test_hostile_property_images import _csv

    monkeypatch.setenv("DEEPMOLM_PROPERTY_CACHE", str(tmp_path / "cache"))
    data = _csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i % 7) for i, s in enumerate(FORTY)])
    argv = _run(data, tmp_path / "run")
    argv[argv.index("--features") + 1] = "morgan"
    kcli.main([a for a in argv if a != "--quiet"])
    err = capsys.readouterr().err
    # was: nothing before the first seed (minutes on a large table)
    assert f"reading {data}" in err and "molecules read in" in err, err
    assert "computing morgan[radius 2, 2048 bits, counts] and graphs of 40 molecules" in err, err
    kcli.main(argv + ["--overwrite"])
    assert "reading" not in capsys.readouterr().err  # --quiet
    # the bar: shown for a long pass, not for a short one or when not asked
    assert not molecule_bar(range(600), "x", True).disable
    assert molecule_bar(range(10), "x", True).disable and molecule_bar(range(600), "x", False).disable


# ------------------------------ 11. JSON nested too deeply is "not JSON", not a traceback
def test_deeply_nested_json_is_one_line_in_every_reader(tmp_path, capsys):
    import json

    from deepmolm_plugin import usage
    from deepmolm_plugin.eval import questions, report

    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(json.JSONDecodeError, match="nested too deeply"):
        usage.json_loads_unique(deep)
    assert usage.json_loads_unique("[" * 500 + "]" * 500) == json.loads("[" * 500 + "]" * 500)  # still read
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"question_id": "q1", "text": "1"}) + "\n"
                       + '{"question_id": "q2", "text": ' + deep + "}\n")
    data = tmp_path / "data.json"
    data.write_text('[{"id": "a", "smiles": "CCO", "x": ' + deep + "}]")
    for call in (lambda: report.main([str(answers), "--out", str(tmp_path / "out"), "--no-plots"]),
                 lambda: questions.main([str(data), str(tmp_path / "q.jsonl")])):
        with pytest.raises(SystemExit) as exit_:  # was: a RecursionError traceback
            call()
        code = exit_.value.code
        err = code if isinstance(code, str) else capsys.readouterr().err.strip()  # SystemExit("error: ...")
        assert code != 0 and "nested too deeply" in err and len(err.splitlines()) == 1, err
        assert ("line 2" in err) or str(data) in err, err
        assert "char 0" not in err  # no position it does not have


# ------------------------------------------- 12. eval.report says its stages on a large run
def test_report_says_its_stages_for_many_answers_only(tmp_path, capsys, monkeypatch):
    import json

    from deepmolm_plugin.eval import report, scoring

    monkeypatch.setattr(scoring, "SAY_STAGES_FROM", 5)
    monkeypatch.setattr(report, "SAY_STAGES_FROM", 5)
    for n, said in ((4, False), (6, True)):
        answers = tmp_path / f"a{n}.jsonl"
        answers.write_text("".join(json.dumps({"question_id": f"q{i}", "text": "An alcohol.", "task": "caption",
                                               "answer": "An alcohol."}) + "\n" for i in range(n)))
        refs = tmp_path / f"r{n}.jsonl"
        refs.write_text("".join(json.dumps({"question_id": f"q{i}", "task": "caption", "answer": "An alcohol."})
                                + "\n" for i in range(n)))
        report.main([str(answers), "--references", str(refs), "--out", str(tmp_path / f"out{n}"), "--no-plots",
                     "--tokenizer", "whitespace"])
        err = capsys.readouterr().err
        assert ("merged" in err and "scoring them" in err and "writing the report" in err) == said, err


def test_eval_questions_names_a_name_too_long(tmp_path, capsys):
    import json

    from deepmolm_plugin.eval import questions

    data = tmp_path / "data.json"
    data.write_text(json.dumps([{"id": "a", "smiles": "CCO", "conversations": [
        {"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "Ethanol."}]}]))
    with pytest.raises(SystemExit) as exit_:  # was: OSError [Errno 36] traceback
        questions.main([str(data), str(tmp_path / ("q" * 300 + ".jsonl"))])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and "QUESTIONS" in err and "name too long" in err and len(err.splitlines()) == 1
    records = json.loads(data.read_text())
    records[0]["image"] = "p" * 300 + ".png"
    data.write_text(json.dumps(records))
    with pytest.raises(SystemExit) as exit_:
        questions.main([str(data), str(tmp_path / "q.jsonl")])
    message = exit_.value.code if isinstance(exit_.value.code, str) else capsys.readouterr().err
    assert "name too long" in str(message) and "Errno" not in str(message), message


# ------------------------------- 13. deepmolm-render: many records of one id, a long INPUT
def test_render_names_repeated_ids_without_probing_from_two():
    from deepmolm_plugin.molecule.tools import _PngNames

    names = _PngNames({"x__3"})  # a picture already in --out
    assert [names("x") for _ in range(4)] == ["x.png", "x__2.png", "x__4.png", "x__5.png"]
    assert names("X") == "X__6.png" and names("x!") == "x__7.png"  # case and unsafe characters: one base
    probes = []

    class Counting(set):
        def __contains__(self, item):
            probes.append(item)
            return super().__contains__(item)

    names = _PngNames(set())
    names.used = Counting()
    for _ in range(2000):
        names("same")
    assert len(probes) < 3 * 2000  # was 2000^2/2: every repeat counted up from __2


@pytest.mark.parametrize("tool", ["fingerprint", "render"])
def test_a_long_input_name_is_one_line(tool, tmp_path, capsys):
    from deepmolm_plugin.molecule import tools

    main = tools.render_main if tool == "render" else tools.fingerprint_main
    out = ["--out", str(tmp_path / ("r" if tool == "render" else "f.jsonl"))]
    with pytest.raises(SystemExit) as exit_:  # was: OSError [Errno 36] traceback
        main([str(tmp_path / ("m" * 300 + ".smi")), *out])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and "INPUT" in err and "name too long" in err and len(err.splitlines()) == 1, err


# ---------------------------------------------- 14. mends of this round's review
def test_review_mends_loops_dot_dot_and_deep_json(tmp_path, capsys, monkeypatch):
    import json
    import pickle

    from deepmolm_plugin import usage
    from deepmolm_plugin.data.prepare import cli as prepare_cli
    from deepmolm_plugin.eval import report
    from deepmolm_plugin.eval.resume import answer_lines
    from deepmolm_plugin.property import cli as kcli

    from test_hostile_kflm2 import FORTY, _run
    from test_hostile_property_images import _csv

    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    # kflm2's cache-inside-out check: Path.resolve raised RuntimeError on a loop
    monkeypatch.delenv("DEEPMOLM_PROPERTY_CACHE", raising=False)
    argv = _run(_csv(tmp_path / "d.csv", ["smiles", "y"], [(s, i) for i, s in enumerate(FORTY)]), tmp_path / "run")
    argv[argv.index("--features") + 1] = "morgan"
    with pytest.raises(SystemExit) as exit_:
        kcli.main(argv + ["--cache-dir", str(tmp_path / "loop_a")])
    assert exit_.value.code == 2 and "--cache-dir" in capsys.readouterr().err
    # deepmolm-prepare --input a loop: the message's Path.resolve raised RuntimeError
    try:
        code = prepare_cli.main(["--format", "csv", "--input", str(tmp_path / "loop_a"), "--out", str(tmp_path / "p")])
    except SystemExit as e:
        code = e.code
    assert code not in (0, None) and "loop_a does not exist" in capsys.readouterr().err
    # a refused report given `--out new/../keep` removed the user's empty `keep`
    keep = tmp_path / "keep"
    keep.mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        report.main([str(tmp_path / "missing.jsonl"), "--out", "new/../keep"])
    assert keep.is_dir()
    # model_vqa --resume's reader skips a line nested too deeply (was a RecursionError traceback)
    answers = tmp_path / "a.jsonl"
    answers.write_text(json.dumps({"question_id": "q1", "text": "1"}) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    assert [line["question_id"] for line in answer_lines(answers)] == ["q1"]
    # the error crosses a process pool intact
    error = pickle.loads(pickle.dumps(usage.TooDeepJSON("[[")))
    assert isinstance(error, usage.TooDeepJSON) and "nested too deeply" in str(error)
