"""Fourteenth round of hostile molecule findings: one spelling of hypervalent bonds, radicals
from coordinates, dative bonds refused when read, the XYZ title note, failure lines that name
a file once, and Ctrl-C at a prompt after RDKit's embedding."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from deepmolm_plugin.molecule import MoleculeError, fingerprint_record, molecule_from_smiles, read_structures
from deepmolm_plugin.molecule.inputs import InputError, InputResolver
from deepmolm_plugin.molecule.standard import molecule_keys
from deepmolm_plugin.molecule.tools import fingerprint_main, render_main

ROOT = Path(__file__).resolve().parents[1]


def _tokens(record) -> list:
    """The record's token rows as a sorted list (atom order differs between spellings)."""
    return sorted(map(tuple, np.asarray(fingerprint_record(record)).tolist()))


def _embedded(smiles: str) -> Chem.Mol:
    """``smiles`` with hydrogens and one seeded, MMFF-optimised 3D conformer."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = AllChem.ETKDGv3()
    params.randomSeed = 7
    assert AllChem.EmbedMolecule(mol, params) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    return mol


def _write_xyz(mol: Chem.Mol, path: Path, comment: str) -> None:
    positions = mol.GetConformer().GetPositions()  # [atoms, 3]
    lines = [f"{a.GetSymbol()} {x:.6f} {y:.6f} {z:.6f}" for a, (x, y, z) in zip(mol.GetAtoms(), positions)]
    path.write_text(f"{mol.GetNumAtoms()}\n{comment}\n" + "\n".join(lines) + "\n")


# --- 1. one spelling of hypervalent bonds ----------------------------------------------------
@pytest.mark.parametrize("smiles", ["CS(C)=O", "O=S1C=CC=C1", "CS(N)=O"])
def test_a_sulfoxide_read_from_xyz_gets_the_tokens_of_its_sdf(tmp_path, smiles):
    # was: XYZ perception gave C[S+](C)[O-] (thiophene S-oxide the aromatic [O-][s+]1cccc1): 4 of 4 rows differed
    mol = _embedded(smiles)
    sdf, xyz = tmp_path / "m.sdf", tmp_path / "m.xyz"
    with Chem.SDWriter(str(sdf)) as writer:
        writer.write(mol)
    _write_xyz(mol, xyz, "")
    from_sdf, from_xyz = (next(iter(read_structures(p, policy="from-file"))) for p in (sdf, xyz))
    assert not isinstance(from_xyz, Exception), from_xyz
    assert Chem.MolToSmiles(Chem.RemoveHs(from_xyz.mol)) == Chem.MolToSmiles(Chem.RemoveHs(from_sdf.mol))
    assert _tokens(from_xyz) == _tokens(from_sdf)
    assert any("taken in their neutral form" in note for note in from_xyz.notes), from_xyz.notes


@pytest.mark.parametrize("neutral, separated", [
    ("CS(C)=O", "C[S+](C)[O-]"),
    ("CP(C)(C)=O", "C[P+](C)(C)[O-]"),
    ("CS(C)(=O)=O", "C[S+2](C)([O-])[O-]"),
    ("O=S1C=CC=C1", "[O-][s+]1cccc1"),
    ("O=Ic1ccccc1", "[O-][I+]c1ccccc1"),
    ("C=P(C)(C)C", "[CH2-][P+](C)(C)C"),
])
def test_both_spellings_of_a_hypervalent_bond_give_one_molecule(neutral, separated):
    a, b = molecule_from_smiles(neutral, id="a"), molecule_from_smiles(separated, id="b")
    assert Chem.MolToSmiles(Chem.RemoveHs(b.mol)) == Chem.MolToSmiles(Chem.RemoveHs(a.mol))
    assert _tokens(a) == _tokens(b)
    # KFLM2's graphs and copy keys are one for both spellings too
    assert len(set(molecule_keys([Chem.MolFromSmiles(neutral), Chem.MolFromSmiles(separated)]))) == 1


def test_sulfur_oxides_take_the_neutral_form_and_nitrogen_oxides_stay_charge_separated():
    # one rule, both halves: S (and P, Se, I...) can be hypervalent; N has no valence of 5, so
    # amine oxides, nitro groups, nitrones and azides keep RDKit's charge-separated form
    assert Chem.MolToSmiles(Chem.RemoveHs(molecule_from_smiles("C[S+](C)[O-]", id="s").mol)) == "CS(C)=O"
    for smiles in ["C[N+](C)(C)[O-]", "C[N+](=O)[O-]", "C=[N+](C)[O-]", "CN=[N+]=[N-]"]:
        record = molecule_from_smiles(smiles, id="n")
        assert Chem.MolToSmiles(Chem.RemoveHs(record.mol)) == Chem.CanonSmiles(smiles)
        assert not any("neutral form" in note for note in record.notes)


# --- 2. a radical from coordinates -------------------------------------------------------------
@pytest.mark.parametrize("comment, advice", [("charge=0", "the total charge 0 is wrong"),
                                             ("", "If it is an ion (only then: another charge makes another molecule), state its total charge")])
def test_a_radical_from_xyz_is_called_one(tmp_path, comment, advice):
    # was: RDKit's "Final molecular charge (0) does not match input (-1)", and the advice to state
    # a charge, which silently gave TEMPO's anion
    path = tmp_path / "tempo.xyz"
    _write_xyz(_embedded("CC1(C)CCCC(C)(C)N1[O]"), path, comment)
    (error,) = list(read_structures(path))
    assert isinstance(error, MoleculeError)
    assert "odd number of electrons" in error.reason and "radical" in error.reason, error.reason
    assert "give it as SDF or MOL with its bond orders" in error.reason and "SMILES" in error.reason
    assert advice in error.reason
    assert "does not match input" not in error.reason


# --- 3, 4. dative bonds are refused when read, by every tool -----------------------------------
def test_a_dative_bond_is_refused_before_any_3d_work(monkeypatch):
    import deepmolm_plugin.molecule.finish as finish

    def no_3d(*args, **kwargs):
        raise AssertionError("3D work began before the dative bond was refused")

    monkeypatch.setattr(finish, "apply_3d_policy", no_3d)
    smiles = "C" * 20 + "[NH2]->B"
    with pytest.raises(MoleculeError, match=r"dative bond N21-B22 .*E3FP encodes single"):
        molecule_from_smiles(smiles, id="x")
    with pytest.raises(InputError, match=r"record 'r': .*dative bond N21-B22"):
        InputResolver(render_folder=None).resolve({"smiles": smiles}, "r")


def test_render_refuses_a_dative_bond_as_fingerprint_does(tmp_path, capsys):
    # was: deepmolm-render drew N->[Pt](<-N)(Cl)Cl (exit 0) that every other tool refused
    smiles = "N->[Pt](<-N)(Cl)Cl"
    assert render_main(["--smiles", smiles, "--out", str(tmp_path / "png"), "--no-progress"]) == 1
    assert fingerprint_main(["--smiles", smiles, "--out", str(tmp_path / "fp.jsonl"), "--no-progress"]) == 1
    failed = [line for line in capsys.readouterr().err.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 2 and all("dative bond N1-Pt2" in line for line in failed), failed
    assert failed[0] == failed[1]
    assert not list((tmp_path / "png").glob("*.png"))


# --- 6. a whole-file problem names the file once -----------------------------------------------
def test_a_failed_file_is_named_once_in_the_tools_failure_line(tmp_path, monkeypatch, capsys):
    # was: "FAILED empty.sdf (empty.sdf): file contains no molecules"
    monkeypatch.chdir(tmp_path)
    Path("empty.sdf").write_text("")
    assert fingerprint_main(["empty.sdf", "--out", "fp.jsonl", "--no-progress"]) == 1
    assert "FAILED empty.sdf: file contains no molecules" in capsys.readouterr().err.splitlines()


# --- 7. the XYZ title reads as information ------------------------------------------------------
def test_an_xyz_title_note_reads_as_information(tmp_path):
    path = tmp_path / "aspirin.xyz"
    _write_xyz(_embedded("CC(=O)Oc1ccccc1C(=O)O"), path, "aspirin")
    (record,) = list(read_structures(path, policy="from-file"))
    assert record.id == "aspirin.xyz#0"  # the id rule is unchanged
    assert "title 'aspirin' (the comment line)" in record.notes, record.notes
    assert not any(note.startswith("line 2:") for note in record.notes), record.notes


# --- 8. Ctrl-C at a prompt after RDKit's embedding ---------------------------------------------
@pytest.mark.parametrize("work", [
    "from deepmolm_plugin.molecule import molecule_from_smiles; molecule_from_smiles('CCO')",
    "from rdkit import Chem; from deepmolm_plugin.molecule.standard import molecule_keys; "
    "molecule_keys([Chem.MolFromSmiles('C[NH3+]')])",
])
def test_ctrl_c_interrupts_a_blocking_read_after_rdkit_work(work):
    # was: RDKit's embedding, MMFF and Uncharger put Python's SIGINT handler back with SA_RESTART,
    # so input() at the chat CLI's prompt ignored Ctrl-C until Enter
    code = f"{work}; print('READY', flush=True); input()"
    env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", str(ROOT)))
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env)
    try:
        assert child.stdout.readline().strip() == b"READY"
        time.sleep(0.3)  # into the blocking read
        child.send_signal(signal.SIGINT)
        child.wait(timeout=8)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode != 0 and b"KeyboardInterrupt" in child.stderr.read()


def test_the_resolver_names_a_failed_file_once(tmp_path):
    """The GUI, chat CLI and model_vqa name an input by its file: a problem of the whole file
    said it twice (`molecule 'empty.sdf': /tmp/.../empty.sdf: file contains no molecules`)."""
    from deepmolm_plugin.molecule.inputs import InputError, InputResolver

    empty = tmp_path / "empty.sdf"
    empty.write_text("\n")
    resolver = InputResolver(first_of_many=True, kind="molecule")
    for rid in (empty.name, str(empty)):
        with pytest.raises(InputError) as caught:
            resolver.resolve({"structure": str(empty)}, rid)
        assert str(caught.value).count("empty.sdf") == 1, str(caught.value)
    with pytest.raises(InputError) as caught:  # an id of its own: the file is named beside it
        resolver.resolve({"structure": str(empty)}, "question 3")
    assert f"{empty}: file contains no molecules" in str(caught.value)
