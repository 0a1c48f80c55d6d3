"""A structure_index builds only its record: the records before it in the file were built
under the policy (conformers, force field) as the file was streamed, so a late record of a
large library held the chat, eval and the GUI for minutes."""

from __future__ import annotations

import pytest
from rdkit import Chem

from deepmolm_plugin.molecule import read_structures
from deepmolm_plugin.molecule.inputs import InputError, InputResolver
from deepmolm_plugin.molecule.io import read as read_module
from deepmolm_plugin.molecule_fp import FingerprintSettings

# a comment, a blank line and a broken record: positions in the stream are not line numbers
LIBRARY = "# library\nCCO ethanol\n\nC1CC broken\nc1ccccc1 benzene\n" + "".join(
    f"{'C' * (k + 1)}O alcohol{k}\n" for k in range(20)) + "CC(=O)O acetic\n"


@pytest.fixture
def built(monkeypatch):
    """The ids of the records built (3D work) while the test runs."""
    ids = []
    original = read_module._build

    def counting(parsed, *args, **kwargs):
        ids.append(parsed.id)
        return original(parsed, *args, **kwargs)

    monkeypatch.setattr(read_module, "_build", counting)
    return ids


def _resolver(folder):
    return InputResolver(FingerprintSettings(1024, 2), structure_folder=str(folder))


def test_a_late_structure_index_builds_only_its_record(tmp_path, built):
    (tmp_path / "lib.smi").write_text(LIBRARY)
    got = _resolver(tmp_path).molecule({"structure": "lib.smi", "structure_index": 23}, "q")
    assert Chem.MolToSmiles(Chem.RemoveHs(got.mol)) == "CC(=O)O"
    assert built == ["acetic"]  # was: all 24 records, each with its conformer


def test_every_index_gives_the_record_the_stream_gives(tmp_path):
    (tmp_path / "lib.smi").write_text(LIBRARY)
    streamed = list(read_structures(tmp_path / "lib.smi", policy="keep"))
    assert len(streamed) == 24
    resolver = InputResolver(FingerprintSettings(1024, 2), structure_folder=str(tmp_path), policy="keep")
    for k, expected in enumerate(streamed):
        if isinstance(expected, Exception):
            with pytest.raises(InputError, match="unclosed ring"):
                resolver.molecule({"structure": "lib.smi", "structure_index": k}, f"q{k}")
            continue
        got = resolver.molecule({"structure": "lib.smi", "structure_index": k}, f"q{k}")
        assert (got.id, Chem.MolToSmiles(got.mol)) == (expected.id, Chem.MolToSmiles(expected.mol))
    with pytest.raises(InputError, match="has no record 24"):
        resolver.molecule({"structure": "lib.smi", "structure_index": 24}, "past")


def test_pick_yields_one_record_and_whole_file_problems(tmp_path, built):
    (tmp_path / "lib.smi").write_text(LIBRARY)
    assert [r.id for r in read_structures(tmp_path / "lib.smi", policy="keep", pick=2)] == ["benzene"]
    assert built == ["benzene"]
    assert list(read_structures(tmp_path / "lib.smi", policy="keep", pick=99)) == []
    (tmp_path / "empty.smi").write_text("# nothing\n")
    [error] = read_structures(tmp_path / "empty.smi", policy="keep", pick=3)
    assert "contains no molecules" in error.reason
    with pytest.raises(ValueError, match="pick must be a record position"):
        next(read_structures(tmp_path / "lib.smi", pick=-1))
