"""The model behind the page, and one molecule turned into everything the page shows.

`ChatSession.load` loads a checkpoint with the host's `load_pretrained_model` (after
`deepmolm_plugin.register()`, `patches.model_dispatch` routes DeepMoLM checkpoints to our
loader; the device falls back to CPU without CUDA) and resolves the conversation template
as the chat CLI does (`--conv-mode auto`: from the model's config). Its molecules are made
as training made them: the checkpoint's recorded conformer policy, render size and atom cap
(`molecule.inputs.model_depiction`, the chat CLI's and eval's rule), unless given, with the
same notes on stderr; a folder that holds no model (`usage.model_folder`) is named as the
launchers name it, and a `~` in its path is expanded.

`ChatSession.molecule` takes the user's input through the one input resolver that
training, the chat CLI and eval use (`deepmolm_plugin.molecule.inputs.InputResolver`,
fingerprint settings from the model config): the depiction (drawn, or the user's image),
the conformer whose coordinates made `molecule_fp`, and the tokens. A drawn depiction is
made in memory (`InputResolver.depiction`, the function that draws training's files): a
server that wrote one 1024 px PNG per molecule into a folder filled its disk over weeks,
and nothing reads the file again once the views hold its pixels. PNG is lossless and
`load_image` normalises a PIL image and a file alike, so the pixels are the file's. Then
the model's image
inputs (`views.model_views`) and, for a fusion model, the cross-attention of exactly those
inputs (`attention`), recorded around the model's own `encode_images`.

Molecules of different browser tabs are prepared side by side (was: the page ran one load at
a time, and a 150-carbon chain's 24 s of conformer work froze every other user's load).
The RDKit work runs in worker processes (`start_workers`; the server starts
`LOAD_WORKERS`), not threads: the molecule package collects RDKit's log process-wide while
a molecule is read or embedded (`molecule.errors.rdkit_messages`), so two tabs' molecules
in one process would each get the other's RDKit notes and messages. Without workers (an
in-process session, the tests) one molecule's RDKit work runs at a time (`molecule_lock`).
The model itself runs one call at a time in every case (`lock`).
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Mapping, Optional

import numpy as np
import torch

from .. import usage
from .attention import AttentionMaps, attention_maps
from .views import ModelViews, model_views

# Molecules whose tokens and checks the server keeps (~1-2 KB each): they grew with every
# molecule for as long as it ran.
GUI_CACHE_LIMIT = 1024
# Worker processes for the molecules' RDKit work (`ChatSession.start_workers`): as many
# molecules prepared at once; more loads wait for a free one. Not one per core: the system
# shares the cores among them, so a small molecule loads in a second beside a long chain's
# minute (one worker on a 2-core machine queued benzene behind a 150-carbon chain again).
LOAD_WORKERS = 4


@dataclass
class LoadedMolecule:
    """One molecule as the page shows it and the model reads it."""

    name: str
    item: object  # the resolver's MoleculeInput: .molecule (MoleculeRecord), .molecule_fp, .notes
    views: ModelViews
    image_given: bool = False  # the user's image (True) or the drawn depiction (False)
    # float [atoms, 2]: each heavy atom's (x, y) in the drawn depiction, fractions of its side
    # (None for the user's image, where nobody knows)
    atom_xy: Optional[np.ndarray] = None
    uses_molecules: bool = True  # False: the projector ignores molecule_fp (image-only ablation)
    attention: Optional[AttentionMaps] = None
    notes: List[str] = field(default_factory=list)

    @property
    def mol(self):
        """The RDKit molecule whose conformer produced molecule_fp."""
        return self.item.molecule.mol

    @property
    def atoms(self) -> int:
        """Token rows (heavy atoms) of molecule_fp."""
        return int(self.item.molecule_fp.shape[0])

    def batch_fp(self, device) -> Optional[torch.Tensor]:
        """(1, atoms, levels) for `generate`, or None for a model that reads no molecule."""
        if not self.uses_molecules:
            return None
        return self.item.molecule_fp.unsqueeze(0).to(device)


def molecule_fields(smiles: Optional[str], structure: Optional[str], image: Optional[str]) -> Mapping:
    """The page's input as the resolver's fields: a SMILES or a structure file, or both (the
    Structure tab's SMILES: the bonds and charges of a PDB or XYZ without hydrogens, which
    the resolver refuses to guess; it checks that the two are one molecule), and an optional
    image."""
    if smiles is not None and not isinstance(smiles, str):  # through the page's API (its event takes raw values)
        raise ValueError(f"the SMILES must be text, got {smiles!r:.100}")
    smiles = smiles.strip() if smiles else ""
    if not smiles and not structure:
        alone = " (an image alone is not enough: the model reads the molecule too)" if image else ""
        raise ValueError(f"Give either a SMILES or a structure file{alone}.")
    fields = {}
    if structure:
        fields["structure"] = str(usage.real_path(structure))
    if smiles:
        fields["smiles"] = smiles
    if image:
        fields["image"] = str(usage.real_path(image))
    return fields


class ChatSession:
    """A loaded model and what the page needs to talk to it (one generation at a time)."""

    def __init__(self, model_path: str, tokenizer, model, image_processor, conv_mode: str,
                 policy: Optional[str] = None, render_size: Optional[int] = None, depiction=None):
        """policy, render_size: None for the model's own (its config's, as training recorded
        them), or another, with a note (`session_depiction`). depiction: settings already
        resolved by that rule (deepmolm-gui resolves them before the model loads); then
        policy and render_size are not taken."""
        from ..cli import projector_uses_molecules
        from ..molecule.inputs import InputResolver
        from ..molecule_fp import FingerprintSettings

        self.model_path, self.tokenizer, self.model = model_path, tokenizer, model
        self.image_processor = image_processor
        self.config = model.config
        self.conv_mode = conv_mode
        self.lock = threading.Lock()
        self.projector = model.get_model().mm_projector
        self.projector_type = getattr(self.config, "mm_projector_type", None) or type(self.projector).__name__
        self.uses_molecules = projector_uses_molecules(self.config)
        # Only a projector that records its cross-attention (fusion) has maps to show.
        self.has_attention = hasattr(self.projector, "recording_attention")
        self.image_mode = getattr(image_processor, "mode", "base")
        if depiction is not None and (policy, render_size) != (None, None):
            raise ValueError("ChatSession: give policy / render_size, or depiction, not both")
        # as training made the model's molecules, unless asked otherwise (was: policy "auto" whatever training
        # used, and the notes unsaid)
        self.depiction = depiction or session_depiction(self.config, policy, render_size)
        # the resolver's settings, for this process's resolver and each worker's own
        self.resolver_settings = dict(fp=FingerprintSettings.from_config(self.config), structure_folder=None,
                                      policy=self.depiction.policy, render_folder=None, first_of_many=True,
                                      render_size=self.depiction.render_size, limits=self.depiction.limits,
                                      kind="molecule", cache_limit=GUI_CACHE_LIMIT)
        self.resolver = InputResolver(**self.resolver_settings)
        self.molecule_lock = threading.Lock()  # this process's RDKit work, one molecule at a time (module docstring)
        self.workers: Optional[ProcessPoolExecutor] = None
        self.workers_count = 0

    def start_workers(self, count: int = LOAD_WORKERS) -> None:
        """Prepare molecules in `count` worker processes from now on (module docstring),
        started now so the first load does not wait for them."""
        # spawn: a fork of the server would copy its threads' held locks and the model's memory
        context = multiprocessing.get_context("spawn")
        self.workers = ProcessPoolExecutor(count, mp_context=context, initializer=_start_worker,
                                           initargs=(self.resolver_settings,))
        self.workers_count = count
        for started in [self.workers.submit(int) for _ in range(count)]:
            started.result()

    def close(self) -> None:
        """Stop the worker processes, if any, at once: a long chain's conformer runs for minutes,
        and the server's Ctrl-C waited for it."""
        workers, self.workers = self.workers, None
        if workers is not None:
            processes = list((workers._processes or {}).values())  # the pool has no public way to end them
            workers.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()

    @classmethod
    def load(cls, model_path: str, model_base: Optional[str] = None, device: str = "cuda",
             conv_mode: str = "auto", policy: Optional[str] = None, dtype: str = "auto",
             render_size: Optional[int] = None, depiction=None) -> "ChatSession":
        """The session of the checkpoint in `model_path`. policy, render_size, depiction: as
        `__init__` takes them (None: the checkpoint's own settings). A folder that holds no
        model to load (a stage-1 projector or LoRA folder, a deepmolm-kflm2 results folder)
        is a usage.UsageError (a ValueError) naming it, as deepmolm-gui, the chat CLI and
        model_vqa say it (`usage.model_folder`; was "no usable tokenizer" here)."""
        import deepmolm_plugin

        usage.model_folder(model_path, "model_path")
        if model_base is not None:
            usage.model_folder(model_base, "model_base")
        model_path = usage.user_path(model_path)  # the loaders take no `~`
        deepmolm_plugin.register()
        from llava.mm_utils import get_model_name_from_path
        from llava.model import builder  # its load_pretrained_model is model_dispatch's after register()

        from ..model.loading import loading_in_dtype, read_config
        from ..patches.conversation_qwen2 import check_chat_conv_mode, resolve_conv_mode

        name = get_model_name_from_path(model_path)
        # Resolved before the model loads, from config.json: `plain` cannot chat (a TypeError on turn 2),
        # also as auto's choice for a model trained in it (was checked on "auto" only, then resolved to it)
        config = read_config(model_path)
        mode = check_chat_conv_mode(resolve_conv_mode(conv_mode, config, name), config)
        if depiction is None:  # before the model loads: a bad policy or render size fails in a second
            depiction = session_depiction(config, policy, render_size)
        elif (policy, render_size) != (None, None):
            raise ValueError("ChatSession.load: give policy / render_size, or depiction, not both")
        with loading_in_dtype(dtype):  # deepmolm-gui's --dtype (the host's loader is handed none)
            tokenizer, model, image_processor, _ = builder.load_pretrained_model(model_path, model_base, name,
                                                                                 device=device)
        return cls(model_path, tokenizer, model, image_processor, mode, depiction=depiction)

    def describe(self) -> str:
        device = f"{self.model.device.type} · {str(self.model.dtype).replace('torch.', '')}"
        return (f"{Path(self.model_path).name} · projector {self.projector_type} · "
                f"{self.image_mode} image mode · {device}")

    def molecule(self, smiles: Optional[str], structure: Optional[str], image: Optional[str],
                 structure_name: Optional[str] = None, image_name: Optional[str] = None) -> LoadedMolecule:
        """The page's input -> LoadedMolecule. Bad input is a ValueError whose message is the
        one the CLIs give (the resolver's, naming the molecule and the reason).
        structure_name, image_name: the files' own names, as the user picked them (gradio's
        `orig_name`), where structure and image are gradio's copies (it alters the name it
        saves: `a;b&c<d>.sdf` became `a;b&cd.sdf`); else the paths' file names."""
        from ..encoder.image_processor import check_host_conversion, load_image
        from ..encoder.tower import check_model_views

        fields = molecule_fields(smiles, structure, image)
        # named in messages and the page: the file, else the SMILES (with a file, it only gives the bonds)
        name = usage.shortened((structure_name or Path(structure).name) if structure else fields["smiles"])
        item, drawn, atom_xy = self._prepared(fields, name)
        given = fields.get("image")
        # RGB; a file that is no image: ValueError. Drawn in memory (see the module docstring).
        depiction = load_image(given if given else drawn, name="the image")
        if given:  # refused as the CLIs and training refuse it (a transparent or 16-bit file the
            # host's loaders read as another picture): the model never saw such a file read
            check_host_conversion(given)
            # and as the chat CLI and eval refuse an image the model's processor cannot view (tiles mode: 1 x 5000
            # px), naming the file (was the processor's "image is 1x5000 px", no file named)
            try:
                check_model_views(given, self.config)
            except ValueError as e:
                raise ValueError(f"{image_name or Path(given).name}: {e}") from e
        views = model_views(depiction, self.image_processor, self.config)
        notes = list(item.notes)
        if not self.uses_molecules:  # as the chat CLI says it
            notes.append(f"this model's {self.projector_type} projector does not use molecules: the molecule only "
                         "provides the depiction (and the 3D view)")
        if "image" not in fields and "structure" in fields and "smiles" in fields:
            notes.append("the depiction is drawn from the SMILES given beside the file: no ring marks the chosen "
                         "atom on it (its atoms need not be in the file's order)")
        loaded = LoadedMolecule(name=name, item=item, views=views, notes=notes, image_given="image" in fields,
                                uses_molecules=self.uses_molecules, atom_xy=atom_xy)
        if self.has_attention:
            loaded.attention = self.attention(loaded)
        return loaded

    def _prepared(self, fields: Mapping, name: str) -> tuple:
        """`prepare(fields, name)`: in a worker process when they run, else here, one at a time."""
        if self.workers is None:
            with self.molecule_lock:
                return prepare(self.resolver, fields, name)
        workers = self.workers
        try:
            return workers.submit(_prepare_in_worker, fields, name).result()
        except BrokenProcessPool:  # a worker killed (out of memory on a huge molecule?): said, and new workers
            with self.molecule_lock:  # once for all the loads that were in the broken pool
                if self.workers is workers:
                    self.close()
                    self.start_workers(self.workers_count)
            raise ValueError(f"molecule {name!r}: the process preparing it stopped (killed, or out of memory?); "
                             "the page goes on") from None

    def attention(self, loaded: LoadedMolecule) -> AttentionMaps:
        """The projector's cross-attention for this molecule and image, from the same
        `encode_images` call `generate` makes."""
        inputs = loaded.views.generate_kwargs(self.model.device, self.model.dtype)
        with self.lock, torch.inference_mode(), self.projector.recording_attention() as calls:
            self.model.encode_images(inputs["images"], loaded.batch_fp(self.model.device),
                                     inputs.get("tile_images"), inputs.get("tile_grids"))
        return attention_maps(calls, loaded.views.tile_grid)


def session_depiction(config, policy: Optional[str] = None, render_size: Optional[int] = None):
    """The depiction settings of a session's model (`molecule.inputs.model_depiction`, the
    chat CLI's and eval's rule), its notes said on stderr, as those tools say them."""
    from ..cli import say_notes
    from ..molecule.inputs import model_depiction

    depiction = model_depiction(config, policy, render_size)
    say_notes(depiction.notes)
    return depiction


def prepare(resolver, fields: Mapping, name: str) -> tuple:
    """The RDKit work for one molecule: (the resolver's MoleculeInput, its drawn depiction or
    None where the user gave an image, each heavy atom's place on that drawing or None).
    Tokens always (the 3D view shows the conformer that made them), even when the projector
    ignores them."""
    item = resolver.resolve(fields, name, fingerprint=True, depiction=False)
    if "image" in fields:
        return item, None, None
    drawn = resolver.depiction(fields, name, item.molecule)
    if "structure" in fields and "smiles" in fields:
        # the resolver draws the SMILES (`drawn_molecule`), and places atoms only on a drawing of the
        # molecule's own atoms: the SMILES' need not be in the file's order (molecule_fp's rows)
        return item, drawn, None
    return item, drawn, resolver.depiction_atoms(fields, name, item.molecule)


_WORKER_RESOLVER = None  # a worker process's own resolver (`_start_worker`)


def _start_worker(settings: Mapping) -> None:
    """A worker process's set-up: its resolver, and Ctrl-C left to the server (it reaches
    the whole process group: each worker printed a KeyboardInterrupt traceback of its own)."""
    global _WORKER_RESOLVER
    from ..processes import die_with_parent  # the workers end with the server, even after a kill -9
    from ..molecule.inputs import InputResolver

    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)  # one molecule per process
    _WORKER_RESOLVER = InputResolver(**settings)


def _prepare_in_worker(fields: Mapping, name: str) -> tuple:
    return prepare(_WORKER_RESOLVER, fields, name)
