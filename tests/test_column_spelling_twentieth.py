"""A column named in another spelling than the header's (twentieth round): `deepmolm-kflm2
--targets y` on a header with `Y`, or deepmolm-prepare's `--label-columns y`, was refused
with the header listed and nothing more, and `y` beside `Y` was easy to miss. The refusal
names the column the header spells otherwise."""

from __future__ import annotations

import pytest

from deepmolm_plugin.data.sources.csv_source import read_csv
from deepmolm_plugin.property.cli import column_problem


def test_kflm2_targets_and_smiles_column():
    assert column_problem(["smiles", "Y"], ["y"], None) == (
        "--targets column(s) ['y'] not in the header ['smiles', 'Y']; the header has 'Y' (spelled otherwise)")
    assert column_problem(["SMILES", "y", "p np"], ["p_np", "z"], None).endswith(
        "; the header has 'p np' (spelled otherwise)")
    assert column_problem(["Smiles ", "y"], ["y"], "smiles").endswith("; the header has 'Smiles ' (spelled otherwise)")
    assert column_problem(["smiles", "y"], ["logS"], None) == (
        "--targets column(s) ['logS'] not in the header ['smiles', 'y']")  # nothing alike: the header alone


def test_prepare_label_columns(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("smiles,Y\nCCO,1\n")
    with pytest.raises(ValueError, match=r"label column 'y' is not in the header \['smiles', 'Y'\]; the header "
                                         r"has 'Y' \(spelled otherwise\)$"):
        list(read_csv(str(path), {"label_columns": ["y"]}))
