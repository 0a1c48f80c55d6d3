"""deepmolm-prepare's tasks: small (both workers busy to the end), never splitting one molecule's items."""

from deepmolm_plugin.data.prepare.schedule import TASK_ITEMS, molecule_tasks
from deepmolm_plugin.data.sources.base import MoleculeSpec, SourceError, SourceItem


def _item(i: int, smiles: str) -> SourceItem:
    return SourceItem(id=f"r{i}", split="train", task="property:logS", answer="1.0",
                      molecule=MoleculeSpec(smiles=smiles))


def test_tasks_are_small_and_keep_each_molecule_in_one_task():
    smiles = ["C", "CC", "CC", "CC", "CCC", "CCCC", "CCCC", "N", "O"]
    batch = [_item(i, s) for i, s in enumerate(smiles)]
    tasks = molecule_tasks(batch, TASK_ITEMS)
    assert [item for task in tasks for item in task] == batch  # order kept, nothing lost
    assert [[it.molecule.smiles for it in t] for t in tasks] == [
        ["C", "CC", "CC", "CC"], ["CCC", "CCCC", "CCCC"], ["N", "O"]]
    owner = {}
    for k, task in enumerate(tasks):
        for it in task:
            assert owner.setdefault(it.molecule.smiles, k) == k  # one task per molecule


def test_one_item_per_molecule_gives_tasks_of_two():
    batch = [_item(i, "C" * (i + 1)) for i in range(7)]
    assert [len(t) for t in molecule_tasks(batch, 2)] == [2, 2, 2, 1]


def test_reader_failures_stand_alone():
    failure = SourceError(id="bad", stage="read", reason="no SMILES")
    batch = [_item(0, "C"), failure, _item(1, "C")]
    tasks = molecule_tasks(batch, 1)
    assert tasks == [[batch[0]], [failure], [batch[2]]]


def test_the_prepare_command_starts_without_torch():
    """A rerun on finished output is mostly start-up: the command's modules (and the
    molecule_fp contract they read the settings from) must not pull in torch."""
    import subprocess
    import sys

    code = "import sys, deepmolm_plugin.data.prepare.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
