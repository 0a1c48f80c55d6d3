"""One molecule in any input form -> the model inputs of that molecule.

Every caller goes through `InputResolver.resolve`: the training dataset (host records),
evaluation (question lines), the chat CLI, the GUI and data preparation's checks. Input
forms, as fields of a record-like dict:

==================  ===========================================================================
``molecule_fp``     inline tokens ``[[levels ints] per atom]``, or a sidecar reference
                    ``{"sidecar": "fp/train.npy", "offset": 123, "atoms": 17}`` (relative to
                    ``record_folder``, as ``deepmolm-prepare`` writes them)
``structure``       a structure file (SDF/MOL, MOL2, XYZ, PDB, SMI, CSV) under ``structure_folder``
``atoms``           element symbols, with ``coordinates`` (angstrom) and optionally ``charge``
                    and ``smiles`` (the 3D-MoIT form)
``smiles``          a SMILES string: a conformer is generated (ETKDGv3 + MMFF94, seeded)
``image``           the depiction to use instead of drawing one
==================  ===========================================================================

Precedence for the tokens: ``molecule_fp``, then ``structure``, ``atoms``, ``smiles``. The
3D policy (``auto``, ``from-file``, ``generate``, ``keep``) applies to every form; a SMILES
has no coordinates, so ``from-file`` refuses it ("no coordinates: policy 'from-file'
needs a 3D structure"). A structure file
must hold exactly one molecule (``first_of_many=True``: its first, with a note), unless
``structure_index`` picks one record of a multi-record file. ``limits`` (``max_atoms``,
``embed_timeout``, ``mmff_max_iters``) bound the work per molecule, the same for every form;
given tokens (one row per heavy atom) are held to the same ``max_atoms`` when ``limits`` is
given (by every caller that serves a model or its data).

The depiction: ``image`` when given; else drawn with ``render_molecule`` from the SMILES
when there is one, else from the structure (or atoms) (``drawn_molecule``, deepmolm-prepare's
rule too), and written once by
`write_depiction` (atomic) under `depiction_name` — the one file-name rule: a digest of
what is drawn (the SMILES, or the structure file's bytes, the record number and the 3D
policy) and the render settings, so inputs about one molecule share one file and an edited input never reuses a
stale one. Inline tokens alone cannot be drawn.

Every failure is an `InputError` naming the input (``rid``) and the reason; callers that
speak of records, questions or options re-word only the name.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import socket
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, List, Mapping, Optional

from .. import usage
from ..config_fields import config_field, has_config_field
from ..molecule_fp import DEEPMOLM, FingerprintSettings, MoleculeFpError, stamp_problem, validate
from ..usage import DataError
from .errors import MoleculeError
from .sidecar import SidecarError, SidecarFiles, is_reference

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

    from .record import MoleculeRecord

MOLECULE_FIELDS = ("molecule_fp", "structure", "atoms", "smiles")
# MOLECULE_FIELDS with their companions: everything that says which molecule an input is.
# Whatever copies an input into another file copies all of them (a converter that kept
# `atoms` but not `coordinates`, or `structure` but not `structure_index`, changed the molecule).
MOLECULE_KEYS = ("molecule_fp", "structure", "structure_index", "atoms", "coordinates", "charge", "smiles")
RENDER_SIZE = 1024  # DeepMoLM's depictions; the image processor resizes to the tower's input size
# A depiction's side in pixels: below 16 a molecule is a smudge; 8192 is 256 MB an image
# already (Cairo itself fails above 32767, after every record's conformer work was done).
MIN_RENDER_SIZE, MAX_RENDER_SIZE = 16, 8192
# Records of a structure file counted for a message (parsed, not built): 1,000 aspirins take
# 0.3 s, 10,000 took 2.3 s on every load of a library; past it the message says "more than"
COUNT_LIMIT = 1000


def model_render_size(config) -> int:
    """The side, in pixels, a model's depictions are drawn at: its config's `render_size`
    (training records the size its data's depictions had: a prepared dataset's
    --image-size), else RENDER_SIZE. `config`: a model config or config.json's dict."""
    value = config_field(config, "render_size")
    if value is None:
        return RENDER_SIZE
    problem = render_size_problem(value)
    if problem:
        raise ValueError(f"the model config's render_size is {value!r}, {problem}")
    return value


def render_size_problem(value) -> Optional[str]:
    """Why `value` cannot be a depiction side, or None: a whole number of pixels in
    MIN_RENDER_SIZE..MAX_RENDER_SIZE (the range deepmolm-prepare --image-size and
    deepmolm-render --size take, so a model's recorded size and a size given to chat, eval
    or the GUI are held to the one range its data could have been drawn at)."""
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_RENDER_SIZE <= value <= MAX_RENDER_SIZE:
        return f"not a depiction side of {MIN_RENDER_SIZE}-{MAX_RENDER_SIZE} pixels"
    return None


class Limits(dict):
    """InputResolver `limits` (max_atoms, embed_timeout, mmff_max_iters) that say where their
    heavy-atom cap was set (``cap_from``: ``errors.MODEL_CAP``, ``MODEL_DEFAULT_CAP``, an
    option name, or None), so a refusal names that and no option its tool lacks."""

    def __init__(self, values: Optional[Mapping] = None, cap_from: Optional[str] = None):
        super().__init__(values or {})
        self.cap_from = cap_from


def model_limits(config, cap_from: Optional[str] = None) -> Limits:
    """The builder bounds a model's molecules were made under: its config's `max_atoms`
    (training records its data's: a prepared dataset's --max-atoms, None for no cap), as
    InputResolver `limits`; {} (the default cap) for a config without one. Data prepared
    with --max-atoms none was refused by training, and its large molecules by chat, eval
    and the GUI, with a message naming an option they do not have.

    ``cap_from`` (``Limits.cap_from``): where the cap was set, for its refusal's words;
    by default the model's (``errors.MODEL_CAP``) for a model's config, which names its
    ``model_type`` (transformers writes it into every config.json), and None for other
    settings (training passes a prepared dataset's manifest settings: that cap is the
    data's). Was: "raise it with max_atoms / --max-atoms" in the chat, eval and the GUI,
    which have no such option."""
    from .errors import MODEL_CAP, MODEL_DEFAULT_CAP

    present = has_config_field(config, "max_atoms")
    if cap_from is None and _is_model_config(config):
        cap_from = MODEL_CAP if present else MODEL_DEFAULT_CAP
    if not present:
        return Limits(cap_from=cap_from)
    value = config_field(config, "max_atoms")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"max_atoms is {value!r}, not a number of heavy atoms >= 1 or null")
    return Limits({"max_atoms": value}, cap_from=cap_from)


def _is_model_config(config) -> bool:
    """A model's config (object or config.json's dict): it names its model_type."""
    return bool(config_field(config, "model_type"))


def _defaults_note(config, no_policy: bool, no_size: bool, policy_option: str) -> Optional[str]:
    """A note naming the settings a model config does not record, the default used for each,
    and how the user sets it; None when it records them all."""
    from .policy import MAX_ATOMS

    if not config_field(config, "mm_vision_tower"):  # no DeepMoLM checkpoint (none, a hub name, a text LLM):
        return None  # training never recorded these there, and the caller's own checks say what it is
    unrecorded = [("conformer_policy", "conformer policy 'auto'", f"give {_given_as(policy_option, 'POLICY')}",
                   no_policy),
                  ("render_size", f"{RENDER_SIZE} px depictions",
                   "add \"render_size\": N (its data's deepmolm-prepare --image-size) to config.json", no_size),
                  ("max_atoms", f"at most {MAX_ATOMS} heavy atoms", "add \"max_atoms\": N to config.json",
                   _is_model_config(config) and not has_config_field(config, "max_atoms"))]
    missing = [item for item in unrecorded if item[3]]
    if not missing:
        return None
    names, used = (", ".join(item[i] for item in missing) for i in range(2))
    fixes = "; ".join(item[2] for item in missing)
    return (f"the model's config.json does not record {names} (a checkpoint saved before training recorded them): "
            f"using {used}; if its training data was made otherwise, {fixes}, or its molecules' inputs differ "
            "from training's")


def _given_as(name: str, value) -> str:
    """A given setting as the user wrote it: `--conformer-policy keep`, or `policy='keep'`
    (a Python argument)."""
    return f"{name} {value}" if name.startswith("-") else f"{name}={value!r}"


@dataclass(frozen=True)
class ModelDepiction:
    """How a model's molecules become its inputs, as training made them: the 3D policy,
    the depiction side in pixels, the builder bounds (InputResolver `limits`), and the notes
    the user is told (a setting other than training's; a setting the checkpoint does not
    record, so a default stands in)."""

    policy: str
    render_size: int
    limits: Limits
    notes: tuple = ()


def model_depiction(config, policy: Optional[str] = None, render_size: Optional[int] = None,
                    names: Optional[Mapping] = None) -> ModelDepiction:
    """The one resolution of a model's depiction settings (the chat CLI, model_vqa, the GUI
    and its Python API `ChatSession` all come here): each is `config`'s recorded one, unless
    given; a given one other than the recorded one is used with a note (an ablation may want
    it). A setting the config does not record (a checkpoint saved before training recorded
    it) is the default, with a note naming it (was: 1024 px, "auto" and 256 atoms without a
    word, where training had drawn 256 px pictures). `names`: how the user gives each
    setting ({"policy": "--conformer-policy", ...}), for the notes' words. A recorded value
    that cannot be one: ValueError naming the field."""
    from .policy import POLICIES

    names = {"policy": "policy", "render_size": "render_size", **(names or {})}
    trained_size = model_render_size(config) if config_field(config, "render_size") is not None else None
    limits = model_limits(config)
    trained = config_field(config, "conformer_policy")
    if trained is not None and trained not in POLICIES:
        raise ValueError(f"config.json's conformer_policy is {trained!r}, not one of {', '.join(POLICIES)}")
    if policy is not None and policy not in POLICIES:
        raise ValueError(f"{_given_as(names['policy'], policy)}: not one of {', '.join(POLICIES)}")
    size_problem = render_size_problem(render_size) if render_size is not None else None
    if size_problem:
        raise ValueError(f"{_given_as(names['render_size'], render_size)}: {size_problem}")
    notes = []
    if policy is not None and trained is not None and policy != trained:
        notes.append(f"{_given_as(names['policy'], policy)}: the model was trained with conformer policy "
                     f"{trained!r}; its molecules may get other conformers, and so other tokens, than in training")
    if render_size is not None and trained_size is not None and render_size != trained_size:
        notes.append(f"{_given_as(names['render_size'], render_size)}: the model was trained on {trained_size} px "
                     "depictions; drawn ones now differ from training's")
    defaults = _defaults_note(config, policy is None and trained is None,
                              render_size is None and trained_size is None, names["policy"])
    if defaults:
        notes.append(defaults)
    return ModelDepiction(policy=policy or trained or "auto", render_size=render_size or trained_size or RENDER_SIZE,
                          limits=limits, notes=tuple(notes))


class InputError(DataError):
    """A record (or question, molecule file entry) that cannot be served: "record 'ID': reason"."""

    def __init__(self, rid: str, reason: Optional[str] = None, kind: str = "record"):
        if reason is None:
            # One whole message: how torch's DataLoader re-raises a worker's error in the
            # main process (its text ends with the worker's "InputError: record ...: reason").
            super().__init__(rid)
            self.record_id, self.reason, self.kind = None, rid, kind
            return
        super().__init__(f"{kind} {rid!r}: {reason}")
        self.record_id, self.reason, self.kind = rid, reason, kind


class OutputWriteError(DataError):
    """A file this run writes (a drawn depiction, a prepared output) could not be written: a
    full disk, a quota, a file-size limit, a read-only or failing device. The run's problem,
    never a record's: callers stop the run with this one line (training prints it as any
    DataError, exit 1; deepmolm-prepare adds how to resume). It is deliberately not an
    `InputError`, which callers turn into one record's or question's failure: a full disk
    made every later record "fail" (was: PIL's bare OSError, or a failure line per record).
    """

    def __init__(self, path, error: OSError, action: str = "write", what: str = ""):
        self.path, self.error, self.action, self.what = os.fspath(path), error, action, what
        about = f" ({what})" if what else ""
        super().__init__(f"cannot {action} {self.path}{about}: {error.strerror or error}")

    def __reduce__(self):  # raised in deepmolm-prepare's worker processes, re-raised in the parent
        return (type(self), (self.path, self.error, self.action, self.what))


@dataclass
class MoleculeInput:
    """What the model gets for one molecule, and where it came from."""

    id: str
    molecule: Optional["MoleculeRecord"] = None  # the structure whose conformer gave molecule_fp
    molecule_fp: Optional["torch.Tensor"] = None  # (atoms, levels) int64
    image: Optional[str] = None  # path of the depiction (given, or drawn and written)
    notes: List[str] = field(default_factory=list)


def has_molecule(fields: Mapping) -> bool:
    return any(_given(fields.get(name)) for name in MOLECULE_FIELDS)


def _given(value) -> bool:
    """Whether a molecule field holds something: not None, '' or []. Arrays count by their
    length (numpy refuses a truth value for arrays of several atoms)."""
    if value is None or isinstance(value, (str, bytes)):
        return bool(value)
    return len(value) > 0 if hasattr(value, "__len__") else True


# What each molecule field holds, for the message when it is there but empty
_FIELD_HOLDS = {"structure": "a structure file path", "atoms": "a list of element symbols", "smiles": "a SMILES"}
_MOLECULE_FIELDS = ("molecule_fp", "structure", "atoms", "smiles")  # each gives a molecule by itself
# What each field gives the tokens from, in `given_image_note`'s words
_TOKEN_SOURCES = {"molecule_fp": "the tokens given", "structure": "the structure file", "atoms": "the atom list",
                  "smiles": "the SMILES"}


def _given_rows(value) -> Optional[int]:
    """How many token rows a `molecule_fp` value gives, without reading them: a sidecar
    reference's `atoms`, the rows of an inline list of rows (or a 2-D array); None when
    absent or not of that shape (`InputResolver.molecule_fp` says what is wrong with it)."""
    if is_reference(value):
        atoms = value.get("atoms")
        return atoms if isinstance(atoms, int) and not isinstance(atoms, bool) else None
    if isinstance(value, (list, tuple)):
        return len(value) if all(isinstance(row, (list, tuple)) for row in value) else None
    return len(value) if getattr(value, "ndim", None) == 2 else None


def _blank(value) -> bool:
    """A field that is there but holds nothing: "", blanks, or an empty list (JSON null is
    absent, as before)."""
    if isinstance(value, str):
        return not value.strip()
    return value is not None and hasattr(value, "__len__") and len(value) == 0


def _plain(value):
    """Arrays as lists for keys: numpy's repr elides long arrays ('...'), so two different
    atom lists could share a cache key or a depiction name."""
    return value.tolist() if hasattr(value, "tolist") else value


def _skeleton(mol) -> str:
    """Canonical SMILES without hydrogens, stereo or atom-map numbers: a 3D file and a SMILES
    of one molecule agree on it (stereo perceived from coordinates may be missing from the
    SMILES; a reaction tool's molfile numbers its atoms, the plain SMILES does not).
    Deuterium and tritium go too (RemoveHs keeps them by default): a CD3 group next to a
    SMILES with CH3 was "a different molecule", '[H]C([H])([H])...' against 'C...'; the
    isotopes a SMILES states are compared afterwards (`label_differences`)."""
    from rdkit import Chem

    params = Chem.RemoveHsParameters()
    params.removeIsotopes = True
    params.showWarnings = False  # a lone H+ is kept without RDKit's unattributed stderr line
    work = Chem.RemoveHs(mol, params, sanitize=False)
    for atom in work.GetAtoms():
        atom.SetAtomMapNum(0)
    return Chem.MolToSmiles(work, isomericSmiles=False)


def depiction_name(source_key: bytes, size: int = RENDER_SIZE) -> str:
    """The one file-name rule for drawn depictions: digest of what is drawn + settings + the
    renderer's rules + RDKit's version (its 2D layout and drawing change between releases: a
    `<data>.renders` folder kept across an upgrade served training the old drawings while
    eval and chat drew new ones). A structure file's or atom list's key (`source_key`) also
    takes the reader's rules (`io.READER_RULES`): a reader change reads another molecule from
    the same bytes (was: the old molecule's drawing was served beside the new tokens)."""
    import rdkit

    from .io import READER_RULES
    from .render import DRAWING_RULES

    rules = f":render_molecule:{size}:rules{DRAWING_RULES}:rdkit{rdkit.__version__}"
    if source_key.startswith((b"structure:", b"atoms:")):
        rules += f":reader{READER_RULES}"
    return hashlib.sha256(source_key + rules.encode()).hexdigest()[:32] + ".png"


def depiction_intact(path: Path) -> bool:
    """Whether a drawn depiction's file is a whole PNG. Depictions are written atomically but
    not synced (`write_depiction`, durable=False), so a crash or a full network file system
    can leave one cut short or zero-filled under its final name. Pillow's verify() reads
    every chunk and checks its checksum without decompressing (a stat-like cost per record
    at start-up; a full decode of every depiction would cost minutes on a million)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, SyntaxError, EOFError, ValueError):  # SyntaxError: a chunk with a bad checksum
        return False
    return True


def write_depiction(image: "Image.Image | bytes", path: Path, durable: bool = False,
                    tmp_folder: Optional[Path] = None, what: str = "") -> Path:
    """Write ``image`` (a PIL image, saved as PNG, or an image file's bytes) at ``path``
    atomically (a temporary file renamed into place): a killed run or a concurrent writer
    never leaves a half image under the name. ``durable`` also syncs it to disk before the
    rename (for outputs a manifest will name). The temporary file is made next to ``path``,
    or in ``tmp_folder`` (on the same file system) to keep ``path``'s folder clean.

    An OSError while writing (a full disk, a quota, a read-only folder) is an
    `OutputWriteError` naming ``path`` (``what`` says whose it is), and the partial temporary
    file is removed (was: PIL's bare OSError, and the half file left beside the drawings)."""
    name = f"{path.stem}.tmp{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}"
    tmp = (Path(tmp_folder) if tmp_folder is not None else path.parent) / name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(tmp, "wb") as handle:
                if isinstance(image, bytes):
                    handle.write(image)
                else:
                    image.save(handle, format="PNG")
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            # never a half picture left taking the space that ran out; the write's own error
            # is the one reported, not a second one from this clean-up
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise
    except OSError as e:
        raise OutputWriteError(path, e, what=what) from e
    return path


class InputResolver:
    """Resolves molecule fields into `MoleculeInput`s with one set of settings."""

    def __init__(self, fp: FingerprintSettings = DEEPMOLM, *, structure_folder: Optional[str] = None,
                 record_folder: Optional[str] = None, policy: str = "auto", render_folder: Optional[str] = None,
                 first_of_many: bool = False, kind: str = "record", option_names: Optional[Mapping] = None,
                 limits: Optional[Mapping] = None, render_size: int = RENDER_SIZE, cache: bool = True,
                 cache_limit: Optional[int] = None, cap_from: Optional[str] = None,
                 cap_given_tokens: Optional[bool] = None):
        self.fp = fp
        self.structure_folder = structure_folder
        self.record_folder = record_folder  # sidecar paths are relative to it
        self.policy = policy
        self.render_folder = render_folder
        self.first_of_many = first_of_many
        self.limits = dict(limits or {})  # builder bounds: max_atoms, embed_timeout, mmff_max_iters
        # Given tokens (inline, sidecar) are held to the heavy-atom cap by a resolver given
        # `limits` (unless `cap_given_tokens` says otherwise): every one serving a model or its
        # data is (a model's config, a dataset's manifest: `model_limits`). deepmolm-questions'
        # converter builds molecules up to its parse bound (its limits) and compares given rows
        # with them uncapped: the cap is the model's, which model_vqa applies (`eval.questions`)
        self._caps_given_tokens = limits is not None if cap_given_tokens is None else cap_given_tokens
        # Where the heavy-atom cap was set, for its refusal's words (``errors.too_large_reason``):
        # given, else the limits' own (``model_limits`` marks a model's), else None (a caller's
        # max_atoms; the words then name max_atoms / --max-atoms, deepmolm-prepare's option).
        self.cap_from = cap_from if cap_from is not None else getattr(limits, "cap_from", None)
        self.render_size = render_size
        self.cache = cache  # off for one-pass jobs over millions of molecules (they keep their own)
        # Inputs whose tokens and checks are kept: None, all (training reuses them every
        # epoch); a number for a long-lived server (the GUI), where they grew per molecule.
        self.cache_limit = cache_limit
        self.kind = kind  # "record", "question", ...: how errors name an input
        # How the caller's user sets the folders (training: --structure_folder; eval: --structure-folder).
        self.option_names = {"structure_folder": "--structure_folder", **(option_names or {})}
        self._sidecars = SidecarFiles(record_folder)
        # Depictions found damaged in the render folder and drawn again (`draw`), for the
        # caller's note: training says how many at start-up
        self.redrawn: List[Path] = []
        # Conformers are deterministic, so each input's tokens are made once (per process:
        # dataloader workers each keep their own) and its last molecules are kept for drawing.
        self._tokens: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()  # input key -> (atoms, levels) tokens
        self._molecules: "OrderedDict[tuple, MoleculeRecord]" = OrderedDict()
        self._checked: "OrderedDict[tuple, None]" = OrderedDict()  # keys whose molecule sources agree
        self._counts: "OrderedDict[tuple, str]" = OrderedDict()  # structure file version -> its record count

    # --- the one entry point -------------------------------------------------------------
    def resolve(self, fields: Mapping, rid: str, *, fingerprint: bool = True, depiction: bool = True) -> MoleculeInput:
        """The inputs of ``fields``' molecule: tokens when ``fingerprint``, the depiction's
        path when ``depiction`` (the given ``image`` as is, else drawn into ``render_folder``)."""
        out = MoleculeInput(id=rid)
        if fingerprint:
            out.molecule_fp = self.molecule_fp(fields, rid, out)
            note = self.given_image_note(fields, rid)
            if note:
                out.notes.append(note)
        else:  # a model without molecule tokens still draws one molecule and may read its graph
            self.check_one_molecule(fields, rid, None)
        if depiction:
            image = self.given_image(fields, rid)
            out.image = image if image is not None else self.draw(fields, rid, out)
        return out

    def given_image(self, fields: Mapping, rid: str) -> Optional[str]:
        """The input's own ``image`` as a path (str), or None when it has none (absent, null or
        ""; its depiction is then drawn). A picture in memory (a numpy array, a PIL image) is
        an error naming the input: an array stopped with numpy's "truth value of an array is
        ambiguous" ValueError, naming neither input nor field, and a PIL image went on as
        ``MoleculeInput.image``, a path for every caller. Whether the file exists is each
        caller's check, against its own image folder, which this resolver does not know:
        eval joins a question's relative path with --image-folder (``check_image``),
        training with --image_folder (checked at start-up), chat and the GUI check the
        path they were given (``readable_image``, ``load_image``)."""
        value = fields.get("image")
        if value is None or (isinstance(value, str) and not value):
            return None
        if not isinstance(value, (str, os.PathLike)):
            shown = f" {value!r}" if isinstance(value, (bool, int, float)) else ""  # an array's repr is pages long
            raise self.fail(rid, f"image must be a path to an image file, got {type(value).__name__}{shown}")
        return os.fspath(value)

    def given_image_note(self, fields: Mapping, rid: str) -> Optional[str]:
        """The note for an input whose picture is its own image file while its tokens come
        from a molecule field, or None: the two are not checked against each other, so a
        drawing of another molecule goes through (was: not said; a user could believe the
        SMILES decided everything). Named as the caller's user sets them (``option_names``:
        the chat CLI's --image-file, --smiles; else the fields)."""
        image = self.given_image(fields, rid)
        if image is None:
            return None
        fields = self.without_blanks(fields, rid)
        source = next((name for name in _MOLECULE_FIELDS if fields.get(name) is not None), None)
        if source is None:
            return None
        from ..usage import shortened

        label = {name: self.option_names.get(name, f"`{name}`") for name in ("image", source)}
        value = fields[source]
        shown = f" {shortened(str(value))!r}" if isinstance(value, (str, os.PathLike)) else ""
        return (f"the picture comes from the image file ({label['image']} {image}) and molecule_fp from "
                f"{_TOKEN_SOURCES[source]} ({label[source]}{shown}); they are not checked against each other: make "
                "sure the image shows that molecule")

    def fail(self, rid: str, reason: str) -> InputError:
        return InputError(rid, reason, self.kind)

    def reason(self, error: MoleculeError) -> str:
        """A molecule error's reason as this resolver's user reads it (``reworded``)."""
        return self.reworded(error).reason

    def reworded(self, error: MoleculeError) -> MoleculeError:
        """``error`` in this resolver's words: a size refusal names where this resolver's cap
        was set (the model's max_atoms, a tool's option); other errors as they are."""
        from .errors import MoleculeTooLarge

        return error.reworded(self.cap_from) if isinstance(error, MoleculeTooLarge) else error

    def without_blanks(self, fields: Mapping, rid: str) -> Mapping:
        """`fields` without the molecule fields that are there but empty or blank (a CSV cell
        that came out empty: a table with both `smiles` and `structure` columns has one of them
        empty in every row that gives only the other) when another molecule field is given;
        an InputError naming the blank field when none is. (Was: an empty `structure` alone was
        dropped without a word while "   " was a missing file; `smiles: ""` alone was "no
        molecule field". A first fix refused every blank field, also beside a usable one.)"""
        blank = [name for name in _FIELD_HOLDS if _blank(fields.get(name))]
        if not blank:
            return fields
        if any(fields.get(name) is not None and not _blank(fields.get(name)) for name in _MOLECULE_FIELDS):
            return {key: value for key, value in fields.items() if key not in blank}
        name = blank[0]
        raise self.fail(rid, f"`{name}` is empty ({_plain(fields.get(name))!r}): give {_FIELD_HOLDS[name]}, or "
                             "leave the field out")

    # --- tokens ------------------------------------------------------------------------
    def molecule_fp(self, fields: Mapping, rid: str, out: Optional[MoleculeInput] = None) -> "torch.Tensor":
        """(atoms, levels) int64 tokens, checked against the contract."""
        import torch
        fields = self.without_blanks(fields, rid)

        value, tokens = fields.get("molecule_fp"), None
        try:
            if is_reference(value):
                try:
                    rows = self._sidecars.rows(value, self.fp.levels)
                    problem = self._sidecars.settings_problem(value, self.fp.bits, self.fp.levels)
                except SidecarError as e:
                    raise self.fail(rid, str(e)) from e
                if problem:
                    raise self.fail(rid, problem)
                tokens = validate(torch.from_numpy(rows.astype("int64")), self.fp)
            elif value is not None:
                problem = stamp_problem(fields, self.fp)
                if problem:  # rows of deepmolm-fingerprint at 4096 bits passed as valid 8192-bit tokens
                    raise self.fail(rid, f"{problem}: make them with the model's settings (deepmolm-fingerprint "
                                         "--fp-bits / --fp-levels, and the question file from data made so), or "
                                         "leave molecule_fp out (the tokens are then made from the molecule)")
                tokens = validate(value, self.fp)
        except MoleculeFpError as e:
            raise self.fail(rid, str(e)) from e
        if tokens is None:
            tokens = self._computed_tokens(fields, rid, out)  # its molecule was capped by the builders
        else:
            self._check_token_rows(len(tokens), rid)
        self.check_one_molecule(fields, rid, tokens)
        return tokens

    def heavy_atom_cap(self) -> Optional[int]:
        """The heavy-atom cap the builders hold this resolver's molecules to: `limits`'
        max_atoms, else their default MAX_ATOMS; None where lifted (max_atoms None)."""
        from .policy import MAX_ATOMS

        return self.limits.get("max_atoms", MAX_ATOMS)

    def _check_token_rows(self, rows: int, rid: str) -> None:
        """Given tokens (inline rows, a sidecar reference's rows) under the heavy-atom cap,
        refused as a structure, atom list or SMILES of as many heavy atoms is (the builders'
        `policy.size_cap`, in this resolver's words): `molecule_fp` has one row per heavy
        atom (`fingerprint_record`), the count the cap counts. Was: not applied, so model_vqa
        answered questions of 300 and 5000 hand-made rows on a model with max_atoms 256, and
        training trained on such records while the config it saved said 256. A resolver made
        without `limits` caps no given tokens (``_caps_given_tokens``)."""
        if not self._caps_given_tokens:
            return
        from .policy import size_cap

        try:
            size_cap(rid, rows, self.heavy_atom_cap(), "error", [])
        except MoleculeError as e:
            raise self.fail(rid, f"{self.reason(e)}; counted as molecule_fp's rows, one per heavy atom") from e

    def _computed_tokens(self, fields: Mapping, rid: str, out: Optional[MoleculeInput]) -> "torch.Tensor":
        """Tokens of the record's structure, atom list or SMILES, made once per input."""
        key = self._key(fields, rid, self.policy) + (self.fp,)
        if out is not None or key not in self._tokens:
            record = self.molecule(fields, rid)
            if out is not None:
                out.molecule, out.notes = record, list(record.notes)
        if key in self._tokens:
            self._tokens.move_to_end(key)
            return self._tokens[key]
        tokens = self.fingerprint(record, rid)
        if self.cache:
            self._remember(self._tokens, key, tokens)
        return tokens

    def _remember(self, cache: "OrderedDict", key: tuple, value) -> None:
        """Store in an LRU cache of at most `cache_limit` entries (None: no limit)."""
        cache[key] = value
        cache.move_to_end(key)
        while self.cache_limit is not None and len(cache) > self.cache_limit:
            cache.popitem(last=False)

    def fingerprint(self, record: "MoleculeRecord", rid: str) -> "torch.Tensor":
        """(atoms, levels) tokens of a built molecule's conformer, with these settings."""
        from .fingerprint import fingerprint_record

        try:
            return fingerprint_record(record, self.fp)
        except MoleculeError as e:
            raise self.fail(rid, e.reason) from e

    def check_one_molecule(self, fields: Mapping, rid: str, tokens: Optional["torch.Tensor"]) -> None:
        """Fields giving a SMILES or tokens next to another molecule source must speak of one
        molecule: the depiction is drawn from the SMILES (else the structure), the tokens
        come from `molecule_fp` (else the structure or atom list). Checked once per input
        (every caller: training, eval, chat, the GUI, with or without molecule tokens).
        `tokens`: the (atoms, levels) tokens the input resolved to; None where none are made
        (a model without molecule tokens: only the sources that make the picture and the
        property head's graph are compared).

        `molecule_fp` has a row per heavy atom: a sidecar offset off by a record, or tokens
        pasted from another record, paired this record's depiction and text with another
        molecule's tokens. A `structure` of another molecule than the SMILES was fingerprinted
        silently next to the SMILES's depiction (in eval too: a question's ethanol picture
        went with benzene's tokens). Given tokens are also checked beyond their row count:
        their level-0 column is the molecule's atom invariants (`level0_tokens`), so tokens
        of an isomer with as many heavy atoms (2-propanol's next to 1-propanol's SMILES)
        are refused."""
        fields = self.without_blanks(fields, rid)
        if _given(fields.get("structure")) and _given(fields.get("atoms")):
            # the structure was read and the atom list ignored, whatever molecule it was
            raise self.fail(rid, "gives both `structure` and `atoms`: two sources of one molecule, of which only the "
                                 "structure would be read; give one")
        smiles = fields.get("smiles")
        given_fp = tokens is not None and fields.get("molecule_fp") is not None
        structure = _given(fields.get("structure")) or _given(fields.get("atoms"))
        if not (structure and (smiles or given_fp)) and not (smiles and given_fp):
            return  # one source: nothing to disagree with
        rows = len(tokens) if given_fp else None
        level0 = tokens[:, 0].numpy().tobytes() if given_fp else None
        reference = fields.get("molecule_fp") if given_fp and is_reference(fields.get("molecule_fp")) else {}
        made = reference.get("molecule")
        key = self._key(fields, rid, self.policy) + (rows, level0, made)
        if key in self._checked:
            return
        # Without tokens (a model that reads none) the structure is compared as read, with no
        # 3D work: built under the resolver's policy it was embedded for every question, and
        # a 2D file under `from-file` was refused for a fingerprint nobody makes.
        molecule = None
        if structure:
            molecule = self.molecule(fields, rid) if tokens is not None else self._build(fields, rid, "keep")
        if given_fp and molecule is not None and molecule.mol.GetNumHeavyAtoms() != rows:
            # without a SMILES the depiction comes from the structure: it was benzene's next to
            # ethanol's tokens, without a word
            raise self.fail(rid, f"molecule_fp has {rows} atom rows but its structure ({molecule.source}) has "
                                 f"{molecule.mol.GetNumHeavyAtoms()} heavy atoms: the tokens belong to another "
                                 "molecule or to part of it; give one molecule's structure and tokens, or leave one out")
        if smiles:
            # compared as the builders make it: charge-separated hypervalent bonds written
            # neutral (`hypervalent`), as every structure and every token row is (was: the
            # tokens and structure of C[S+](C)[O-] were refused beside that SMILES itself)
            from .hypervalent import neutral_hypervalent

            parsed = neutral_hypervalent(self._parsed(smiles, rid), rid, [])
            if isinstance(made, str):
                self._check_prepared_molecule(made, smiles, rid)
            if given_fp and parsed.GetNumHeavyAtoms() != rows:
                raise self.fail(rid, f"molecule_fp has {rows} atom rows but its SMILES {smiles!r} has "
                                     f"{parsed.GetNumHeavyAtoms()} heavy atoms: the tokens belong to another molecule "
                                     "(a sidecar offset or atom count off?) or to part of it (fingerprinted with "
                                     "--fragments largest: then leave out `smiles`)")
            if molecule is not None and _skeleton(molecule.mol) != _skeleton(parsed):
                raise self.fail(rid, f"its structure ({molecule.source}) is {_skeleton(molecule.mol)!r} but its "
                                     f"SMILES is {_skeleton(parsed)!r}: the depiction is drawn from the SMILES and the "
                                     "tokens from the structure; give the structure's SMILES, or leave `smiles` out")
            if molecule is not None:
                # the skeleton leaves stereo and isotopes out (a stereo-free SMILES may go with a
                # 3D structure); what the SMILES does state must be the structure's: (R)-alanine's
                # tokens went with (S)-alanine's picture, trans-2-butene's with cis
                from .checks import has_3d_conformer
                from .matching import label_differences, left_open

                if molecule.conformer == "generated" and _given(fields.get("structure")):
                    open_ = left_open(lambda: self._build(fields, rid, "keep").mol, parsed)
                    if open_:
                        raise self.fail(rid, f"its SMILES {smiles!r} states the configuration of {', '.join(open_)}, "
                                             f"which its structure ({molecule.source}) leaves open (no 3D coordinates, "
                                             "no wedge or E/Z): the conformer generated from it picks one that need not "
                                             "be the SMILES'; give the structure its stereo (wedges, or 3D coordinates), "
                                             "or a SMILES without stereo")
                differ = label_differences(molecule.mol, parsed)
                if differ:
                    raise self.fail(rid, f"its SMILES {smiles!r} contradicts its structure ({molecule.source}): "
                                         f"{'; '.join(differ)} (the structure's stereo from its "
                                         f"{'3D coordinates' if has_3d_conformer(molecule.mol) else 'file'}): the "
                                         "depiction is drawn from the SMILES and the tokens from the structure; give "
                                         "the structure's SMILES (or one without stereo or isotopes), or leave `smiles` out")
        if given_fp and molecule is not None:
            self._check_level0(tokens, molecule.mol, f"its structure ({molecule.source})", rid)
        elif given_fp:
            self._check_level0(tokens, parsed, f"its SMILES {smiles!r}", rid)
        if self.cache:
            self._remember(self._checked, key, None)

    def _check_prepared_molecule(self, made: str, smiles: str, rid: str) -> None:
        """A sidecar reference's `molecule` (deepmolm-prepare's canonical SMILES of the record
        it made the rows for, `sidecar.reference`) must be the record's SMILES' molecule: an
        isomer's tokens (p-xylene's next to m-xylene's SMILES, edited by hand after
        preparing) pass the row count and the level-0 check, and trained without a word."""
        from .canonical import smiles_identity

        identity = smiles_identity(smiles.strip())
        # compared also as this RDKit writes `made`: prepared under another RDKit version, whose
        # canonical SMILES may differ (stereo especially), a valid record was refused
        if identity is not None and identity != made and smiles_identity(made) != identity:
            raise self.fail(rid, f"molecule_fp points at sidecar rows deepmolm-prepare made for {made}, but its SMILES "
                                 f"{smiles!r} is another molecule ({identity}): the record was changed after it was "
                                 "prepared; prepare it again, or leave molecule_fp out (the tokens are then made from "
                                 "the SMILES)")

    def _check_level0(self, tokens: "torch.Tensor", mol, what: str, rid: str) -> None:
        """Given tokens' level-0 column against the molecule's atom invariants, as multisets
        (tokens of the same molecule made from a file with its atoms in another order are
        the same molecule's)."""
        from collections import Counter

        from .fingerprint import level0_tokens

        try:
            expected = Counter(level0_tokens(mol, self.fp, rid).tolist())
        except MoleculeError as e:
            raise self.fail(rid, e.reason) from e
        unmatched = []
        for row, token in enumerate(tokens[:, 0].tolist()):
            if expected[token] > 0:
                expected[token] -= 1
            else:
                unmatched.append(row)
        if unmatched:
            raise self.fail(rid, f"molecule_fp's level-0 tokens (one per heavy atom, from its element, neighbours, "
                                 f"hydrogens, charge, isotope and ring membership; no 3D) are not those of {what}: "
                                 f"{len(unmatched)} of {len(tokens)} rows differ (first: row {unmatched[0]}); the "
                                 "tokens belong to another molecule (an isomer, another tautomer or charge state, a "
                                 f"line off) or were made with other settings than the model's fp_bits={self.fp.bits}; "
                                 "make them from this molecule with the model's settings (deepmolm-fingerprint), or "
                                 "leave molecule_fp out")

    def _parsed(self, smiles, rid: str, max_heavy: Optional[int] = None):
        from .sanitize import parse_smiles

        if not isinstance(smiles, str):
            raise self.fail(rid, f"SMILES must be a string, got {type(smiles).__name__}")
        try:
            return parse_smiles(smiles, rid, max_heavy)[0]
        except MoleculeError as e:
            raise self.fail(rid, self.reason(e)) from e

    def check_sources(self, fields: Mapping, rid: str) -> None:
        """The checks of a record's molecule fields that need no 3D work: its given tokens'
        rows are within the heavy-atom cap, its SMILES parses, its structure file exists
        (InputError naming the record). Training runs them at
        start-up for records with their own image, whose molecule is otherwise first built
        at their step (a SMILES that did not parse stopped the run hours in)."""
        fields = self.without_blanks(fields, rid)
        rows = _given_rows(fields.get("molecule_fp"))
        if rows is not None:  # counted without reading them: a sidecar's are read at the record's step
            self._check_token_rows(rows, rid)
        if fields.get("smiles"):
            # capped as the builders cap it: a huge SMILES is refused before RDKit sanitises it
            self._parsed(fields["smiles"], rid, max_heavy=self.heavy_atom_cap())
        if _given(fields.get("structure")):
            self.structure_path(fields, rid)
            self.structure_index(fields, rid)

    def _key(self, fields: Mapping, rid: str, policy: str) -> tuple:
        """An input's identity: its name, its molecule fields, the 3D policy and, for a
        structure file, the file's identity (size, modification time, inode): a file
        rewritten at the same path (the GUI's and chat's long-lived resolver) gave back the
        molecule read before, and a depiction named for the new bytes was drawn from it."""
        stamp = None
        if _given(fields.get("structure")):
            try:
                st = os.stat(self.structure_path(fields, rid))
                stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
            except (OSError, InputError):  # reading it says what is wrong (_build)
                pass
        return (rid, policy, repr([_plain(fields.get(name)) for name in MOLECULE_KEYS if name != "molecule_fp"]),
                stamp)

    def molecule(self, fields: Mapping, rid: str) -> "MoleculeRecord":
        """The 3D molecule of ``fields`` (structure, atom list or SMILES) under the resolver's policy."""
        fields = self.without_blanks(fields, rid)
        key = self._key(fields, rid, self.policy)
        if not self.cache:
            return self._build(fields, rid, self.policy)
        if key not in self._molecules:
            self._molecules[key] = self._build(fields, rid, self.policy)
            while len(self._molecules) > 32:
                self._molecules.popitem(last=False)
        self._molecules.move_to_end(key)
        return self._molecules[key]

    def _build(self, fields: Mapping, rid: str, policy: str) -> "MoleculeRecord":
        from .builders import molecule_from_atoms, molecule_from_smiles

        try:
            if _given(fields.get("structure")):
                index = self.structure_index(fields, rid)
                return self._read_one(self.structure_path(fields, rid), rid, policy, index, fields.get("smiles"))
            if _given(fields.get("atoms")):
                if fields.get("coordinates") is None:
                    raise self.fail(rid, "has `atoms` but no `coordinates`")
                return molecule_from_atoms(fields["atoms"], fields["coordinates"], rid, smiles=fields.get("smiles"),
                                           charge=self._charge(fields), policy=policy, **self.limits)
            if fields.get("smiles"):
                # A SMILES has no coordinates: under 'from-file' it is an error, as in every
                # other reader (a generated conformer was used without a word).
                return molecule_from_smiles(fields["smiles"], id=rid, policy=policy, **self.limits)
        except MoleculeError as e:
            raise self.fail(rid, self.reason(e)) from e
        raise self.fail(rid, f"no molecule field ({', '.join(MOLECULE_FIELDS)})")

    def _read_one(self, path: Path, rid: str, policy: str, index: Optional[int] = None,
                  smiles: Optional[str] = None) -> "MoleculeRecord":
        """The file's one molecule (its first, with a note, when ``first_of_many``; record
        ``index`` of a multi-record file when given). Only that record is built: the records
        after the first are only counted, read without 3D work (policy ``keep``, ``_others``),
        and the records before ``index`` only parsed (``pick``): building every record of a
        10,000-molecule library to keep one of them held the chat and the GUI for minutes."""
        from .io import read_structures

        try:
            # the input's SMILES gives an XYZ file its bonds and charges (perception from
            # coordinates alone failed for acetate: "total charge 0")
            records = read_structures(path, policy=policy, errors="yield", smiles=smiles or None,
                                      pick=int(index or 0), **self.limits)
            try:
                found = self._picked(records, path, rid)
            finally:
                records.close()
        except InputError:
            raise
        except ValueError as e:  # a format we do not read (the suffix), or a file with no record at all
            raise self.fail(rid, getattr(e, "reason", str(e))) from e
        if found is None:
            raise self.fail(rid, f"{path} has no record {index}" if index is not None
                            else f"structure file {path} holds no molecule")
        if isinstance(found, MoleculeError):
            raise self.fail(rid, self._record_name(path, found, index or 0, picked=index is not None)
                            + self.reason(found))
        if index is not None:
            return found
        others = self._others(path)
        if others and not self.first_of_many:
            bad = next(((n, r) for n, r in enumerate(others, 1) if isinstance(r, MoleculeError)), None)
            raise self.fail(rid, f"structure file {path} holds {1 + len(others)} molecules, expected 1"
                                 + (f" (and one of them is broken: {self._record_name(path, bad[1], bad[0])}"
                                    f"{self.reason(bad[1])})" if bad else ""))
        if others:
            # was: "... using the first (ethanol)" without the count, however many were left out
            # (the words before the count are kept: scripts and tests look for them)
            found.notes.append(f"{path.name} holds more than one molecule; using the first ({found.id}) of "
                               f"{self._how_many(path)}")
        return found

    def _how_many(self, path: Path) -> str:
        """'3': the records of a structure file, counted up to COUNT_LIMIT ('more than 1000';
        parsed only: a library's records are not built to be counted). Counted once per file
        version: deepmolm-prepare names every failed record of a library so."""
        from .io import count_records

        st = os.stat(path)
        key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
        if key not in self._counts:
            n = count_records(path, COUNT_LIMIT, **self.limits)
            self._remember(self._counts, key, f"more than {COUNT_LIMIT}" if n > COUNT_LIMIT else str(n))
            while len(self._counts) > 32:  # a few files at a time, whatever cache_limit says
                self._counts.popitem(last=False)
        return self._counts[key]

    def _record_name(self, path: Path, error: MoleculeError, position: int, picked: bool = True) -> str:
        """'structure file F, record 2 of 4 (...): ', the prefix naming a broken record of a
        structure file as the user finds it: its number counting from 1 (a structure_index
        counts from 0: said too), of how many, its title when it has one, and the line it
        starts at when its reader knows; '' for the one record of a file not ``picked`` by a
        structure_index (the file names it). Was: only the reason, naming neither record nor
        line ("the counts line declares 2 atoms ...", of which of 4 records?)."""
        total = self._how_many(path)
        if total == "1" and not picked:
            return ""
        of = f" of {total}" if total != "1" else ""
        parts = ["counting from 1" + (f"; structure_index {position}" if position else "")]
        if error.id and not re.fullmatch(re.escape(path.name) + r"#\d+", error.id) and error.id != path.name:
            parts.append(f"title {error.id!r}")
        if error.line:
            parts.append(f"starts at {error.line}")
        return f"structure file {path}, record {position + 1}{of} ({'; '.join(parts)}): "

    def _picked(self, records, path: Path, rid: str):
        """The record a ``pick`` stream yields (None past the file's end). A problem of the
        whole file (MOL2 text before the first molecule) fails the input: it was counted as a
        record, and structure_index 1 gave the first molecule, silently."""
        for item in records:
            if isinstance(item, MoleculeError) and item.source == str(path):
                # the id is the file's own name where the input gave no other: named once
                named = "" if rid in (path.name, str(path)) else f"{path}: "
                raise self.fail(rid, f"{named}{item.reason}")
            return item
        return None

    def _others(self, path: Path) -> list:
        """The file's records after its first, read without 3D work: all of them where one
        molecule is expected (the error counts them), else only whether there is one."""
        from .io import read_structures

        records = read_structures(path, policy="keep", errors="yield", **self.limits)
        try:
            return list(itertools.islice(records, 1, 2 if self.first_of_many else None))
        finally:
            records.close()

    @staticmethod
    def _charge(fields: Mapping):
        """An atom list's total charge: absent or null (JSON) is not stated (0 for bond
        perception, unchecked against a SMILES); anything else is checked by
        ``molecule_from_atoms``."""
        return fields.get("charge")

    def structure_index(self, fields: Mapping, rid: str) -> Optional[int]:
        """``structure_index`` as a record number >= 0, or None. 1.5, 1.0 or True must not pick
        record 1, and -1 is not 'the last' (records are streamed). A JSON integer, or its
        ASCII digits as a string: a spreadsheet or CSV converted to JSON writes every cell as
        text (was: any Unicode digit, and "²" was a ValueError from int())."""
        value = fields.get("structure_index")
        if value is None:
            return None
        if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise self.fail(rid, f"structure_index must be an integer >= 0 (a JSON integer, or its digits as text), "
                             f"got {type(value).__name__} {value!r}")

    def structure_path(self, fields: Mapping, rid: str) -> Path:
        value = fields["structure"]
        if not isinstance(value, (str, os.PathLike)):
            raise self.fail(rid, f"structure must be a file path, got {type(value).__name__} {value!r}")
        path = Path(value)
        if not path.is_absolute():
            if self.structure_folder is None:
                raise self.fail(rid, f"structure {path} is relative but {self.option_names['structure_folder']} "
                                     "is not set")
            path = Path(self.structure_folder) / path
        if path.is_dir():
            raise self.fail(rid, f"structure {path} is a folder, not a file")
        if not path.is_file():
            raise self.fail(rid, f"structure file {path} is not a regular file (a pipe or a device)" if path.exists()
                            else f"structure file {path} does not exist")
        return path

    # --- depiction -----------------------------------------------------------------------
    def source_key(self, fields: Mapping, rid: str) -> bytes:
        """What a drawn depiction shows, as bytes (the SMILES, else the structure and policy)."""
        fields = self.without_blanks(fields, rid)
        if fields.get("smiles"):
            if not isinstance(fields["smiles"], str):
                raise self.fail(rid, f"SMILES must be a string, got {type(fields['smiles']).__name__}")
            return b"smiles:" + fields["smiles"].encode()
        if _given(fields.get("structure")):
            # the record number too: records 0 and 1 of one file shared record 0's drawing
            index = self.structure_index(fields, rid)
            record = b"" if index is None else f"#{index}:".encode()
            return b"structure:" + self.policy.encode() + b":" + record + self.structure_path(fields, rid).read_bytes()
        if _given(fields.get("atoms")):
            atoms = (_plain(fields["atoms"]), _plain(fields.get("coordinates")), self._charge(fields))
            return b"atoms:" + self.policy.encode() + b":" + repr(atoms).encode()
        raise self._undrawable(fields, rid)

    def _undrawable(self, fields: Mapping, rid: str) -> InputError:
        """The error for fields with nothing to draw (inline tokens alone, or nothing)."""
        if fields.get("molecule_fp") is not None:
            return self.fail(rid, "has no image, and its molecule_fp (tokens, inline or in a sidecar) cannot be "
                                  "drawn: add `image` or `smiles`")
        return self.fail(rid, "has no image and no molecule to draw")

    def draw(self, fields: Mapping, rid: str, out: Optional[MoleculeInput] = None) -> str:
        """Absolute path of the drawn depiction, written once under `depiction_name`, and
        again when the file there is damaged (`depiction_intact`: listed in `redrawn`, and a
        note in `out`'s notes)."""
        key = self.source_key(fields, rid)
        if self.render_folder is None:
            raise self.fail(rid, "has no image and no render folder is set")
        path = Path(self.render_folder) / depiction_name(key, self.render_size)
        # ours, named by what it draws: a damaged one was trusted by its name forever, and
        # every run failed at the record's step ("image file is truncated")
        damaged = path.is_file() and not depiction_intact(path)
        if damaged:
            self.redrawn.append(path)
            if out is not None:
                out.notes.append(f"the depiction {path} in the render folder was damaged (not a whole PNG) and was "
                                 "drawn again")
        if damaged or not path.is_file():
            image = self.depiction(fields, rid, out.molecule if out is not None else None)
            # an OutputWriteError, not this input's InputError: the render folder (a full disk)
            # is at fault, and every later input would fail the same way
            write_depiction(image, path, what=f"the depiction of {self.kind} {rid!r} in the render folder: "
                                              f"an output of this run, not a problem of the {self.kind}")
        return str(usage.real_path(path))

    def depiction(self, fields: Mapping, rid: str, molecule: Optional["MoleculeRecord"] = None) -> "Image.Image":
        """The depiction of ``fields``' molecule (``drawn_molecule`` says which molecule is drawn)."""
        from .render import render_molecule

        try:
            return render_molecule(self.drawn_molecule(fields, rid, molecule), size=self.render_size, id=rid)
        except MoleculeError as e:
            raise self.fail(rid, f"cannot render a depiction: {self.reworded(e)}") from e

    def depiction_atoms(self, fields: Mapping, rid: str, molecule: Optional["MoleculeRecord"] = None) -> "np.ndarray":
        """float [heavy_atoms, 2]: where each heavy atom (``molecule_fp``'s rows) lies in the
        drawn depiction, (x, y) as fractions of its side."""
        from .render import depiction_atom_positions

        if fields.get("smiles") and (_given(fields.get("structure")) or _given(fields.get("atoms"))):
            # drawn from the SMILES, whose atom order need not be the structure's (molecule_fp's)
            raise self.fail(rid, "atom positions are known only for a depiction drawn from the molecule's "
                                 "own atoms; this one is drawn from its SMILES, given next to a structure")
        try:
            drawn = self.drawn_molecule(fields, rid, molecule)
            return depiction_atom_positions(drawn, size=self.render_size, id=rid) / self.render_size
        except MoleculeError as e:
            raise self.fail(rid, f"cannot place the atoms in the depiction: {self.reworded(e)}") from e

    def drawn_molecule(self, fields: Mapping, rid: str, molecule: Optional["MoleculeRecord"] = None) -> "MoleculeRecord":
        """The molecule a depiction draws, the one rule for every caller (deepmolm-prepare
        too, which drew an atom list next to a SMILES from the atoms, where training records
        and eval questions with the same fields drew the SMILES): the SMILES parsed when there
        is one (the graph alone, no conformer work; its heavy atoms in the order of the
        record's; stereo and isotopes it leaves out are not drawn, and those it states are the
        structure's, ``check_one_molecule``), else ``molecule`` when given (already built),
        else the structure or atom list's."""
        from .builders import molecule_from_smiles
        fields = self.without_blanks(fields, rid)

        if fields.get("smiles"):  # parsed only (3D policy `keep`), under the same size cap
            cap = {"max_atoms": self.limits["max_atoms"]} if "max_atoms" in self.limits else {}
            return molecule_from_smiles(fields["smiles"], rid, policy="keep", **cap)
        if molecule is None:
            if not (_given(fields.get("structure")) or _given(fields.get("atoms"))):
                raise self._undrawable(fields, rid)  # checked without reading a structure file again
            molecule = self.molecule(fields, rid)
        if molecule.conformer == "generated":
            # drawn as read: the renderer takes stereo from a 3D conformer, and a generated
            # one's is ETKDG's choice for a centre the input leaves open (a 2D file of alanine
            # without wedges was drawn (S), unlike its SMILES and deepmolm-render)
            from dataclasses import replace

            from rdkit import Chem

            mol = Chem.Mol(molecule.mol)
            mol.RemoveAllConformers()
            return replace(molecule, mol=mol, conformer="none")
        return molecule
