"""The ``molecule_fp`` contract: what every producer writes and every consumer reads.

One molecule's tokens are an int64 tensor ``(atoms, levels)``: entry ``(a, l)`` is the E3FP
hash, folded to ``[0, bits)``, of the shell centred on heavy atom ``a`` at E3FP iteration
``l`` (radius ``l * 1.718`` angstrom), or ``PAD`` (-1) where E3FP made no shell for that atom
at that level. Every atom has a level-0 shell. A batch is ``(B, max atoms, levels)``,
molecules shorter than the longest padded with whole rows of ``PAD``.

DeepMoLM's settings are 4096 bits and 4 levels (E3FP iterations 0..3). They are model
hyper-parameters: the projector's embedding table has ``bits + 1`` rows (``PAD`` maps to
the padding row 0), so the settings travel inside the model config (``fp_bits``,
``fp_levels``) and every producer (training data, eval, chat, data preparation, GUI)
reads them from there through ``FingerprintSettings.from_config``.

Nothing else of ours, no RDKit and no E3FP is imported here, and torch only inside the
functions that make or check tensors: the projector and the data loaders check tokens
without the chemistry stack, and commands that only need the settings (a
`deepmolm-prepare` rerun on finished output) start without torch.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

if TYPE_CHECKING:
    import torch

PAD = -1


class MoleculeFpError(ValueError):
    """Tokens that break the contract; the message says which value and why."""


# Upper bounds of the settings. E3FP identifiers are unsigned 32-bit, so folding to more
# than 2**32 bits changes nothing (the projector's table of bits + 1 rows would only grow).
# Shells of radius 63 * 1.718 = 108 angstrom span any molecule under the heavy-atom cap, and
# the tokens, the sidecar rows and the projector's attention all grow with the levels.
MAX_BITS = 2**32
MAX_LEVELS = 64


@dataclass(frozen=True)
class FingerprintSettings:
    bits: int = 4096  # hashes lie in [0, bits)
    levels: int = 4  # E3FP iterations per atom: levels 0 .. levels - 1

    def __post_init__(self) -> None:
        # was: only `>= 1` was checked, so bits=4096.7, "4096" or True (1) were kept and failed,
        # or folded every hash to 0, at the first molecule; bits=2**40 and levels=2**31 were
        # taken (a table that fits nowhere; a 48 GB token array at the first molecule)
        bits = _check_setting("bits", self.bits, 2, MAX_BITS, "bits=1 folds every hash to 0; "
                              f"E3FP hashes are 32-bit, so more than {MAX_BITS} bits fold nothing")
        levels = _check_setting("levels", self.levels, 1, MAX_LEVELS, f"E3FP iterations 0..{MAX_LEVELS - 1} "
                                f"(radius up to {MAX_LEVELS - 1} x 1.718 A) span any molecule")
        object.__setattr__(self, "bits", bits)  # numpy integers as plain ints: equal settings hash alike
        object.__setattr__(self, "levels", levels)

    @property
    def last_level(self) -> int:
        """E3FP's own `level` argument: the last iteration it runs (levels - 1)."""
        return self.levels - 1

    @classmethod
    def from_config(cls, config: Any) -> "FingerprintSettings":
        """The settings a model was built with (`fp_bits`, `fp_levels` of its config, a
        dict or an object; absent or null fields are DeepMoLM's defaults)."""
        # (config_fields.config_field's rule, written out: this contract module imports nothing of ours)
        get = config.get if isinstance(config, Mapping) else lambda name, default: getattr(config, name, default)
        bits, levels = get("fp_bits", None), get("fp_levels", None)
        # was: int(...) of the value, so fp_bits 4096.9 became 4096 and null a TypeError
        return cls(bits=cls.bits if bits is None else bits, levels=cls.levels if levels is None else levels)

    def config_fields(self) -> dict:
        """The config fields these settings are stored as."""
        return {"fp_bits": self.bits, "fp_levels": self.levels}


def _check_setting(name: str, value: Any, low: int, high: int, why: str) -> int:
    """A setting is an integer (numpy's too, never a bool) in [low, high]; the message names
    it, its value and why."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"fingerprint setting {name} (fp_{name}) must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"fingerprint settings need {name} >= {low} and {name} <= {high}, got {name}={value} "
                         f"({why})")
    return int(value)


DEEPMOLM = FingerprintSettings()


def stamp_problem(fields: Any, settings: FingerprintSettings) -> Optional[str]:
    """Why inline tokens cannot serve `settings`, judged by the settings stamped next to them
    (`fp_bits` / `fp_levels` of the same record, question or line, as deepmolm-fingerprint
    and eval.questions write them), or None (no stamp, or the same settings). Hash values
    below 4096 are valid 8192-bit tokens, so nothing else would notice: a model trained with
    fp_bits 8192 took rows hashed at 4096 without a word."""
    if fields.get("molecule_fp") is None:
        return None
    # each stamp on its own (one may be left out), as a number (8192.0 and "8192" are 8192)
    differ = [f"{name}={fields[name]!r}" for name, ours in (("fp_bits", settings.bits), ("fp_levels", settings.levels))
              if fields.get(name) is not None and _stamped(fields[name]) != ours]
    if not differ:
        return None
    return (f"its molecule_fp was made with {', '.join(differ)}, but the model uses fp_bits={settings.bits}, "
            f"fp_levels={settings.levels}")


def _stamped(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value  # not a number: differs from every setting
    return int(number) if number.is_integer() else number


def validate(tokens: Any, settings: FingerprintSettings = DEEPMOLM) -> torch.Tensor:
    """One molecule's tokens (a tensor or nested lists) -> int64 ``(atoms, levels)``, or a
    MoleculeFpError: wrong shape, a hash outside ``[PAD, bits)``, no valid token at all, or
    an atom without its level-0 token."""
    import torch

    if not torch.is_tensor(tokens):
        if _holds_bool(tokens):  # torch.tensor([[True, 5, 6, 7]]) is int64 [[1, 5, 6, 7]]
            raise MoleculeFpError("molecule_fp holds true/false values, not integer E3FP hashes")
        try:
            tokens = torch.tensor(tokens)  # dtype inferred: a float in the list must not be truncated
        except (TypeError, ValueError, RuntimeError) as e:
            raise MoleculeFpError(f"molecule_fp is not a list of integer rows: {e}") from e
    if tokens.dim() != 2 or tokens.shape[1] != settings.levels or tokens.shape[0] == 0:
        raise MoleculeFpError(f"molecule_fp must be [atoms][{settings.levels}], got shape {list(tokens.shape)}")
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise MoleculeFpError(f"molecule_fp must hold integers (E3FP hashes), got {tokens.dtype}")
    tokens = _as_int64(tokens, settings)
    bad = (tokens < PAD) | (tokens >= settings.bits)
    if bad.any():
        raise MoleculeFpError(f"molecule_fp holds hashes outside [{PAD}, {settings.bits}): {tokens[bad][:5].tolist()}")
    if (tokens == PAD).all():
        raise MoleculeFpError(f"molecule_fp has no valid token (all {PAD})")
    missing = (tokens[:, 0] == PAD).nonzero()[:, 0]
    if len(missing):
        raise MoleculeFpError(f"molecule_fp has atoms without a level-0 token (rows {missing[:5].tolist()}): "
                              "E3FP gives every atom one")
    return tokens


def _as_int64(tokens: torch.Tensor, settings: FingerprintSettings) -> torch.Tensor:
    """Integer tokens of any width and sign -> int64 with the same values, which the range
    checks then compare (torch has no `<` for uint16/32/64, and int8/uint8 hold no 4096).
    Unsigned 32/64-bit values are checked first: .long() wraps 2**64-1 to -1, the padding value."""
    import torch

    if tokens.dtype in (torch.uint64, torch.uint32):
        wide = tokens.double() >= settings.bits
        if bool(wide.any()):
            where = [int(i) for i in wide.nonzero()[0]]
            raise MoleculeFpError(f"molecule_fp holds hashes outside [{PAD}, {settings.bits}) (fp_bits): "
                                  f"{int(tokens[tuple(where)].item())} at molecule_fp{where} (unsigned {tokens.dtype})")
    return tokens.long()


def _holds_bool(value: Any) -> bool:
    """Whether nested lists hold a bool (JSON true/false) anywhere."""
    if isinstance(value, (list, tuple)):
        return any(_holds_bool(v) for v in value)
    return isinstance(value, bool)


def validate_batch(molecule_fp: Any, batch_size: int, settings: FingerprintSettings = DEEPMOLM) -> torch.Tensor:
    """A padded batch as a projector receives it: an integer ``(batch_size, atoms, levels)``
    tensor, values in ``[PAD, bits)``, every molecule with at least one valid token; returned
    as int64. The message names the molecule (batch index) and the value. Any integer dtype
    is judged by its values, as `validate` does (was: compared in its own dtype, so int8/uint8
    tokens were refused with a false "hash 10 must be in [0, 4096)" and uint16/32/64 were a
    torch NotImplementedError)."""
    import torch

    if not isinstance(molecule_fp, torch.Tensor):
        raise TypeError(f"molecule_fp must be a tensor, got {type(molecule_fp).__name__}")
    if molecule_fp.is_floating_point() or molecule_fp.is_complex() or molecule_fp.dtype == torch.bool:
        raise MoleculeFpError(f"molecule_fp must be an integer tensor (int64 E3FP hashes), got {molecule_fp.dtype}")
    if molecule_fp.dim() != 3:
        raise MoleculeFpError("molecule_fp must have shape (batch, atoms, levels) padded with -1, got shape "
                              f"{tuple(molecule_fp.shape)}")
    if molecule_fp.shape[2] != settings.levels:
        raise MoleculeFpError(f"molecule_fp has {molecule_fp.shape[2]} levels per atom, the projector expects "
                              f"fp_levels={settings.levels} (shape {tuple(molecule_fp.shape)})")
    if molecule_fp.shape[0] != batch_size:
        raise MoleculeFpError(f"molecule_fp holds {molecule_fp.shape[0]} molecules but there are {batch_size} "
                              "images: one molecule per image")
    molecule_fp = _as_int64(molecule_fp, settings)
    bad = (molecule_fp < PAD) | (molecule_fp >= settings.bits)  # (B, A, L)
    if bad.any():
        b, a, l = (int(i) for i in bad.nonzero()[0])
        raise MoleculeFpError(
            f"molecule {b} has E3FP hash {int(molecule_fp[b, a, l])} at molecule_fp[{b}, {a}, {l}] "
            f"({int(bad.sum())} bad entries in the batch): hashes must be in [0, {settings.bits}) "
            f"(fp_bits) or {PAD} for padding; were the fingerprints folded to {settings.bits} bits?")
    empty = (molecule_fp == PAD).flatten(1).all(dim=1)  # (B,)
    if empty.any():
        which = [int(i) for i in empty.nonzero()[:, 0]]
        raise MoleculeFpError(f"molecule {which[0]} has no valid fingerprint token (all entries are {PAD}); "
                              f"molecules without tokens in this batch: {which}")
    # the rule validate and collate apply (was: a shifted or corrupted first column went
    # through to the projector); whole PAD rows are padding, any other row is an atom
    headless = ((molecule_fp[:, :, 0] == PAD) & (molecule_fp != PAD).any(dim=2)).nonzero()
    if len(headless):
        b, a = (int(i) for i in headless[0])
        raise MoleculeFpError(f"molecule {b} has an atom without a level-0 token at molecule_fp[{b}, {a}] "
                              f"({len(headless)} such atoms in the batch): E3FP gives every atom one")
    return molecule_fp


def collate(batch: Sequence[torch.Tensor], pad_to: Optional[int] = None) -> torch.Tensor:
    """Per-molecule int64 ``(N_i, L)`` tokens -> ``(B, max N_i, L)`` padded with whole ``PAD``
    rows. ``pad_to`` fixes the atom dimension (an error if a molecule is longer). An empty
    batch, a non-int64 or non-2D item, mixed widths, values below ``PAD`` or an atom
    without a level-0 token is an upstream bug, reported with the item's index."""
    import torch

    if len(batch) == 0:
        raise MoleculeFpError("collate_molecule_fp: empty batch")
    widths = set()
    for i, tokens in enumerate(batch):
        if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.int64 or tokens.dim() != 2:
            raise MoleculeFpError(
                f"collate_molecule_fp: item {i} must be an int64 [atoms, levels] tensor, got "
                f"{getattr(tokens, 'dtype', type(tokens))} {tuple(getattr(tokens, 'shape', ()))}")
        if tokens.shape[0] == 0 or tokens.shape[1] == 0:
            raise MoleculeFpError(f"collate_molecule_fp: item {i} is empty {tuple(tokens.shape)}")
        if (tokens < PAD).any():
            raise MoleculeFpError(f"collate_molecule_fp: item {i} has values below {PAD}")
        if (tokens[:, 0] == PAD).any():
            raise MoleculeFpError(f"collate_molecule_fp: item {i} has atoms without a level-0 token")
        widths.add(tokens.shape[1])
    if len(widths) > 1:
        raise MoleculeFpError(f"collate_molecule_fp: items have different widths {sorted(widths)}")
    longest = max(t.shape[0] for t in batch)
    if pad_to is not None and pad_to < longest:
        raise MoleculeFpError(f"collate_molecule_fp: a molecule has {longest} atoms > pad_to={pad_to}")
    out = torch.full((len(batch), pad_to or longest, widths.pop()), PAD, dtype=torch.int64)
    for i, tokens in enumerate(batch):
        out[i, : tokens.shape[0]] = tokens
    return out  # (B, max_atoms, levels)
