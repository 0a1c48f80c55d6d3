"""A prepared record whose SMILES was edited afterwards keeps pointing at the old molecule's rows.

deepmolm-prepare writes each record's tokens to a sidecar and the record a reference
(offset, atoms, digest of the rows). The digest covers the rows only, and the resolver's
check of given tokens compares their level-0 column with the SMILES' atoms as a multiset:
p-xylene's record corrected by hand to m-xylene (or two isomers' references swapped) has
the same row count and the same level-0 multiset, so training took p-xylene's tokens for
m-xylene, exit 0. Now the reference also names the molecule its rows were made from
(`molecule`: the canonical SMILES), and every caller's resolver compares it with the
record's SMILES.
"""

from __future__ import annotations

import json

import pytest

from deepmolm_plugin.molecule.inputs import InputError, InputResolver
from test_hostile_prepare_third import small_run
from test_prepare import prepare, records


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("isomers")
    (root / "in.csv").write_text("id,smiles,y\npx,Cc1ccc(C)cc1,3.15\neth,CCO,-0.31\n")
    code, _ = prepare("--format", "csv", "--input", root / "in.csv", "--out", root / "prep", "--id-column", "id",
                      *small_run())
    assert code == 0
    return root / "prep"


def _resolve(prep, record):
    return InputResolver(record_folder=str(prep), render_folder=str(prep.parent / "renders")).molecule_fp(
        record, record["id"])


def test_a_prepared_reference_names_its_molecule_and_unedited_records_pass(prepared):
    found = {r["id"].split(":")[0]: r for r in records(prepared / "train.json")}
    assert found["px"]["molecule_fp"]["molecule"] == "Cc1ccc(C)cc1"
    assert found["eth"]["molecule_fp"]["molecule"] == "CCO"
    for record in found.values():
        _resolve(prepared, record)
    # another spelling of the same molecule is the same molecule
    _resolve(prepared, dict(found["px"], smiles="c1(C)ccc(C)cc1"))


def test_a_record_edited_to_an_isomer_after_preparing_is_refused(prepared):
    record = next(r for r in records(prepared / "train.json") if r["id"].startswith("px:"))
    edited = dict(record, smiles="Cc1cccc(C)c1", image=None)  # m-xylene: same atoms, same level-0 tokens
    with pytest.raises(InputError) as error:
        _resolve(prepared, edited)
    message = str(error.value)
    assert "px" in message and "Cc1ccc(C)cc1" in message and "'Cc1cccc(C)c1'" in message
    assert "prepare it again, or leave molecule_fp out" in message
    # a reference written before it named its molecule is checked as before (rows, level 0)
    older = dict(edited, molecule_fp={k: v for k, v in record["molecule_fp"].items() if k != "molecule"})
    assert _resolve(prepared, older).shape[0] == 8


def test_a_reference_written_by_another_rdkit_version_is_compared_as_a_molecule(prepared):
    # canonical SMILES differ between RDKit releases: the stored text is read again by this one
    # (a valid record prepared on another machine was refused as "changed after it was prepared")
    record = next(r for r in records(prepared / "train.json") if r["id"].startswith("px:"))
    other_version = dict(record, molecule_fp=dict(record["molecule_fp"], molecule="c1cc(C)ccc1C"))
    assert _resolve(prepared, other_version).shape[0] == 8
