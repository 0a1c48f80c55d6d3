"""What a chemist reads about a molecule in the chat, the GUI, eval and the tools (sweep Q).

- The heavy-atom cap's refusal names where the cap was set: a model's max_atoms (chat, GUI,
  eval: they have no --max-atoms), or the tool's --max-atoms (was: "raise it with max_atoms /
  --max-atoms" everywhere).
- Metal ions with unpaired electrons are not "radicals" with advice about hydrogens, and
  RDKit's UFF typer line ("Unrecognized atom type: Fe2+2") is said in the user's terms.
- A multi-record structure file's note gives the count; a broken record is named by its
  number, title and line.
"""

from __future__ import annotations

import json
import pickle
from types import SimpleNamespace

import pytest
from rdkit import Chem

from deepmolm_plugin.molecule import molecule_from_smiles
from deepmolm_plugin.molecule.inputs import InputError, InputResolver, model_limits

SIX = "C" * 6  # 6 heavy atoms: over a cap of 5
MODEL_WORDS = "this model takes at most 5 heavy atoms (its max_atoms, set at training)"


def _model_config(**fields):
    return SimpleNamespace(model_type="llava_qwen2", **fields)


def _sdf(path, records):
    """records: (title, SMILES) or (title, None) for a broken record (counts line 2 atoms, 1 line)."""
    blocks = []
    for title, smiles in records:
        if smiles is None:
            blocks.append(f"{title}\n  RDKit          3D\n\n  2  1  0  0  0  0  0  0  0  0999 V2000\n"
                          "    0.0000    0.0000    0.0000 C   0  0\nM  END\n")
        else:
            mol = molecule_from_smiles(smiles, title).mol
            mol.SetProp("_Name", title)
            blocks.append(Chem.MolToMolBlock(mol))
    path.write_text("".join(block + "$$$$\n" for block in blocks))
    return path


# --- 3. the cap's refusal names its source ---------------------------------------------------
def test_the_chat_clis_refusal_names_the_models_cap_not_an_option(tmp_path):
    from deepmolm_plugin.cli import molecule_resolver

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava_qwen2", "max_atoms": 5}))
    with pytest.raises(InputError) as refused:
        molecule_resolver("auto", str(tmp_path)).check_sources({"smiles": SIX}, "m")
    assert MODEL_WORDS in str(refused.value), refused.value
    assert "--max-atoms" not in str(refused.value) and str(refused.value).startswith("molecule 'm': too large: 6 heavy")


@pytest.mark.parametrize("fields", [{"smiles": SIX}, {"structure": "six.sdf"}])
def test_the_guis_and_evals_resolver_names_the_models_cap(tmp_path, fields):
    """The GUI and eval build their resolver with model_limits(model.config)."""
    _sdf(tmp_path / "six.sdf", [("hexane", SIX)])
    resolver = InputResolver(structure_folder=str(tmp_path), limits=model_limits(_model_config(max_atoms=5)),
                             kind="molecule", first_of_many=True)
    with pytest.raises(InputError) as refused:
        resolver.resolve(fields, "m", depiction=False)
    assert MODEL_WORDS in str(refused.value) and "--max-atoms" not in str(refused.value), refused.value


def test_a_model_config_without_max_atoms_says_the_default_cap():
    resolver = InputResolver(limits=model_limits(_model_config()))
    with pytest.raises(InputError, match=r"this model takes at most 256 heavy atoms \(the default cap: its config "
                                         r"records no max_atoms\)"):
        resolver.check_sources({"smiles": "C" * 300}, "m")


def test_a_depiction_refused_by_the_cap_names_the_models_cap(tmp_path):
    resolver = InputResolver(limits=model_limits(_model_config(max_atoms=5)), render_folder=str(tmp_path))
    with pytest.raises(InputError) as refused:  # a model without molecule tokens only draws
        resolver.resolve({"smiles": SIX}, "m", fingerprint=False)
    assert MODEL_WORDS in str(refused.value) and "--max-atoms" not in str(refused.value), refused.value


def test_eval_names_the_models_cap(tmp_path):
    from deepmolm_plugin.eval.model_vqa import prepare_questions

    config = _model_config(max_atoms=5, fp_bits=4096, fp_levels=4, mm_projector_type="fusion")
    failures = []
    prepare_questions([{"question_id": "q1", "text": "?", "smiles": SIX}], str(tmp_path), tmp_path / "r", config,
                      failures=failures)
    assert [f["question_id"] for f in failures] == ["q1"] and MODEL_WORDS in failures[0]["reason"], failures
    assert "--max-atoms" not in failures[0]["reason"]


def test_the_tools_name_their_own_option(tmp_path, capsys):
    from deepmolm_plugin.molecule.tools import fingerprint_main

    assert fingerprint_main(["--smiles", SIX, "--max-atoms", "5", "--out", str(tmp_path / "o.jsonl"),
                             "--no-progress"]) == 1
    said = capsys.readouterr().err
    assert "too large: 6 heavy atoms > max_atoms=5 (the heavy-atom cap; raise it with --max-atoms, " \
           "'--max-atoms none' lifts it)" in said, said


def test_other_settings_keep_the_generic_words_and_refusals_pickle_their_source():
    """Training passes a prepared dataset's manifest settings (no model_type): its cap is the data's."""
    from deepmolm_plugin.molecule.errors import MODEL_CAP, MoleculeTooLarge

    with pytest.raises(InputError, match=r"> max_atoms=5 \(the heavy-atom cap; raise it with max_atoms / --max-atoms"):
        InputResolver(limits=model_limits({"max_atoms": 5})).check_sources({"smiles": SIX}, "m")
    error = MoleculeTooLarge("m", 6, 5, "f.sdf#0", MODEL_CAP)
    error.line = "line 9"
    again = pickle.loads(pickle.dumps(error))
    assert (again.reason, again.cap_from, again.line) == (error.reason, MODEL_CAP, "line 9")


# --- 4. metal ions, and the UFF typer ---------------------------------------------------------
def _notes(smiles):
    return molecule_from_smiles(smiles, "m").notes


def test_a_metal_ion_is_not_told_about_hydrogens():
    notes = _notes("[Cu+2].[O-]S(=O)(=O)[O-]")
    assert "unpaired electrons as written on metal atoms Cu1 (Cu2+, a d9 ion): from the element and the charge " \
           "written, not from missing hydrogens" in notes, notes
    assert not any("hydrogens it writes" in n or n.startswith("radical") for n in notes), notes
    gd = _notes("[Gd+3]")
    assert any("Gd1 (Gd3+, an f7 ion)" in n for n in gd), gd
    # an organic radical next to a metal ion keeps its own advice
    both = _notes("[Cu+2].[CH3]")
    assert any(n.startswith("radical: unpaired electrons on atoms C2 (a bracket atom has only the hydrogens") for n in both)
    assert any(n.startswith("unpaired electrons as written on metal atoms Cu1 (Cu2+") for n in both), both


def test_the_uff_typer_line_is_said_in_the_users_terms():
    notes = _notes("[Fe+3].[Cl-].[Cl-].[Cl-]")
    assert not any("UFFTYPER" in n or "Fe2+2" in n for n in notes), notes
    assert any(n.startswith("UFF, the force field ETKDGv3 takes bond lengths from while embedding, has no atom type "
                            "for Fe1 (Fe3+) as written: it is a free ion (no bonds)") and "MMFF94" in n and
               "optimised the geometry" in n for n in notes), notes
    platinum = _notes("Cl[Pt](Cl)(N)N")
    assert not any("UFFTYPER: Unrecognized" in n for n in platinum), platinum
    assert any("has no atom type for Pt2 as written: the bonds to it got lengths from covalent radii" in n
               for n in platinum), platinum


# --- 8. multi-record files ---------------------------------------------------------------------
def test_the_first_of_many_note_gives_the_count(tmp_path):
    _sdf(tmp_path / "three.sdf", [("ethanol", "CCO"), ("benzene", "c1ccccc1"), ("water", "O")])
    resolver = InputResolver(structure_folder=str(tmp_path), first_of_many=True)
    notes = resolver.molecule({"structure": "three.sdf"}, "m").notes
    assert "three.sdf holds more than one molecule; using the first (ethanol) of 3" in notes, notes


def test_a_librarys_count_is_bounded(tmp_path):
    from deepmolm_plugin.molecule.inputs import COUNT_LIMIT

    block = Chem.MolToMolBlock(Chem.MolFromSmiles("O")) + "$$$$\n"
    (tmp_path / "lib.sdf").write_text(block * (COUNT_LIMIT + 5))
    notes = InputResolver(structure_folder=str(tmp_path), first_of_many=True).molecule({"structure": "lib.sdf"},
                                                                                       "m").notes
    assert any(n.endswith(f"of more than {COUNT_LIMIT}") for n in notes), notes


def test_a_broken_record_is_named_by_number_title_and_line(tmp_path):
    _sdf(tmp_path / "firstbad.sdf", [("broken", None), ("ethanol", "CCO"), ("benzene", "c1ccccc1"),
                                     ("water", "O")])
    resolver = InputResolver(structure_folder=str(tmp_path), first_of_many=True, kind="molecule")
    with pytest.raises(InputError) as refused:
        resolver.molecule({"structure": "firstbad.sdf"}, "firstbad.sdf")
    assert "firstbad.sdf, record 1 of 4 (counting from 1; title 'broken'; starts at line 1): the counts line " \
           "declares 2 atoms" in str(refused.value), refused.value


def test_a_picked_broken_record_says_its_structure_index_and_line(tmp_path):
    path = _sdf(tmp_path / "lastbad.sdf", [("ethanol", "CCO"), ("benzene", "c1ccccc1"), ("broken", None)])
    start = 1 + path.read_text().splitlines().index("broken")
    resolver = InputResolver(structure_folder=str(tmp_path))
    with pytest.raises(InputError) as refused:
        resolver.molecule({"structure": "lastbad.sdf", "structure_index": 2}, "r")
    assert f"record 3 of 3 (counting from 1; structure_index 2; title 'broken'; starts at line {start}): the " \
           "counts line" in str(refused.value), refused.value
    with pytest.raises(InputError) as refused:  # one molecule expected: the broken other one is named too
        resolver.molecule({"structure": "lastbad.sdf"}, "r")
    assert "holds 3 molecules, expected 1 (and one of them is broken: structure file" in str(refused.value)
    assert f"record 3 of 3 (counting from 1; structure_index 2; title 'broken'; starts at line {start})" \
           in str(refused.value), refused.value


# --- review S: p-block metal ions, and UFF / MMFF94 said from RDKit's own typing ----------------
@pytest.mark.parametrize("smiles, atom, pair", [("CC(=O)[O-].CC(=O)[O-].[Pb+2]", "Pb9 (Pb2+", "6s2"),
                                                ("[Cl-].[Cl-].[Sn+2]", "Sn3 (Sn2+", "5s2"),
                                                ("[Bi+3]", "Bi1 (Bi3+", "6s2"), ("[Ga+]", "Ga1 (Ga+", "4s2")])
def test_a_free_p_block_metal_ion_gets_the_metal_note(smiles, atom, pair):
    # was: "radical: unpaired electrons on atoms Pb9 (a bracket atom has only the hydrogens it writes ...)"
    notes = _notes(smiles)
    assert not any(n.startswith("radical") or "hydrogens it writes" in n for n in notes), notes
    assert any(n.startswith(f"unpaired electrons as written on metal atoms {atom}, a {pair} ion: its two outer "
                            "electrons are an inert pair, paired, which RDKit counts as unpaired)") for n in notes), notes


@pytest.mark.parametrize("smiles", ["[SnH3]", "[Al]", "Cl[Sn+]"])
def test_a_neutral_or_bonded_p_block_atom_keeps_the_hydrogen_advice(smiles):
    notes = _notes(smiles)
    assert any(n.startswith("radical: unpaired electrons on atoms") and "hydrogens it writes" in n for n in notes), notes
    assert not any(n.startswith("unpaired electrons as written on metal atoms") for n in notes), notes


@pytest.mark.parametrize("smiles, atom", [("F[P-](F)(F)(F)(F)F.[Li+]", "P2"), ("F[Sb-](F)(F)(F)(F)F.[Na+]", "Sb2")])
def test_a_hexafluoride_salt_is_not_said_untyped_by_uff(smiles, atom):
    # RDKit types the P of PF6- for UFF (it only warns "Unrecognized charge state"): its P-F bounds are UFF's
    # was: "has no atom type for P2 (P-) ... covalent radii ... MMFF94 has none either (next note)", and
    # "MMFF94 has no parameters for this molecule (elements Li)", though MMFF94 types Li+
    notes = _notes(smiles)
    assert not any(n.startswith("UFF,") or "covalent radii" in n for n in notes), notes
    assert f"MMFF94 has no parameters for this molecule (no atom type for {atom}): kept the unoptimised ETKDGv3 " \
           "geometry" in notes, notes
    assert not any("elements" in n or "Li" in n or "Na" in n for n in notes if "MMFF94" in n), notes


def test_the_uff_notes_next_note_is_mmffs_naming_the_same_atom():
    notes = _notes("Cl[Pt](Cl)(N)N")
    first = next(i for i, n in enumerate(notes) if n.startswith("UFF,"))
    assert notes[first].endswith("covalent radii (within about 10%) instead; MMFF94 has no atom type for it "
                                 "either (next note)"), notes
    assert notes[first + 1] == ("MMFF94 has no parameters for this molecule (no atom type for Pt2): kept the "
                                "unoptimised ETKDGv3 geometry"), notes
