"""Frozen-tower features computed once: DeepEncoder outputs kept on disk, one file per view.

In both DeepMoLM training stages the vision tower is frozen, so its output for a view
never changes, yet every epoch (and every run on the same data) encodes every view again:
at 1024 px that is ~1.1 TFLOP per view, far more than a tiny LLM's step. With a cache
folder the tower (`DeepEncoderVisionTower`) looks each view up first and encodes only the
views it has not seen.

Key: sha256 over this format's version, the view tensor as the tower receives it (dtype,
shape, bytes), the tower's digest (every tensor of its state dict, the architecture
fields of its configuration, and `module_structure`: each submodule's class and reported
settings, so a swapped activation or an edited norm eps, which change the output but no
tensor, miss too), the image mode and the compute dtype (with the autocast dtype when
the forward runs under autocast). Changing the weights, the architecture, the
preprocessing (which changes the view bytes) or the dtype therefore misses instead of
returning stale features.

Files: `<root>/<key[:2]>/<key>.safetensors`, one tensor `features` (tokens, hidden) in the
tower's dtype, with the key and the sha256 of the tensor's bytes in the metadata, and the
mode any other new file of the user gets (0666 less the umask: safetensors' 0600 left a
cache shared by a group unreadable to the others).

Concurrency: a writer writes a temporary file in `<root>/.tmp/` (host, pid and a random
part in its name) and renames it into place, so a reader sees a whole file or none, and
ranks sharing the folder (a shared file system) never see each other's half-written
files; two ranks that encode the same view write the same bytes and the last rename wins.
A writer killed between the two leaves its temporary file: a cache opened later removes
those older than STALE_SECONDS (writing one file takes milliseconds, so no live writer's
file is that old), one folder listing, not a walk of the whole cache; only files named as a
writer names them are removed (a folder given by mistake may have its own `.tmp/`).
Readers check the stored key and digest, and the features' shape and dtype: a file damaged
after the fact (a machine crash before its data reached the disk, an edit) is reported,
recomputed and replaced. A cache is a speed-up, never a reason to lose a run: an entry
that cannot be read (no permission, a folder in its place) or written (disk full) is
reported once per kind of reason and counted (`unreadable`, `unstored`), and the
computed features are used; only a regular file is read as an entry (a FIFO in its place
blocked the forward, a link to /dev/zero filled memory). Non-finite features (NaN or inf)
are used but never stored, and a stored one (written before that rule) is damaged.
A cache folder this user can read but not write (filled once, shared on a read-only
mount) serves what it holds and stores nothing (`read_only`).

Reporting: the launchers collect the caches a run opens (`opened_caches`: the host builds
the tower deep inside its own code) and print one line at the end (`summary_lines`), with
a note where a cache that held entries served none (was: no run said what its cache did).

Contexts: everything in a key except the view (FORMAT, the tower's digest, the image mode,
the compute dtype) is a context. The first entry a context stores also stores a small record
of it, `<root>/contexts/<sha256 of the context>.json` (FORMAT, image mode, dtype, the tower
digest's first 12 hex), written as entries are; read-only caches write none, and a record
that cannot be written is reported once, never a reason to fail a run. A cache reads these
records when opened, so that the note says which of its two causes it is: these views were
not cached before (the cache holds entries of this run's context), or the cache holds only
entries of other contexts (named, with what differs from this run's). Was: the note named
both causes and the user could not tell whether to do nothing or to pass the same dtype or
tower. A cache filled before the records were kept (entries, no `contexts/`) keeps the
two-cause note; the first record written into it is preceded by `contexts/before-record.json`,
as its older entries may be of any context. A context's record is written before its first
entry (was: after it, so a process opening the cache in between, another rank or a parallel
model_vqa chunk, saw an entry and no record and wrote `before-record.json` into a cache that
never held an unrecorded entry; a kill in between left an entry that no record describes).
Several openings of one folder in one run (ranks, `combine_totals`) count as the first of
them, which alone saw the cache as it was before this run stored anything.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import secrets
import socket
import stat
import time
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load

from .. import usage
from ..tensor_files import save_tensors

logger = logging.getLogger(__name__)

# Part of every key: raise it whenever the encoder's forward code gives other numbers for the
# same weights and view (a kernel or layout change that is not a rounding difference), so a
# cache shared across an upgrade never serves features of the older code.
FORMAT = "deepencoder-features-1"
TENSOR = "features"
STALE_SECONDS = 3600  # a temporary file this old belongs to a killed writer
TEMPORARY = re.compile(r".+-\d+-[0-9a-f]+\.part")  # <host>-<pid>-<random hex>.part, as `put` names them
HEADER_ROOM = 1 << 20  # bytes an entry may hold beyond its tensor: the safetensors header and metadata
CONTEXTS = "contexts"  # <root>/contexts/<context id>.json: which contexts stored entries (module docstring)
BEFORE_RECORD = "before-record"  # contexts/before-record.json: entries were stored before the records were kept
_RECORD_NAME = re.compile(rf"(?:[0-9a-f]{{64}}|{BEFORE_RECORD})\.json")  # other files there are not ours


def _raw_bytes(t: torch.Tensor) -> memoryview:
    """The tensor's bytes in C order, on the CPU (bf16 included: numpy has no bf16)."""
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy())


def tensor_digest(t: torch.Tensor) -> str:
    """sha256 of a tensor's dtype, shape and bytes."""
    h = hashlib.sha256(f"{t.dtype}|{tuple(t.shape)}|".encode())
    h.update(_raw_bytes(t))
    return h.hexdigest()


def _gathered(module: torch.nn.Module):
    """DeepSpeed ZeRO-3 keeps only a shard of each parameter on a rank: gather them for
    the digest (a collective: every rank gets here on its first cached forward)."""
    params = [p for p in module.parameters() if hasattr(p, "ds_id")]
    if not params:
        return contextlib.nullcontext()
    import deepspeed  # only ever reached inside a DeepSpeed run

    return deepspeed.zero.GatheredParameters(params, modifier_rank=None)


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 over every state-dict tensor of `module`: names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    with _gathered(module):
        for name, t in sorted(module.state_dict().items()):
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(_raw_bytes(t))
    return h.hexdigest()


SIGNATURE_SAMPLES = 64  # values per tensor, evenly spaced, in the cheap signature


def module_structure(module: torch.nn.Module) -> str:
    """sha256 over each submodule's name, class and the settings it reports (`extra_repr`:
    a LayerNorm's eps, a GELU's approximation, a Linear's sizes): what changes the output
    besides the tensors. Not every attribute: DeepSpeed ZeRO-3 keeps counters on every
    module (`ds_grads_remaining`, `applied_pre_backward_ref_cnt`) that differ between ranks
    and steps, and made each rank key the same view differently. ~2 ms for the real-size
    encoder's 401 modules."""
    h = hashlib.sha256()
    for name, sub in module.named_modules():
        h.update(f"{name}|{type(sub).__module__}.{type(sub).__qualname__}|{sub.extra_repr()}\n".encode())
    return h.hexdigest()


def compute_dtype(dtype: torch.dtype, device: torch.device) -> Tuple[str, Optional[torch.dtype]]:
    """(the dtype part of a key, the dtype stored features have). The key holds the tower's
    dtype, and the autocast dtype when a forward on `device` runs under autocast (its
    matmuls then run in that dtype: other features); there the features come out in either
    dtype (the last op decides), so theirs is not checked (None)."""
    if torch.is_autocast_enabled(device.type):
        return f"{dtype} autocast {torch.get_autocast_dtype(device.type)}", None
    return str(dtype), dtype


@functools.lru_cache(maxsize=4096)
def _sample_index(numel: int, device: torch.device) -> torch.Tensor:
    """SIGNATURE_SAMPLES evenly spaced positions in a tensor of `numel` values: built once
    per size and device, not per tensor on every forward (~470 tensors in the tower)."""
    return torch.linspace(0, numel - 1, min(SIGNATURE_SAMPLES, numel), device=device).long()


def weights_signature(module: torch.nn.Module) -> tuple:
    """Cheap fingerprint of the weights: which tensors, where, how often written, and a
    sample of their values; the (expensive) digest is redone whenever it changes.

    An in-place write through the parameter (load_state_dict, an optimiser step) bumps its
    version, a replaced parameter changes its id and address. A write through `param.data`
    (`p.data.copy_(w)`, as hand-written weight loaders do) bumps neither: `.data` is a
    tensor with a version counter of its own. For those, SIGNATURE_SAMPLES evenly spaced
    values of every tensor are part of the signature (one gather and one transfer for the
    whole module, far cheaper than reading every weight): loading other weights changes
    them; an edit that leaves all of them equal goes unnoticed. Under ZeRO-3 the rank's
    shard (`ds_tensor`) stands for the parameter, whose full data comes and goes.
    """
    signature, samples = [], []
    for t in list(module.parameters()) + list(module.buffers()):
        t = getattr(t, "ds_tensor", t)
        # An inference tensor (weights made under torch.inference_mode) has no version
        # counter ("Inference tensors do not track version counter"): its samples stand in.
        signature.append((id(t), t.data_ptr(), None if t.is_inference() else t._version))
        flat = t.detach().reshape(-1)
        if flat.numel():
            samples.append(flat[_sample_index(flat.numel(), flat.device)].to(torch.float64))
    if samples:  # bytes, so that NaN samples compare equal to themselves
        signature.append(_raw_bytes(torch.cat(samples)).tobytes())
    return tuple(signature)


class FeatureCache:
    """On-disk cache of per-view encoder outputs under `root` (see the module docstring)."""

    def __init__(self, root: "str | os.PathLike"):
        # The launchers check their option the same way before the model loads; this is
        # for enable_feature_cache called from code. Problems are found now, not at the
        # first put in the middle of a run. (usage.UsageError is a ValueError.)
        self.root = usage.cache_folder(root, "feature cache")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # no permission, a race with another process
            raise ValueError(f"feature cache {self.root}: cannot create the folder ({e.strerror or e})") from e
        self.hits = self.misses = self.damaged = self.unreadable = self.unstored = 0
        # whether entries were there before this run stored any: 0 hits from such a cache is news.
        # Read before the records: a record is written before its context's first entry, so an
        # entry seen here has its record on disk by the time they are read.
        self.held_entries = _holds_entries(self.root)
        self.keyed_as: set = set()  # (image mode, dtype key part) of the lookups, for the summary's note
        # The context records there when opened: None where there are none (a cache filled
        # before they were kept, or a new one). Read now, not at a context's first lookup:
        # another rank sharing the folder may have stored this run's first entries by then.
        self.recorded = _read_records(self.root / CONTEXTS)
        self.contexts: Dict[str, dict] = {}  # context id -> record, of this run's lookups
        self._marked = set(self.recorded or ())  # contexts whose record is on disk (or need none)
        self._awaiting_record: Dict[str, str] = {}  # key -> context id, until that key is stored or served
        for collector in _collectors:
            collector.append(self)
        self._reported: set = set()  # (what, reason kind): each is logged once per cache
        self.tmp = self.root / ".tmp"
        # A cache shared on a read-only mount serves the views it holds; the others are
        # encoded and not stored (counted in `unstored`), said once here, not per view.
        self.read_only = not os.access(self.root, os.W_OK | os.X_OK)
        if self.read_only:
            logger.warning("feature cache %s is read-only: stored views are read, new ones are encoded and not "
                           "stored (counted in stats()['unstored'])", self.root)
        self.removed_stale = 0 if self.read_only else self._remove_stale_temporaries()

    def _remove_stale_temporaries(self) -> int:
        """Remove killed writers' temporary files (older than STALE_SECONDS); how many."""
        removed, now = 0, time.time()
        try:
            entries = list(os.scandir(self.tmp))
        except FileNotFoundError:
            return 0
        except OSError as e:  # a file named .tmp, no permission: writes will fail and be counted, not the run
            self._report_once("clean", e, "feature cache %s: cannot list its temporary folder %s (%s); new views "
                              "may not be stored (counted in stats()['unstored'])", self.root, self.tmp)
            return 0
        for entry in entries:
            try:
                if (TEMPORARY.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)
                        and now - entry.stat().st_mtime > STALE_SECONDS):
                    os.unlink(entry.path)
                    removed += 1
            except OSError:  # another process removed it first, or no permission: only a leftover
                pass
        if removed:
            logger.info("feature cache %s: removed %d temporary file(s) of killed writers", self.root, removed)
        return removed

    def key(self, view: torch.Tensor, weights: str, mode: str, dtype: "torch.dtype | str") -> str:
        """The cache key of one view (3, S, S) for a tower with weights digest `weights`;
        `dtype` as `compute_dtype`'s first value."""
        parts = (FORMAT, tensor_digest(view), weights, mode, str(dtype))
        self.keyed_as.add((mode, str(dtype).replace("torch.", "")))
        key = hashlib.sha256("|".join(parts).encode()).hexdigest()
        context = _context_id(weights, mode, str(dtype))
        if context not in self.contexts:  # this context's first lookup in this run
            self.contexts[context] = _context_record(weights, mode, str(dtype))
        if context not in self._marked and not self.read_only:  # its first stored entry writes its record
            self._awaiting_record[key] = context
        return key

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.safetensors"

    def get(self, key: str, shape: Optional[tuple] = None, dtype: Optional[torch.dtype] = None
            ) -> Optional[torch.Tensor]:
        """The stored features (tokens, hidden) on the CPU, or None (counted as a miss).
        With `shape` / `dtype`, an entry of another shape or dtype counts as damaged: it
        would fail the batch, or be silently converted."""
        path = self.path(key)
        limit = None if shape is None or dtype is None else HEADER_ROOM + _numel(shape) * dtype.itemsize
        try:
            features = _entry(key, _read_entry(path, limit))
            _check_layout(features, shape, dtype)
        except FileNotFoundError:
            self.misses += 1
            return None
        except OSError as e:  # no permission, a folder or a FIFO in the entry's place, a file where its sub-folder belongs
            # Not damaged data: the same cause fails every view on every forward, so it is
            # reported once per kind (errno), counted, and the view encoded.
            self.unreadable += 1
            self.misses += 1
            self._report_once("read", e, "feature cache %s: entry %s cannot be read (%s); encoding the views "
                              "this affects (counted in stats()['unreadable'])", self.root, path)
            return None
        except ValueError as e:
            self.damaged += 1
            self.misses += 1
            logger.warning("feature cache file %s is damaged (%s): encoding that view again", path, e)
            return None
        self.hits += 1
        self._awaiting_record.pop(key, None)  # served: no put of this key follows
        return features

    def put(self, key: str, features: torch.Tensor) -> None:
        """Store one view's features (tokens, hidden); atomic, see the module docstring."""
        if self.read_only:
            self.unstored += 1
            return
        features = features.detach().to("cpu").contiguous()
        path = self.path(key)
        if not bool(torch.isfinite(features).all()):
            # A frozen tower's NaN / inf (overflow in float16, damaged weights) is not kept: a
            # cache hit would hand it to every later run as if it were the view's features.
            self.unstored += 1
            logger.warning("feature cache %s: the features of %s are not finite (NaN or inf): not stored",
                           self.root, path.name)
            return
        metadata = {"format": FORMAT, "key": key, "sha256": hashlib.sha256(_raw_bytes(features)).hexdigest()}
        context = self._awaiting_record.pop(key, None)
        if context is not None and context not in self._marked:
            # Before the entry, so that no entry is ever on disk without its record (module
            # docstring); a record whose entry then fails to be stored describes nothing, harmless.
            self._write_record(context)
        try:  # the user's file mode, not save_file's 0600
            self._write(path, lambda tmp: save_tensors({TENSOR: features}, tmp, metadata=metadata))
        except (OSError, SafetensorError) as e:  # disk full, a folder in the entry's place...
            self.unstored += 1
            self._report_once("store", e, "feature cache %s: cannot store %s (%s); the computed features are "
                              "used, not stored (counted in stats()['unstored'])", self.root, path)
            return

    def _write(self, path: Path, write) -> None:
        """`write(tmp)` a temporary file in `.tmp/` (named as TEMPORARY matches: a killed
        writer's is removed once stale), then rename it to `path`: readers see all or nothing."""
        tmp = self.tmp / f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}.part"
        try:
            self.tmp.mkdir(exist_ok=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            write(tmp)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(OSError):  # the write or the rename failed: leave no stray file
                if tmp.exists():
                    tmp.unlink()

    def _write_record(self, context: str) -> None:
        """Store the record of `context`, which is about to store its first entry here. In a
        cache that held entries and no records, `before-record.json` first: those entries
        may be of any context. A record that cannot be written is reported once and tried
        again with the context's next entry (was: tried once per run, so a passing failure,
        a full disk, left the entries stored after it with no record); until it is written a
        later run's note is less precise."""
        records = [(context, self.contexts[context])]
        if self.recorded is None and self.held_entries and BEFORE_RECORD not in self._marked:
            note = "entries stored before this cache kept records of their contexts"
            records.insert(0, (BEFORE_RECORD, {"note": note}))
        try:
            for name, record in records:
                text = json.dumps(record, sort_keys=True) + "\n"
                # open()'s mode: 0666 less the umask, as entries get
                self._write(self.root / CONTEXTS / f"{name}.json", lambda tmp: tmp.write_text(text))
                self._marked.add(name)
        except OSError as e:  # disk full, a file named `contexts`
            self._report_once("record", e, "feature cache %s: cannot write its record of what made its entries "
                              "(%s); the entries are stored, a later run's note will be less precise", self.root)

    def _report_once(self, what: str, error: Exception, message: str, *args) -> None:
        """Log `message % (*args, reason)` the first time this kind of `error` happens for
        `what`. The kind is the errno, or the exception type: the text can hold a random
        temporary file name (safetensors' errors), which made every view a new reason."""
        kind = (what, getattr(error, "errno", None) or type(error).__name__)
        if kind not in self._reported:
            self._reported.add(kind)
            logger.warning(message, *args, getattr(error, "strerror", None) or str(error))

    def stats(self) -> dict:
        return {"hits": self.hits, "misses": self.misses, "damaged": self.damaged, "unreadable": self.unreadable,
                "unstored": self.unstored,
                "root": str(self.root)}


# Lists the caches opened while `opened_caches` is active append themselves to.
_collectors: List[list] = []
COUNTS = ("hits", "misses", "damaged", "unreadable", "unstored")


@contextlib.contextmanager
def opened_caches() -> Iterator[List[FeatureCache]]:
    """The FeatureCaches opened while active, in a list: the launchers' way to their counts
    after the host's train() / eval_model, which build the tower themselves."""
    opened: List[FeatureCache] = []
    _collectors.append(opened)
    try:
        yield opened
    finally:
        _collectors.remove(opened)


def _holds_entries(root: Path) -> bool:
    """Whether the cache folder holds an entry: the first `<key[:2]>/` sub-folder with a file
    named as entries are (`<key>.safetensors`, the key starting with the folder's name: a
    run's `01/model.safetensors` is none) answers it; two folder listings for a filled cache,
    not a walk of millions of files."""
    try:
        with os.scandir(root) as folders:
            for folder in folders:
                if _ENTRY_FOLDER.fullmatch(folder.name) and folder.is_dir(follow_symlinks=False):
                    with os.scandir(folder.path) as entries:
                        if any(_ENTRY_NAME.fullmatch(entry.name) and entry.name.startswith(folder.name)
                               for entry in entries):
                            return True
    except OSError:  # cannot be listed: get() reports what it cannot read
        return False
    return False


_ENTRY_FOLDER = re.compile(r"[0-9a-f]{2}")  # an entry's folder: its key's first two hex digits
_ENTRY_NAME = re.compile(r"[0-9a-f]{64}\.safetensors")  # an entry: its sha256 key


def _context_id(weights: str, mode: str, dtype: str) -> str:
    """The name of a context's record: sha256 over everything in a key but the view."""
    return hashlib.sha256("|".join((FORMAT, weights, mode, dtype)).encode()).hexdigest()


def _context_record(weights: str, mode: str, dtype: str) -> dict:
    """What a context's record holds, and the note names: as the note writes them."""
    return {"format": FORMAT, "image_mode": mode, "dtype": dtype.replace("torch.", ""), "tower": weights[:12]}


def _read_records(folder: Path) -> Optional[Dict[str, dict]]:
    """{record name: its record} of a `contexts/` folder, None where it holds none; a record
    that cannot be read is {"unreadable": why}. One listing and a few small files: one
    record per context ever stored, not per entry."""
    records: Dict[str, dict] = {}
    try:
        names = sorted(entry.name for entry in os.scandir(folder) if _RECORD_NAME.fullmatch(entry.name))
    except FileNotFoundError:
        return None
    except OSError as e:  # a file named `contexts`, no permission: no record to go by
        logger.warning("feature cache %s: cannot list %s (%s): its end-of-run note cannot say which tower, dtype "
                       "and image mode made its entries", folder.parent, folder, e.strerror or e)
        return None
    for name in names:
        try:
            record = json.loads((folder / name).read_text())
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
            record = {"unreadable": f"{name}: {getattr(e, 'strerror', None) or e}"}
        records[name[: -len(".json")]] = record
    return records or None


def empty_totals() -> dict:
    """What `merged_stats` gives a folder before adding a cache's counts."""
    return {**{name: 0 for name in COUNTS}, "held_entries": False, "keyed_as": set(), "contexts": {},
            "recorded": None}


def merged_stats(caches: Iterable[FeatureCache]) -> Dict[str, dict]:
    """{root: `combine_totals` of the caches opened on it}."""
    opened: Dict[str, List[dict]] = {}
    for cache in caches:
        opened.setdefault(str(cache.root), []).append(
            {**{name: getattr(cache, name) for name in COUNTS}, "held_entries": cache.held_entries,
             "keyed_as": set(cache.keyed_as), "contexts": dict(cache.contexts), "recorded": cache.recorded})
    return {root: combine_totals(parts) for root, parts in opened.items()}


def combine_totals(parts: List[dict]) -> dict:
    """The totals of several openings of one cache folder in one run (the caches a process
    opened, the ranks of a training run: `merged_stats`' values): counts summed, `keyed_as`
    (the (image mode, dtype) pairs of their lookups) and `contexts` ({id: record} of their
    lookups) joined, and `held_entries` and `recorded` (the context records there when
    opened) as the first opening saw them, the only one that saw the folder before this run
    stored anything: entries and records are only ever added, so that is whether EVERY
    opening saw entries, and the records that every opening saw. Was: `held_entries` if ANY
    opening saw entries and the first-listed one's records, so a rank that opened a fresh
    cache after another rank's first entry made the note say the cache "held entries" that
    "were stored before it kept a record of what made them"."""
    combined = empty_totals()
    for part in parts:
        for name in COUNTS:
            combined[name] += part[name]
        combined["keyed_as"] |= part["keyed_as"]
        combined["contexts"].update(part["contexts"])
    if parts:
        combined["held_entries"] = all(part["held_entries"] for part in parts)
        seen_by_all = [part["recorded"] or {} for part in parts]
        combined["recorded"] = {name: record for name, record in seen_by_all[0].items()
                                if all(name in seen for seen in seen_by_all)} or None
    return combined


DTYPE_OPTIONS = ("model_vqa's --dtype, whose auto is bfloat16 on a GPU or a CPU with native bf16; "
                 "training's --bf16")
# (record field, what the note calls it); the format is the encoder code's version (FORMAT)
FIELDS = (("dtype", "dtype"), ("image_mode", "image mode"), ("tower", "tower"), ("format", "encoder code"))
SHOWN_RECORDS = 6  # contexts named in the note; a cache shared by many towers has more


def summary_lines(root: str, totals: dict, scope: str = "") -> List[str]:
    """`feature cache ROOT: 4 hits, 0 misses, 0 damaged, 0 unreadable, 0 unstored` and, where a
    cache that held entries served none of this run's views, a `note:` line saying why
    (`_no_hit_cause`). `scope`: what the counts cover, e.g. " (summed over 2 ranks)"."""
    counts = ", ".join(f"{totals[name]} {name}" for name in COUNTS)
    lines = [f"feature cache {root}{scope}: {counts}"]
    if totals["held_entries"] and totals["hits"] == 0 and totals["misses"] > 0:
        keyed = "; ".join(f"{dtype}, image mode {mode}" for mode, dtype in sorted(totals["keyed_as"]))
        lines.append(f"note: feature cache {root} held entries, but none matched this run's views (looked up as "
                     f"{keyed}): {_no_hit_cause(totals.get('recorded'), totals.get('contexts') or {})}")
    return lines


def _no_hit_cause(recorded: Optional[Dict[str, dict]], contexts: Dict[str, dict]) -> str:
    """Why a cache that held entries served none, from its context records (`recorded`, as
    they were when opened) and this run's contexts. Was: always both causes, which the user
    could not tell apart (review: new views alone, e.g. a test split after training, were
    said to be a dtype mismatch; a dtype mismatch, to be new views)."""
    if any(context in (recorded or {}) for context in contexts):
        return ("these views were not cached before (the cache holds entries of this tower, dtype and image mode, "
                "for other views)")
    held = [record for name, record in (recorded or {}).items() if name != BEFORE_RECORD]
    if not held:  # no record, or only before-record.json (the record after it was not written)
        return ("either these views were not cached before, or the entries were made with another dtype "
                f"({DTYPE_OPTIONS}), image mode or tower, which a key holds; the cache cannot tell which: its "
                "entries were stored before it kept a record of what made them")
    named = "; ".join(_describe(record) for record in held[:SHOWN_RECORDS])
    more = f"; and {len(held) - SHOWN_RECORDS} more" if len(held) > SHOWN_RECORDS else ""
    this_run = "; ".join(_describe(record) for record in contexts.values())
    cause = (f"the cache holds no entries made with this run's tower / dtype / image mode; it holds entries of: "
             f"{named}{more} (this run: {this_run}){_differences(held, list(contexts.values()))}")
    if BEFORE_RECORD in recorded:
        cause += ("; it also holds entries stored before it kept this record, which may be of this run's tower, "
                  "dtype and image mode (then these views were not cached before)")
    return cause


def _describe(record: dict) -> str:
    """`bfloat16, image mode base, tower 0123456789ab` (and its encoder code where not this one's)."""
    if "unreadable" in record:
        return f"an unreadable record ({record['unreadable']})"
    text = ", ".join(f"{label} {record.get(field)}" if field != "dtype" else str(record.get(field))
                     for field, label in FIELDS[:3])
    return text + (f", encoder code {record.get('format')}" if record.get("format") != FORMAT else "")


def _differences(held: List[dict], run: List[dict]) -> str:
    """`: another dtype (...)` naming each part of this run's contexts that no held record
    shares: what the user has to make equal to use the entries. The tower digest covers the
    weights in the tower's dtype (the dtype's first word), so towers are compared only
    between records of the same one: a bfloat16 copy of the same weights has another digest."""
    readable = [r for r in held if "unreadable" not in r]
    if not readable:  # nothing to compare with
        return ""
    weights_dtypes = {_weights_dtype(r) for r in run}
    differ, towers_compared = [], False
    for field, label in FIELDS:
        others = [r for r in readable if field != "tower" or _weights_dtype(r) in weights_dtypes]
        towers_compared |= field == "tower" and bool(others)
        if others and not {r.get(field) for r in run} & {r.get(field) for r in others}:
            differ.append(label)
    said = ", another ".join(f"{label} ({DTYPE_OPTIONS})" if label == "dtype" else label for label in differ)
    if not towers_compared:
        said += ("; whether the tower is the same cannot be told: its digest covers the weights in the dtype "
                 "they are held in")
    return f": another {said}" if differ else ": another combination of them"


def _weights_dtype(record: dict) -> str:
    """The dtype the tower's weights are held in: a record's dtype, less any autocast part."""
    return str(record.get("dtype")).split(" ")[0]


def print_summary(caches: Iterable[FeatureCache], file=None) -> None:
    """`summary_lines` for each cache folder of `caches` (one process's counts), on stderr."""
    import sys

    for root, totals in merged_stats(caches).items():
        for line in summary_lines(root, totals):
            print(line, file=file or sys.stderr, flush=True)


def _numel(shape: tuple) -> int:
    count = 1
    for size in shape:
        count *= int(size)
    return count


def _read_entry(path: Path, limit: Optional[int]) -> bytes:
    """An entry's bytes; OSError where it is no regular file: opened without blocking and
    checked before the read (a FIFO in its place blocked the forward for ever, a link to
    /dev/zero read without end). A file larger than `limit` is damaged (ValueError)."""
    with open(path, "rb", opener=lambda name, flags: os.open(name, flags | os.O_NONBLOCK)) as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(0, "not a regular file (a FIFO or a device in the entry's place)")
        if limit is not None and info.st_size > limit:
            raise ValueError(f"{info.st_size} bytes, more than features of the expected shape take")
        return handle.read()


def _check_layout(features: torch.Tensor, shape: Optional[tuple], dtype: Optional[torch.dtype]) -> None:
    if shape is not None and tuple(features.shape) != tuple(shape):
        raise ValueError(f"holds features of shape {tuple(features.shape)}, expected {tuple(shape)}")
    if dtype is not None and features.dtype != dtype:
        raise ValueError(f"holds {features.dtype} features, expected {dtype}")
    if features.is_floating_point() and not bool(torch.isfinite(features).all()):
        # put() never stores them; an entry written before it refused them was served as a hit
        raise ValueError("holds features that are not finite (NaN or inf)")


def _entry(key: str, data: bytes) -> torch.Tensor:
    """The features in a cache file's bytes; ValueError saying why they are not usable."""
    if len(data) < 8:
        raise ValueError("shorter than a safetensors header")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise ValueError("header runs past the end of the file")
    try:
        metadata = json.loads(data[8 : 8 + size]).get("__metadata__") or {}
        features = load(data).get(TENSOR)
    except (SafetensorError, ValueError, AttributeError, RecursionError) as e:  # JSON / header / layout errors
        # (RecursionError: a header of deeply nested JSON, which json.loads cannot parse)
        raise ValueError(f"unreadable: {e}") from e
    if features is None or metadata.get("key") != key:
        raise ValueError("holds another entry")
    if metadata.get("sha256") != hashlib.sha256(_raw_bytes(features)).hexdigest():
        raise ValueError("contents do not match their digest")
    return features
