"""One molecule whichever path resolves it, fifth sweep (sweep B of 2026-12-05): eval with a
model without molecule tokens checks its molecule sources too, a record giving both a
structure and an atom list is refused, given tokens are checked against the molecule's
level-0 tokens (not only their row count), and sidecar rows made with other fingerprint
settings than the model's are refused wherever they are read."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from deepmolm_plugin.eval.model_vqa import QuestionError, prepare_questions
from deepmolm_plugin.molecule.fingerprint import level0_tokens, molecule_fp
from deepmolm_plugin.molecule.inputs import InputError, InputResolver
from deepmolm_plugin.molecule.sidecar import SidecarBuilder, dtype_for, reference
from deepmolm_plugin.molecule_fp import FingerprintSettings

WATER = {"atoms": ["O", "H", "H"], "coordinates": [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]}


def _phenol(tmp_path) -> str:
    mol = Chem.AddHs(Chem.MolFromSmiles("c1ccccc1O"))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    path = tmp_path / "phenol.sdf"
    Chem.MolToMolFile(mol, str(path))
    return str(path)


def _config(projector: str, aux=None, bits: int = 4096):
    return SimpleNamespace(mm_projector_type=projector, aux_property_task=aux, fp_bits=bits, fp_levels=4)


@pytest.mark.parametrize("projector, aux", [("mlp2x_gelu", None), ("mlp2x_gelu", "esol"), ("fusion", None)])
def test_eval_checks_the_molecule_sources_whatever_the_projector(tmp_path, projector, aux):
    # was: a model without molecule tokens took ethanol's picture with phenol's graph for the
    # property head (only the token path ran the one-molecule check)
    phenol = _phenol(tmp_path)
    lines = [{"question_id": "mixed", "text": "<image>\nWhat is it?", "smiles": "CCO", "structure": phenol},
             {"question_id": "two sources", "text": "<image>\nWhat is it?", "structure": phenol, **WATER},
             {"question_id": "ok", "text": "<image>\nWhat is it?", "smiles": "Oc1ccccc1", "structure": phenol}]
    failures = []
    kept, _ = prepare_questions(lines, str(tmp_path), tmp_path / "renders", _config(projector, aux),
                                failures=failures)
    assert [line["question_id"] for line in kept] == ["ok"]
    reasons = {f["question_id"]: f["reason"] for f in failures}
    assert "is 'Oc1ccccc1' but its SMILES is 'CCO'" in reasons["mixed"]
    assert "gives both `structure` and `atoms`" in reasons["two sources"]


def test_a_structure_and_an_atom_list_are_refused_on_every_path(tmp_path):
    # was: the structure was read and the atom list (here water) ignored without a word
    resolver = InputResolver(render_folder=str(tmp_path / "renders"))
    fields = {"structure": _phenol(tmp_path), **WATER}
    for call in (lambda: resolver.molecule_fp(fields, "r"), lambda: resolver.resolve(fields, "r", fingerprint=False)):
        with pytest.raises(InputError, match="record 'r': gives both `structure` and `atoms`"):
            call()


def test_level0_tokens_are_the_fingerprints_first_column():
    for smiles in ("CCO", "CC(C)O", "[NH3+]CC([O-])=O", "[14CH3]CO", "[2H]C([2H])([2H])O", "CC[O-].[Na+]"):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        AllChem.EmbedMolecule(mol, randomSeed=1)
        for settings in (FingerprintSettings(), FingerprintSettings(bits=1024, levels=2)):
            assert level0_tokens(Chem.MolFromSmiles(smiles), settings).tolist() == \
                molecule_fp(mol, settings=settings)[:, 0].tolist(), smiles


def test_tokens_of_an_isomer_are_refused_and_reordered_rows_are_not(tmp_path):
    # was: only the row count was compared: 2-propanol's and methyl ethyl ether's tokens went
    # with 1-propanol's SMILES and picture
    resolver = InputResolver(render_folder=str(tmp_path / "renders"))
    tokens = {s: resolver.molecule_fp({"smiles": s}, s) for s in ("CCCO", "CC(C)O", "CCOC", "OCCC")}
    for other in ("CC(C)O", "CCOC"):
        with pytest.raises(InputError, match=r"record 'q': molecule_fp's level-0 tokens .* are not those of its "
                                             r"SMILES 'CCCO': \d of 4 rows differ"):
            resolver.resolve({"smiles": "CCCO", "molecule_fp": tokens[other].tolist()}, "q")
    # 1-propanol's tokens made from another SMILES (atoms in another order) are its own
    given = resolver.resolve({"smiles": "CCCO", "molecule_fp": tokens["OCCC"].tolist()}, "q")
    assert given.molecule_fp.tolist() == tokens["OCCC"].tolist()
    # tokens folded to other bits than the model's, without a stamp to say so
    small = InputResolver(FingerprintSettings(bits=1024)).molecule_fp({"smiles": "CCCO"}, "s")
    with pytest.raises(InputError, match="or were made with other settings than the model's fp_bits=4096"):
        resolver.resolve({"smiles": "CCCO", "molecule_fp": small.tolist()}, "q")


def _prepared_folder(tmp_path, bits: int):
    """A folder as deepmolm-prepare leaves it: <out>/fp/test.npy and <out>/manifest.json."""
    out = tmp_path / "prepared"
    tokens = InputResolver(FingerprintSettings(bits=bits)).molecule_fp({"smiles": "CCO"}, "m").numpy()
    builder = SidecarBuilder(out / "fp" / "test.npy.part", len(tokens), tokens.shape[1], dtype_for(bits))
    offset = builder.append(tokens)
    builder.commit(out / "fp" / "test.npy")
    (out / "manifest.json").write_text(json.dumps({"tool": "deepmolm-prepare",
                                                   "settings": {"fp_bits": bits, "fp_levels": 4}}))
    return out, reference("fp/test.npy", offset, len(tokens), tokens)


def test_sidecar_rows_of_other_settings_are_refused_where_they_are_read(tmp_path):
    # was: eval served a prepared folder's 4096-bit rows to an 8192-bit model without a word
    # (the same rows inline with their stamp were refused; training checked its record folder)
    out, ref = _prepared_folder(tmp_path, 4096)
    line = {"question_id": "q1", "text": "<image>\nWhat is it?", "molecule_fp": ref, "smiles": "CCO"}
    with pytest.raises(QuestionError, match=r"question 'q1': sidecar .*fp/test.npy holds tokens made with "
                                            r"fp_bits=4096, fp_levels=4 \(.*manifest.json\), but the model uses "
                                            "fp_bits=8192, fp_levels=4"):
        prepare_questions([dict(line)], str(out), tmp_path / "renders", _config("fusion", bits=8192),
                          question_folder=str(out))
    _, inputs = prepare_questions([dict(line)], str(out), tmp_path / "renders", _config("fusion"),
                                  question_folder=str(out))
    assert np.array_equal(inputs[0].molecule_fp.numpy(), InputResolver().molecule_fp({"smiles": "CCO"}, "m").numpy())


def test_without_tokens_the_sources_are_compared_as_read(tmp_path, monkeypatch):
    # review: the check built the structure under the resolver's policy, so a model without
    # molecule tokens embedded it for every question, and refused a 2D file under
    # `from-file` for a fingerprint nobody makes
    from deepmolm_plugin.molecule import conformer

    mol = Chem.MolFromSmiles("c1ccccc1O")
    AllChem.Compute2DCoords(mol)
    Chem.MolToMolFile(mol, str(tmp_path / "phenol2d.mol"))
    monkeypatch.setattr(conformer, "generate_conformer", lambda *a, **k: pytest.fail("embedded"))
    resolver = InputResolver(policy="from-file", render_folder=str(tmp_path / "renders"))
    fields = {"smiles": "Oc1ccccc1", "structure": str(tmp_path / "phenol2d.mol")}
    assert resolver.resolve(fields, "q", fingerprint=False).image
    with pytest.raises(InputError, match="is 'Oc1ccccc1' but its SMILES is 'CCO'"):
        resolver.resolve({**fields, "smiles": "CCO"}, "q2", fingerprint=False)


def test_a_manifest_of_another_tool_is_not_read_as_settings(tmp_path):
    # review: a foreign manifest.json (a JSON list) beside a sidecar escaped as a bare error
    out, ref = _prepared_folder(tmp_path, 4096)
    (out / "manifest.json").write_text(json.dumps(["not", "ours"]))
    got = InputResolver(record_folder=str(out)).molecule_fp({"molecule_fp": ref, "smiles": "CCO"}, "m")
    assert got.shape[0] == 3
    (out / "manifest.json").write_text("{cut")
    resolver = InputResolver(record_folder=str(out))
    with pytest.raises(InputError, match=r"record 'm': .*manifest.json is unreadable"):
        resolver.molecule_fp({"molecule_fp": ref, "smiles": "CCO"}, "m")
