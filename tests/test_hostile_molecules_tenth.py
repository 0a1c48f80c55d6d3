"""Tenth sweep of hostile molecule inputs: a Ctrl-C that RDKit's conformer embedding took
itself (a false "3D embedding failed", or a retry that gave another conformer, and the run
went on), `--fragments largest` ties decided by the written order, extended-XYZ
`Properties=` ignored, empty molecule fields dropped silently, RDKit's RemoveHs warning in
deepmolm-kflm2, and CSV records named by record number only (a blank line shifted it)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import pytest
from rdkit import Chem, rdBase
from rdkit.Chem import AllChem

from deepmolm_plugin.molecule import MoleculeError, fingerprint_record, molecule_from_smiles, read_structures
from deepmolm_plugin.molecule.inputs import InputError, InputResolver

# a 20-residue peptide: ETKDG from random coordinates takes seconds on it
PEPTIDE = Chem.MolToSmiles(Chem.MolFromSequence("ACDEFGHIKLMNPQRSTVWY"))


def _python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    """``code`` in a fresh interpreter with the default SIGINT disposition (a terminal's
    Ctrl-C), the environment passed on (PYTHONPATH picks the code under test)."""
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ), **kwargs,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


# --- 1. Ctrl-C during conformer generation --------------------------------------------------
def test_ctrl_c_during_embedding_is_a_keyboard_interrupt_not_a_failed_molecule():
    # was: MoleculeError "3D embedding failed ... (RDKit: Interrupted, cancelling conformer generation)"
    code = f"""
import os, signal, threading, time
from deepmolm_plugin.molecule import MoleculeError, molecule_from_smiles
threading.Timer(2.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
began = time.monotonic()
try:
    molecule_from_smiles({PEPTIDE!r}, id="pep20")
    print("RETURNED")
except KeyboardInterrupt:
    print("INTERRUPTED", round(time.monotonic() - began))
except MoleculeError as error:
    print("FAILED", error)
"""
    out, err = _python(code).communicate(timeout=240)
    assert out.startswith("INTERRUPTED"), out + err


def test_ctrl_c_in_deepmolm_fingerprint_exits_130_with_no_failure_line(tmp_path):
    # was: the peptide written as failed (or with another conformer's tokens), CCO done, exit 1 or 0
    out, failures = tmp_path / "out.jsonl", tmp_path / "failed.jsonl"
    code = "import sys; from deepmolm_plugin.molecule.tools import main; sys.exit(main(sys.argv[1:]))"
    run = _python(code, "fingerprint", "--smiles", PEPTIDE, "CCO", "--out", str(out), "--failures", str(failures),
                  "--no-progress")
    time.sleep(6.0)  # the interpreter and RDKit load, then the peptide is embedded for seconds
    assert run.poll() is None, run.communicate()
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=240)
    assert run.returncode == 130, err
    assert "FAILED" not in err and "interrupted" in err
    assert not out.exists() or out.read_text() == ""
    assert not failures.exists() or failures.read_text() == ""


def test_an_interrupted_embedding_in_a_process_that_ignores_sigint_is_done_again(monkeypatch):
    # deepmolm-prepare's workers ignore SIGINT (their parent acts on Ctrl-C), but RDKit takes it
    # anyway: the cut-short embedding is redone there, so the worker's result is the uninterrupted one
    from rdkit.Chem import rdDistGeom

    from deepmolm_plugin.molecule import conformer

    expected = molecule_from_smiles("CC(=O)Nc1ccc(O)cc1", "paracetamol")
    real, calls = rdDistGeom.EmbedMolecule, []

    def cut_short_once(mol, params):  # what RDKit does on a Ctrl-C: its log line, and -1
        calls.append(1)
        if len(calls) == 1:
            rdBase.LogErrorMsg("Interrupted, cancelling conformer generation")
            return -1
        return real(mol, params)

    monkeypatch.setattr(conformer.rdDistGeom, "EmbedMolecule", cut_short_once)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        got = molecule_from_smiles("CC(=O)Nc1ccc(O)cc1", "paracetamol")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(calls) == 2
    assert got.notes == expected.notes  # no "random starting coordinates", no RDKit line
    assert fingerprint_record(got).tolist() == fingerprint_record(expected).tolist()
    calls.clear()
    with pytest.raises(KeyboardInterrupt):  # where SIGINT is the process's own: no second try
        molecule_from_smiles("CC(=O)Nc1ccc(O)cc1", "paracetamol")
    assert len(calls) == 1


def test_an_interrupt_is_seen_when_the_caller_disabled_rdkits_error_log(monkeypatch):
    # the log line is the only sign of it: a caller's BlockLogs must not turn it into a failure
    from rdkit.Chem import rdDistGeom

    from deepmolm_plugin.molecule import conformer

    def interrupted(mol, params):
        rdBase.LogErrorMsg("Interrupted, cancelling conformer generation")
        return -1

    monkeypatch.setattr(conformer.rdDistGeom, "EmbedMolecule", interrupted)
    with rdBase.BlockLogs(), pytest.raises(KeyboardInterrupt):
        molecule_from_smiles("CCO", "ethanol")
    assert "rdApp.error:enabled" in rdBase.LogStatus()


# --- 2. --fragments largest: ties -------------------------------------------------------------
@pytest.mark.parametrize("one, other, kept", [
    ("[Na+].[Cl-]", "[Cl-].[Na+]", "[Cl-]"),                          # weight
    ("C1CCCCC1.c1ccccc1", "c1ccccc1.C1CCCCC1", "C1CCCCC1"),           # atoms with hydrogens
    ("CCCO.CC(C)O", "CC(C)O.CCCO", "CC(C)O"),                         # canonical SMILES order
])
def test_the_largest_fragment_does_not_depend_on_the_written_order(one, other, kept):
    # was: the first of equally large fragments, so sodium for one spelling and chloride for the other
    a = molecule_from_smiles(one, "a", fragments="largest", policy="generate")
    b = molecule_from_smiles(other, "b", fragments="largest", policy="generate")
    assert Chem.MolToSmiles(Chem.RemoveHs(a.mol)) == Chem.MolToSmiles(Chem.RemoveHs(b.mol)) == kept
    assert sorted(fingerprint_record(a).tolist()) == sorted(fingerprint_record(b).tolist())
    assert "a tie on heavy atoms" in a.notes[0] and a.notes[0] == b.notes[0]


def test_copies_of_one_fragment_are_no_tie():
    record = molecule_from_smiles("CCO.OCC", "two", fragments="largest", policy="keep")
    assert record.notes[0] == "kept the largest of 2 fragments (3 heavy atoms); dropped CCO"


# --- 3. extended XYZ ----------------------------------------------------------------------------
def _xyz_lines(smiles: str):
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    return [(a.GetSymbol(), a.GetAtomicNum(), *p) for a, p in zip(mol.GetAtoms(), mol.GetConformer().GetPositions())]


def _xyz_frame(comment: str, line: str = "{s} {x:.6f} {y:.6f} {w:.6f}") -> str:
    """One frame of ethanol: its comment line, and each atom written by `line` (s, z, x, y, w)."""
    atoms = _xyz_lines("CCO")
    return f"{len(atoms)}\n{comment}\n" + "".join(line.format(s=s, z=z, x=x, y=y, w=w) + "\n" for s, z, x, y, w in atoms)


@pytest.mark.parametrize("properties, line", [
    ("species:S:1:Z:I:1:pos:R:3", "{s} {z} {x:.6f} {y:.6f} {w:.6f}"),
    ('"pos:R:3:species:S:1"', "{x:.6f} {y:.6f} {w:.6f} {s}"),
])
def test_extended_xyz_columns_are_read_as_properties_declares(tmp_path, properties, line):
    # was: (Z, x, y) read as the coordinates ("valence of atom O7"), pos first "0 atom lines"
    plain = tmp_path / "plain.xyz"
    plain.write_text(_xyz_frame(""))
    ext = tmp_path / "ext.xyz"
    ext.write_text(_xyz_frame(f'Properties={properties} pbc="F F F"', line))
    [want], [got] = read_structures(plain), read_structures(ext)
    assert not isinstance(got, MoleculeError), got
    assert fingerprint_record(got).tolist() == fingerprint_record(want).tolist()


@pytest.mark.parametrize("properties, says", [
    ("species:S:1:forces:R:3", "has no species:S:1 and pos:R:3 columns"),
    ("species:S:1:pos:R", "is not name:type:columns triples (extended XYZ)"),
])
def test_an_extended_xyz_layout_that_is_not_followed_is_named(tmp_path, properties, says):
    # read as `symbol x y z`, as before, but no longer without a word
    path = tmp_path / "bad.xyz"
    frame = _xyz_frame(f"Properties={properties}")
    path.write_text(frame + frame.replace(f"Properties={properties}", "second"))
    first, second = read_structures(path)
    note = f"line 2: Properties={properties} {says}: read as symbol x y z"
    assert not isinstance(first, MoleculeError) and note in first.notes
    assert not isinstance(second, MoleculeError) and not any("Properties" in n for n in second.notes)


def test_a_frame_whose_layout_is_unreadable_and_columns_are_not_plain_fails_naming_it(tmp_path):
    path = tmp_path / "posfirst.xyz"
    path.write_text(_xyz_frame("Properties=pos:R:3:species:S", "{x} {y} {w} {s}"))
    [record] = read_structures(path)
    assert isinstance(record, MoleculeError)
    assert "(line 2: Properties=pos:R:3:species:S is not name:type:columns triples" in record.reason


# --- 4. empty molecule fields ----------------------------------------------------------------------
@pytest.fixture
def resolver(tmp_path):
    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    writer = Chem.SDWriter(str(tmp_path / "two.sdf"))
    writer.write(mol)
    writer.write(mol)
    writer.close()
    return InputResolver(structure_folder=str(tmp_path), render_folder=str(tmp_path / "r"))


@pytest.mark.parametrize("fields, field", [
    ({"structure": ""}, "structure"),     # was: "no molecule field"
    ({"structure": "   "}, "structure"),  # was: "structure file     does not exist"
    ({"smiles": ""}, "smiles"),           # was: "no molecule field"
    ({"smiles": " ", "atoms": []}, "atoms"),
])
@pytest.mark.parametrize("fingerprint", [True, False])
def test_an_empty_molecule_field_alone_is_an_error_naming_it(resolver, fields, field, fingerprint):
    with pytest.raises(InputError, match=rf"`{field}` is empty") as info:
        resolver.resolve(fields, "rec", fingerprint=fingerprint)
    assert info.value.record_id == "rec"


@pytest.mark.parametrize("fields", [{"smiles": "CCO", "structure": ""}, {"smiles": "CCO", "structure": "   "},
                                    {"smiles": "CCO", "atoms": []},
                                    {"smiles": "", "structure": "two.sdf", "structure_index": 1}])
def test_an_empty_field_beside_a_usable_one_is_absent(resolver, fields):
    # review: a table with `smiles` and `structure` columns has one of them empty in every row that gives
    # only the other; refusing every blank field refused each such record (they were read before)
    given = {key: value for key, value in fields.items() if value and str(value).strip()}
    got = resolver.resolve(fields, "rec", depiction=False)
    assert got.molecule_fp.tolist() == resolver.resolve(given, "rec2", depiction=False).molecule_fp.tolist()


@pytest.mark.parametrize("index", [1.0, True, "\u00b2", "-1", ""])
def test_structure_index_takes_an_integer_or_its_digits_only(resolver, index):
    # "²" passed str.isdigit() and int() raised ValueError
    with pytest.raises(InputError, match=r"structure_index must be an integer >= 0"):
        resolver.resolve({"structure": "two.sdf", "structure_index": index}, "rec", depiction=False)
    item = resolver.resolve({"structure": "two.sdf", "structure_index": " 1 "}, "rec", depiction=False)
    assert item.molecule_fp.shape[0] == 3


# --- 5. kflm2: RDKit's RemoveHs warning ---------------------------------------------------------
def test_standard_molecule_lets_no_rdkit_warning_through(capfd, caplog):
    from deepmolm_plugin.molecule.standard import standard_molecule

    with rdBase.BlockLogs():  # RDKit's SMILES parser says it too: not the code under test
        mol = Chem.MolFromSmiles("F[B-](F)(F)F.[H+]")
    with caplog.at_level(logging.WARNING):
        standard_molecule(mol)
    said = capfd.readouterr().err + caplog.text
    assert "not removing hydrogen" not in said


# --- 6. CSV records name their line --------------------------------------------------------------
def test_a_csv_record_names_its_file_line_after_blank_lines(tmp_path):
    # was: "c.csv#1" alone, which reads as line 3 (the blank one); the failing row is line 4
    path = tmp_path / "c.csv"
    path.write_text("smiles,y\nCCO,1\n\nCCN # comment,2\n\n\nCC,1,5\nCCC,3\n")
    good, comment, fields, last = read_structures(path, policy="keep")
    assert good.source == f"{path}#0, line 2" and last.source == f"{path}#3, line 8"
    assert comment.id == "c.csv#1" and comment.source == f"{path}#1, line 4"
    # was: "row 2 (lines 5-7 joined by quotes; a quote never closed ...)" after the blank lines
    assert fields.source == f"{path}#2, line 7" and "row 2 (line 7) has 3 fields" in fields.reason


def test_a_ctrl_c_the_cip_labeller_took_in_kflm2_stops_the_run(monkeypatch):
    # was: kflm2's standard_molecule caught the labeller's RuntimeError (meant for cages it cannot rank),
    # a Ctrl-C among them: the molecule went on with the legacy stereo codes
    from deepmolm_plugin.molecule import standard

    def interrupted(mol, **kwargs):
        raise RuntimeError("CIP label assignment was interrupted")

    monkeypatch.setattr(standard.rdCIPLabeler, "AssignCIPLabels", interrupted)
    with pytest.raises(KeyboardInterrupt):
        standard.standard_molecule(Chem.MolFromSmiles("C[C@H](N)C(=O)O"))

    def cannot_rank(mol, **kwargs):
        raise RuntimeError("Digraph generation failed")

    monkeypatch.setattr(standard.rdCIPLabeler, "AssignCIPLabels", cannot_rank)
    assert standard.standard_molecule(Chem.MolFromSmiles("C[C@H](N)C(=O)O")).GetNumAtoms() == 6


def test_a_step_rdkit_cuts_short_every_time_ends_instead_of_looping(monkeypatch):
    # review: in a process that ignores SIGINT the cut-short step is done again; one RDKit cuts short every
    # time looped forever
    import signal

    from deepmolm_plugin.molecule import errors

    calls = []

    def always_interrupted():
        calls.append(1)
        raise RuntimeError("CIP label assignment was interrupted")

    monkeypatch.setattr(signal, "getsignal", lambda number: signal.SIG_IGN)
    with pytest.raises(KeyboardInterrupt):
        errors.rdkit_step(always_interrupted, [])
    assert len(calls) == errors._REDOS + 1
