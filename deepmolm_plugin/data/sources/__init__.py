"""Dataset readers: one module per public format, each yielding `SourceItem`s.

A reader knows a format's files and quirks and nothing about output: it turns its input
into `SourceItem`s (one question/answer about one molecule) or `SourceError`s (a record
that cannot be made correct, with the reason). `deepmolm_plugin.data.prepare` does the
rest: molecules, fingerprints, depictions, records, sidecars, manifest, failures.

`READERS` maps a `--format` name to `reader(input_path, options) -> Iterator[SourceItem |
SourceError]`; readers register themselves in their module, with the option names they
take (`READER_OPTIONS`): an unknown option is refused, with the valid ones, before reading.
"""

from .base import READERS, READER_OPTIONS, MoleculeSpec, SourceError, SourceItem, check_options, register_reader

__all__ = ["READERS", "READER_OPTIONS", "MoleculeSpec", "SourceError", "SourceItem", "check_options",
           "register_reader"]
