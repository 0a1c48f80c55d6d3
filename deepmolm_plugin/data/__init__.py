"""Training records: the host's JSON records plus molecule fields, and their converters."""

__all__ = ["RecordError", "has_molecule", "record_id"]


def __getattr__(name):
    # `records` (and torch with it) loads on first use, so that commands such as
    # deepmolm-prepare check their arguments before paying for torch.
    if name in __all__:
        from . import records

        return getattr(records, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
