"""Training records: the host's JSON records plus molecule fields, and their converters."""

from .records import MoleculeInputs, RecordError, record_id

__all__ = ["MoleculeInputs", "RecordError", "record_id"]
