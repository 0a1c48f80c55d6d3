"""Host training records: the names the data pipeline uses for them.

A record is the host's JSON (`id`, `image`, `conversations`) plus one molecule field
(`molecule_fp` inline or as a sidecar reference, `structure`, `atoms` + `coordinates`, or
`smiles`), resolved into model inputs by the one input resolver,
`deepmolm_plugin.molecule.inputs.InputResolver`, which every other caller uses too.
A record that cannot be served is a `RecordError` naming it and the reason.
"""

from __future__ import annotations

from ..molecule.inputs import InputError, has_molecule

RecordError = InputError  # raised for records as "record '<id>': <reason>"

__all__ = ["RecordError", "has_molecule", "record_id"]


def record_id(record: dict, index: int) -> str:
    """A record's name in messages and file names: its `id`, else its position."""
    return str(record.get("id", f"#{index}"))
