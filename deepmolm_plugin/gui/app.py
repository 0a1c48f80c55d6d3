"""The page: molecule input, what the encoder sees, the 3D conformer, the chat, the attention.

Layout (gradio Blocks, every asset from the installed gradio package):

    header: DeepMoLM Chat, the model (name, projector, image mode, device)
    [ molecule: SMILES | structure file (+ image) tabs, examples, status ]  [ chat ]
    [ what the encoder sees (+ heatmap for a chosen atom) ]  [ 3D conformer ]

Every handler gets the browser tab's `Tab` (its molecule and conversation) as gradio
State, so two browser tabs hold two conversations. gradio runs a tab's events side by side
(each listener has its own queue), so the handlers (`Page`) keep a tab to one thing at a
time: no load and no clearing while a reply is written, no question while a molecule
loads, and of two loads in flight only the later one's molecule is shown. Bad input (a
ValueError: the resolver's message naming the molecule and the reason, an unreadable
image, or an upload refused by `uploaded`) is shown in the status box and the previous
molecule is cleared; the app keeps running. A value the page's own controls never send
(through its API) is refused with the app's message as a toast. Anything else is a bug and
reaches gradio's error report with its traceback.
"""

from __future__ import annotations

import html
import math
import os
import re
import threading
import weakref
from contextlib import contextmanager
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Deque, Dict, Iterator, List, NamedTuple, Optional, Sequence

import gradio as gr
from gradio.utils import get_upload_folder

from .. import usage
from ..molecule.builders import CHARGE_IN_RECORDS, SMILES_IN_RECORDS
from ..data.prompts import blank
from .attention import (ATOM_REDUCTION, COLOR_STOPS, HEATMAP_REDUCTION, ShareScale, heatmap_overlay, is_uniform,
                        level_with_top, mark_atom, received_scale, share_scale, value_range)
from .chat import MAX_NEW_TOKENS, MAX_TEMPERATURE, ChatRefusal, Turn, max_new_tokens_limit, reply_settings, stream_reply
from .session import ChatSession, LoadedMolecule
from .viewer3d import Scene, molecule_figure, molecule_scene, oriented

TITLE = "DeepMoLM Chat"
EXAMPLES = [
    "CC(=O)Oc1ccccc1C(=O)O",  # aspirin
    "Cn1c(=O)c2c(ncn2C)n(C)c1=O",  # caffeine
    "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O",  # (S)-ibuprofen
    "OC[C@H]1OC(O)[C@H](O)[C@@H](O)[C@@H]1O",  # glucose
    "CCO",  # ethanol
]
STRUCTURE_TYPES = [".sdf", ".sd", ".mol", ".mol2", ".xyz", ".pdb"]
# The image picker offers `image/*` (gradio's Image upload): of those, the files PIL reads
# (HEIC, SVG and AVIF it does not: refused by name, not by PIL's "cannot identify").
# (.jfif / .jpe: JPEG as some browsers save it, which PIL reads)
IMAGE_TYPES = [".png", ".jpg", ".jpeg", ".jfif", ".jpe", ".gif", ".bmp", ".tif", ".tiff", ".webp"]
COLOR_BY = ["attention received", "element"]
DISPLAY_SIZE = 768  # px, longer side of the depiction panels
# gradio saves every image a handler returns (views, tiles, heatmaps: a few per click) and
# every upload as a file in its cache folder, and by default never deletes them while the
# server runs: a page left up for weeks filled the disk. Every hour, files this app made
# more than a day ago go (the browser has long loaded them; uploads are read at load).
CACHE_CLEANUP = (3600, 86400)  # (every s, older than s): gradio Blocks' delete_cache

CSS = """
.gradio-container { max-width: 1480px !important; margin: auto; }
#header h1 { margin: 0; font-size: 1.7rem; letter-spacing: -0.01em; }
#header p { margin: 0.15rem 0 0; color: var(--body-text-color-subdued); }
#molecule-status .ok, #molecule-status .error, #molecule-status .idle {
  border-radius: 8px; padding: 0.6rem 0.8rem; font-size: 0.95rem; }
#molecule-status .ok { background: #ecfdf5; border: 1px solid #a7f3d0; }
#molecule-status .error { background: #fef2f2; border: 1px solid #fecaca; color: #991b1b; }
#molecule-status .idle { background: var(--block-background-fill); border: 1px dashed var(--border-color-primary);
  color: var(--body-text-color-subdued); }
#molecule-status ul { margin: 0.3rem 0 0 1.1rem; padding: 0; }
/* a long SMILES has no break opportunity: unbroken, it widened the whole page past a phone's screen */
#molecule-status { overflow-wrap: anywhere; }
#attention-info { font-size: 0.88rem; color: var(--body-text-color-subdued); }
#attention-info .legend { display: flex; align-items: center; gap: 0.5rem; margin: 0.2rem 0 0.4rem; }
#attention-info .what { min-width: 11rem; }
#attention-info .bar { flex: 1; height: 10px; border-radius: 5px; border: 1px solid #e5e7eb; }
#attention-info .none { background: #f8fafc; border: 1px dashed #cbd5e1; border-radius: 8px; padding: 0.6rem;
  color: #334155; }
.panel-title { font-weight: 600; margin-bottom: -0.3rem; }
/* messages are plain text (`as_text`): their line breaks and runs of spaces as written */
#chat .md { white-space: pre-wrap; }
"""


def _legend(what: str, scale: ShareScale) -> str:
    """A colour scale's ends in percent, written as every other text of its quantity writes
    it (`share_scale`: the 3D colour bar, the atom list); values uniform within rounding:
    one colour, said in words."""
    if scale.uniform:
        return (f'<div class="legend"><span class="what">{what}</span><span>{scale.text(scale.low)}</span>'
                f'<div class="bar" style="background: {COLOR_STOPS[0][1]}"></div>'
                '<span>uniform within rounding</span></div>')
    stops = ", ".join(f"{c} {100 * s:.0f}%" for s, c in COLOR_STOPS)
    return (f'<div class="legend"><span class="what">{what}</span><span>{scale.text(scale.low)}</span>'
            f'<div class="bar" style="background: linear-gradient(to right, {stops})"></div>'
            f'<span>{scale.text(scale.high)}</span></div>')


def status_html(molecule: Optional[LoadedMolecule], error: Optional[str] = None) -> str:
    if error is not None:
        return f'<div class="error"><b>Cannot use this input.</b> {html.escape(error)}</div>'
    if molecule is None:
        return '<div class="idle">No molecule yet: enter a SMILES, upload a structure file, or pick an example.</div>'
    record = molecule.item.molecule
    fp = molecule.item.molecule_fp
    conformer = {"file": "from the file", "generated": "generated (ETKDGv3 + MMFF94)"}.get(record.conformer,
                                                                                           record.conformer)
    atoms = f"{molecule.atoms} heavy atom{'' if molecule.atoms == 1 else 's'}"
    lines = [f"<b>{html.escape(molecule.name)}</b>: {atoms}, molecule_fp "
             f"{tuple(fp.shape)}, 3D conformer {conformer}."]
    w, h = molecule.views.image_size
    lines.append(f"Image: {'yours' if molecule.image_given else 'drawn from the molecule'}, {w}×{h} px.")
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in molecule.notes)
    return f'<div class="ok">{" ".join(lines)}{f"<ul>{notes}</ul>" if notes else ""}</div>'


def attention_html(session: ChatSession, molecule: Optional[LoadedMolecule], atom: Optional[int]) -> str:
    if not session.has_attention:
        return (f'<div class="none">This model\'s <b>{html.escape(session.projector_type)}</b> projector has no '
                "cross-attention between image tokens and atoms, so there is no map of where it looks. "
                "(Only the <b>fusion</b> projector has one.)</div>")
    if molecule is None or molecule.attention is None:
        return f"<p>{HEATMAP_REDUCTION}</p><p>{ATOM_REDUCTION}</p>"
    maps = molecule.attention
    top = int(maps.received.argmax())
    symbol = _heavy_symbols(molecule)
    received = received_scale(maps.received, maps.resolution)  # the 3D view's too
    parts = []
    if atom is not None:
        share = received.text(maps.received[atom])  # as the legend writes it
        if received.uniform:  # the largest share is rounding's pick: no "most" to name
            parts.append(f"<b>Atom {atom} ({symbol[atom]})</b> receives {share} of all attention, as every atom "
                         "does (uniform within rounding).")
        else:
            parts.append(f"<b>Atom {atom} ({symbol[atom]})</b> receives {share} of all attention; most: atom {top} "
                         f"({symbol[top]}), {received.text(maps.received[top])}{_level_with(maps, symbol)}.")
    parts.append(_legend("heatmap, global view", share_scale(maps.global_map, maps.resolution)))
    if maps.tile_map is not None:
        parts.append(_legend("heatmap, tiles", share_scale(maps.tile_map, maps.resolution)))
    parts.append(_legend("3D, attention received", received))
    parts.append(f"<p>{HEATMAP_REDUCTION} This model has {maps.heads} heads.</p><p>{ATOM_REDUCTION}</p>")
    return "".join(parts)


def _level_with(maps, symbol: List[str], named: int = 5) -> str:
    """The atoms whose share is within rounding of the most attended one's, said beside it: they
    read as it does (0.58 % for two atoms of a 200-carbon chain in bf16), and which is larger
    is rounding's pick; the first `named` of them, then how many more."""
    level = level_with_top(maps.received, maps.resolution)
    if not level:
        return ""
    atoms = ", ".join(f"{k} ({symbol[k]})" for k in level[:named])
    more = f" and {len(level) - named} more" if len(level) > named else ""
    return f", as atom{'s' if len(level) > 1 else ''} {atoms}{more} within rounding"


def _heavy_symbols(molecule: LoadedMolecule) -> List[str]:
    return [a.GetSymbol() for a in molecule.mol.GetAtoms() if a.GetAtomicNum() != 1]


def depiction_images(molecule: Optional[LoadedMolecule], atom: Optional[int], overlay: bool):
    """(global view, tiles mosaic or None), with the chosen atom's heatmap when asked and a
    ring on the chosen atom in the global view (a drawn depiction: the view is the square
    depiction resized, so the atom's fractional position carries over)."""
    if molecule is None:
        return None, None
    views, maps = molecule.views, molecule.attention
    if maps is None or atom is None or not overlay:
        size = DISPLAY_SIZE / max(views.view.size)
        view = views.view.resize((round(views.view.width * size), round(views.view.height * size)))
        mosaic = views.mosaic
    else:
        view = heatmap_overlay(views.view, maps.global_map[..., atom],
                               *value_range(maps.global_map, maps.resolution), DISPLAY_SIZE)
        mosaic = None
        if views.mosaic is not None and maps.tile_map is not None:
            mosaic = heatmap_overlay(views.mosaic, maps.tile_map[..., atom],
                                     *value_range(maps.tile_map, maps.resolution), DISPLAY_SIZE)
    if atom is not None and molecule.atom_xy is not None:
        view = mark_atom(view, molecule.atom_xy[atom])
    return view, mosaic


_SCENES: Dict[int, Scene] = {}  # id(LoadedMolecule) -> its 3D scene; an entry goes when its molecule goes


def scene_of(molecule: LoadedMolecule) -> Scene:
    """The molecule's 3D scene (mesh and label places), built for its first figure only: each
    atom pick and colour switch rebuilt it (2-4 s on a 250-atom molecule)."""
    scene = _SCENES.get(id(molecule))
    if scene is None:
        scene = _SCENES[id(molecule)] = molecule_scene(oriented(molecule.mol))
        weakref.finalize(molecule, _SCENES.pop, id(molecule), None)  # before the id can be reused
    return scene


def figure_for(molecule: Optional[LoadedMolecule], color_by: str, atom: Optional[int]):
    if molecule is None:
        return None
    maps = molecule.attention
    received = maps.received if maps is not None and color_by == COLOR_BY[0] else None
    return molecule_figure(scene_of(molecule), received, atom, revision=molecule.name,
                           resolution=maps.resolution if maps is not None else 0.0)


def first_colour(session: ChatSession) -> str:
    """ "Colour atoms by" as the page starts: by attention where the model has maps."""
    return COLOR_BY[0] if session.has_attention else COLOR_BY[1]


def atom_choices(molecule: LoadedMolecule) -> list:
    symbols = _heavy_symbols(molecule)
    maps = molecule.attention
    scale = received_scale(maps.received, maps.resolution)  # the legend's and the 3D view's
    return [(f"{k} · {symbols[k]}  ({scale.text(maps.received[k])})", k) for k in range(molecule.atoms)]


def as_text(text: str) -> str:
    """`text` for gradio's chat bubbles and toasts, which insert a message as HTML (the chat's
    Markdown is off): `&` and `<`, the characters that start markup, escaped, so the browser
    shows what was typed or generated and fetches nothing. (Was: `<img src=http://...>` in a
    question was requested from that server, `<b>` was bold, and as Markdown `[C@@H](C)`
    became a link, `*CC(C)*` italics and a backslash before `[` vanished.)"""
    return text.replace("&", "&amp;").replace("<", "&lt;")


def toast(message: str) -> str:
    """`message` for gr.Warning / gr.Error, which may quote what the user or the page's API sent
    (`<image>`, `<img src=...>`): in a page's event gradio shows it as HTML, so `as_text`; outside
    one (an in-process call) gradio makes it a Python warning or exception, plain text."""
    from gradio.context import LocalContext  # what gradio's own `log_message` asks

    served = LocalContext.blocks.get(None) is not None and LocalContext.event_id.get(None) is not None
    return as_text(message) if served else message


def warn(message: str) -> None:
    gr.Warning(toast(message))


def refusal(message: str) -> gr.Error:
    """The app's refusal of a value its controls never send (only the page's API, or a choice
    left from the molecule before): a toast, and no server traceback (gradio prints one for
    every gr.Error unless told not to)."""
    return gr.Error(toast(message), print_exception=False)


# An empty reply: its question is left out of the next prompts (`history_messages`, the chat
# CLI's rule); the bubble was empty, without a word. Our own markup (a note, not model text).
NO_REPLY = "<em>(the model answered nothing; this question is not part of the conversation)</em>"


def chat_messages(turns: List[Turn], notes: Optional[Dict[int, str]] = None) -> list:
    """The chat panel's messages for `turns`; a reply still None (being written) has no bubble.
    notes: {turn number: the note shown under that reply} (`stream_reply`'s; our own markup,
    not model text, and never part of a later prompt)."""
    messages = []
    for k, (question, reply) in enumerate(turns):
        messages.append({"role": "user", "content": as_text(question)})
        if reply is not None:
            content = as_text(reply) if reply.strip() else NO_REPLY
            if notes and k in notes:
                content += f"<br><em>({as_text(notes[k])})</em>"
            messages.append({"role": "assistant", "content": content})
    return messages


class Upload(NamedTuple):
    path: str  # gradio's temporary copy
    name: str  # the file's own name, as the user picked it


def uploaded(value, what: str, types: Sequence[str], received: Collection[str]) -> Optional[Upload]:
    """A structure or image upload (`what`: "the image", as messages name it): a path
    (in-process calls: the caller's own file), or the upload as gradio hands it over
    unprocessed (the load event has preprocess=False, a FileData dict: gr.Image's preprocess
    opened the file with PIL first, so a file that is no image was gradio's raw "Could not
    preprocess" error before `load_image` could name it). None: no upload.

    A FileData is read only when it is a file gradio's upload route saved for this app
    (`received`, the app's `upload_file_set`: the route adds every file it saves), inside
    gradio's upload folder once links and `..` are resolved, and has one of `types` (what
    the page's picker offers). The page's API takes any path: gradio 6 refuses one outside
    its upload folder over HTTP, but that folder also holds every file the app served, an
    in-process call skips the check, and the API took `.txt`/`.csv`/`.smi` "structures", read
    as SMILES with their first line quoted back. A refusal names the file by the name it was
    sent with, never by gradio's path of it (which holds the hash of its contents)."""
    if value is None or isinstance(value, str):
        return Upload(value, Path(value).name) if value else None
    path = value.get("path") if isinstance(value, dict) else None
    if not isinstance(path, str):  # only through the page's API: the browser sends its uploads as files
        raise ValueError(f"{what} is not an uploaded file: got {value!r:.100}")
    given = value.get("orig_name")
    name = usage.shortened(given if isinstance(given, str) and given else Path(path).name)
    real = os.path.realpath(path)
    folder = os.path.realpath(get_upload_folder())
    if os.path.commonpath([real, folder]) != folder or not _received(path, real, received):
        raise ValueError(f"{name!r} ({what}) is not a file uploaded to this page (or its upload was cleaned up: "
                         "gradio keeps uploads for a day): upload it again")
    if Path(path).suffix.lower() not in types:  # as `load_image` names a file: "'photo.png' (the image) is ..."
        *others, last = [t.lstrip(".").upper() for t in types]
        raise ValueError(f"{name!r} ({what}) is not a file type this page reads: give {', '.join(others)} or {last}")
    return Upload(path, name)


def _received(path: str, real: str, received: Collection[str]) -> bool:
    """Whether gradio's upload route saved `path` (its resolved form `real`): as the route
    stored it, looked up at once; only a path named otherwise (a link on the way, `..`) is
    compared resolved, over a copy of every upload the app kept (the route adds in another
    thread). That pass ran for every load, over a set that grows for the app's life."""
    return path in received or real in received or real in {os.path.realpath(p) for p in list(received)}


def own_names(message: str, uploads: List[Optional[Upload]]) -> str:
    """`message` with each upload named by its own name: gradio's temporary copy, given by its
    path (/tmp/gradio/<hash>/photo.png) or by its file name, which gradio altered when it saved
    the upload (`a;b&c<d>.sdf` saved as `a;b&cd.sdf`, `"best"` as `%22best%22`)."""
    for upload in filter(None, uploads):
        copy = Path(upload.path)
        names = [re.escape(str(usage.real_path(copy))), re.escape(upload.path)]
        if copy.name != upload.name:  # the copy's name alone, not inside a longer name (`#0`: its first record)
            names.append(rf"(?<![\w.-]){re.escape(copy.name)}(?![\w-])")
        message = re.sub("|".join(names), lambda _: upload.name, message)  # one pass: the names put in stay
    return message


# The resolver's advice speaks to the CLIs and record files; on the page the SMILES goes in the
# Structure tab's SMILES box, and the sentences for record files and the CLIs go (was: shown,
# "a record's `smiles` ...; deepmolm-fingerprint and deepmolm-render take none").
PAGE_WORDS = {"pass smiles=": "enter its SMILES beside the file", "leave `smiles` out": "leave the SMILES box empty",
              f" {SMILES_IN_RECORDS}": "", f" {CHARGE_IN_RECORDS}": ""}


def page_words(message: str) -> str:
    """The resolver's `message` in the page's words (`PAGE_WORDS`)."""
    for cli, page in PAGE_WORDS.items():
        message = message.replace(cli, page)
    return message


WAIT_FOR_REPLY = "A reply is being written: wait for it to end."
WAIT_FOR_MOLECULE = "A molecule is being loaded: ask once it shows (the question would be about the one before)."
NO_MOLECULE = "Load a molecule first: the model answers about the molecule it sees."
NO_QUESTION = "Type a question first."
# The question box is off while a reply is written, so the browser's focus fell back to the
# page: typing a follow-up went nowhere, and reaching the box took ten Tabs. Back in it then.
FOCUS_QUESTION = "() => { document.querySelector('#question textarea')?.focus(); }"
DEFAULT_NEW_TOKENS = 256
# Loads in progress at once, all tabs together (gradio's default was 1 per event: one tab's
# 150-carbon chain, 24 s of conformer work, held every other tab's load in gradio's queue).
# Their RDKit work runs in the session's worker processes (`ChatSession.start_workers`),
# the model's part one at a time (`ChatSession.lock`); loads past the workers' count wait
# for a free one, shown as running. Questions keep gradio's one at a time per event: the
# model writes one reply at a time anyway.
LOADS = 16


@dataclass
class Tab:
    """One browser tab's molecule and conversation, and what the tab is doing.

    The value of a gr.State: gradio gives every event of the tab this same object, so a
    load sees that a reply is being written and a question that a molecule is loading
    (separate State values are copies taken when each event started). Read and changed
    only under `Page.guard`.
    """

    molecule: Optional[LoadedMolecule] = None
    turns: List[Turn] = field(default_factory=list)  # [(question, reply)] about `molecule`
    notes: Dict[int, str] = field(default_factory=dict)  # {turn number: note under its reply}, emptied with `turns`
    answering: bool = False
    held: Deque[bool] = field(default_factory=deque)  # `Page.hold`'s claims, one per click, taken by `ask`
    loading: int = 0  # loads in flight
    loads: int = 0  # loads started: the number of the latest, the only one whose molecule is shown
    # The Heatmap switch and "Colour atoms by" as the page shows them (None: its first choice), kept by
    # `Page.choose` and `Page.recolour` whenever the user changes one; a load draws its panels by them
    overlay: bool = True
    colour: Optional[str] = None


PANELS = 7  # what `Page.panels` fills: chat, status, depiction, tiles, 3D view, atom choice, attention text


class Page:
    """The page's event handlers for `session`'s model; `build_app` wires them up.

    busy_controls: how many controls `ask` switches off while it writes (and on again);
    received: the files gradio's upload route saved for the page's app (its Blocks'
    `upload_file_set`), the only ones a load given gradio's uploads reads (`uploaded`).
    """

    def __init__(self, session: ChatSession, busy_controls: int = 4, received: Collection[str] = ()):
        self.session = session
        self.busy_controls = busy_controls
        self.received = received
        self.guard = threading.Lock()  # every tab's flags, molecule and turns change under it

    # --- a molecule ----------------------------------------------------------------------------
    def panels(self, molecule: Optional[LoadedMolecule], error: Optional[str] = None, overlay: bool = True,
               colour: Optional[str] = None) -> tuple:
        """Every panel for a newly loaded molecule (or for none, after bad input): chat,
        status, depiction, tiles, 3D view, atom choice, attention text. overlay, colour: the
        Heatmap switch and "Colour atoms by" as the page shows them (None: the page's first
        choice, `first_colour`); was: heatmap on and attention colours whatever they showed,
        so after a load the controls said "element" over an attention-coloured view."""
        chosen = None
        if molecule is not None and molecule.attention is not None:
            maps = molecule.attention
            # the most attended atom; uniform shares have none (their largest is rounding's pick)
            chosen = 0 if is_uniform(*value_range(maps.received, maps.resolution)) else int(maps.received.argmax())
        view, mosaic = depiction_images(molecule, chosen, overlay)
        choices = atom_choices(molecule) if chosen is not None else []
        return ([], status_html(molecule, error), view, gr.update(value=mosaic, visible=mosaic is not None),
                figure_for(molecule, colour or first_colour(self.session), chosen),
                gr.update(choices=choices, value=chosen), attention_html(self.session, molecule, chosen))

    def load(self, tab: Tab, smiles: Optional[str], structure, image) -> tuple:
        """Load a molecule into the tab: its panels, drawn as the tab's Heatmap switch and
        "Colour atoms by" are when it ends (`Tab.overlay`, `Tab.colour`: also a change made
        while it ran), or the input's error with none shown. smiles: the SMILES (with a
        structure file: its bonds, `molecule_fields`); structure, image: None, a path, or
        gradio's unprocessed upload (`uploaded`)."""
        unchanged = (gr.skip(),) * PANELS
        with self._loading(tab) as ticket:
            if ticket is None:  # the conversation's next reply would land on the new molecule's chat
                warn(WAIT_FOR_REPLY)
                return unchanged
            uploads: List[Optional[Upload]] = []
            try:
                uploads = [uploaded(structure, "the structure file", STRUCTURE_TYPES, self.received),
                           uploaded(image, "the image", IMAGE_TYPES, self.received)]
                file, picture = uploads
                # (structure, image, their own names)
                molecule = self.session.molecule(smiles, file and file.path, picture and picture.path,
                                                 file and file.name, picture and picture.name)
                error = None
                # the resolver's notes name the file as gradio saved it ("a;b&cd.sdf holds more than one molecule")
                molecule.notes = [own_names(note, uploads) for note in molecule.notes]
            except (ValueError, OSError) as e:  # the resolver's message (names the molecule and the reason), a bad
                # image, an upload refused, or an image file gone (gradio's temporary copy cleaned up): shown, not a
                # server traceback
                molecule, error = None, page_words(own_names(str(e), uploads))
            with self.guard:
                if ticket != tab.loads:  # a later load is under way: its molecule is the one asked for
                    return unchanged
                tab.molecule, tab.turns, tab.notes = molecule, [], {}
                overlay, colour = tab.overlay, tab.colour
        return self.panels(molecule, error, overlay, colour)

    @contextmanager
    def _loading(self, tab: Tab) -> Iterator[Optional[int]]:
        """The load's number (None: refused, a reply is being written); counted as in flight
        until the block ends, so no question starts on the molecule it is replacing."""
        with self.guard:
            if tab.answering:
                ticket = None
            else:
                tab.loads += 1
                tab.loading += 1
                ticket = tab.loads
        try:
            yield ticket
        finally:
            if ticket is not None:
                with self.guard:
                    tab.loading -= 1

    # --- the attention view ----------------------------------------------------------------------
    def _atom(self, molecule: Optional[LoadedMolecule], atom: Optional[int]) -> Optional[int]:
        """The chosen atom, checked against the tab's molecule: a choice made on the molecule
        before (the list is replaced a moment after the molecule) would index another atom."""
        if atom is None or molecule is None:
            return None
        if (isinstance(atom, bool) or not isinstance(atom, (int, float))
                or (isinstance(atom, float) and not (math.isfinite(atom) and atom.is_integer()))):
            # through the page's API: True was atom 1, 1.7 atom 1, "1", "x", NaN and inf tracebacks
            raise refusal(f"atom {atom!r} is not an atom number: choose one from the list")
        if not 0 <= int(atom) < molecule.atoms:
            raise refusal(f"atom {atom} is not in {molecule.name!r}, which has {molecule.atoms} heavy "
                          f"atoms (0-{molecule.atoms - 1}): choose again")
        return int(atom)

    def _colour(self, colour) -> str:
        """The "Colour atoms by" choice, checked against what this model's page offers (the
        event takes the raw value: gradio's own check was its raw error and a traceback)."""
        offered = COLOR_BY if self.session.has_attention else COLOR_BY[1:]
        if colour not in offered:
            raise refusal(f"colour atoms by {colour!r}: choose {' or '.join(repr(c) for c in offered)}")
        return colour

    def _keep_settings(self, tab: Tab, colour: str, overlay: Optional[bool] = None) -> None:
        """The controls' values, as the user just set them, for the tab's next load (`load`)."""
        with self.guard:
            tab.colour = colour
            if overlay is not None:
                tab.overlay = overlay

    def choose(self, tab: Tab, atom: Optional[int], overlay: bool, colour: str) -> tuple:
        molecule, colour = tab.molecule, self._colour(colour)
        if not isinstance(overlay, bool):  # through the page's API ("false" is a true value)
            raise refusal(f"the Heatmap switch must be true or false, got {overlay!r:.100}")
        self._keep_settings(tab, colour, overlay)  # also when the atom is one left from the molecule before
        atom = self._atom(molecule, atom)
        view, mosaic = depiction_images(molecule, atom, overlay)
        return (view, gr.update(value=mosaic, visible=mosaic is not None), figure_for(molecule, colour, atom),
                attention_html(self.session, molecule, atom))

    def recolour(self, tab: Tab, colour: str, atom: Optional[int]):
        molecule, colour = tab.molecule, self._colour(colour)
        self._keep_settings(tab, colour)
        atom = self._atom(molecule, atom)
        return figure_for(molecule, colour, atom)

    # --- the chat ------------------------------------------------------------------------------
    def _switches(self, on: bool) -> tuple:
        return (gr.update(interactive=True) if on else gr.update(),) * self.busy_controls

    def _refusal(self, tab: Tab, text: str) -> Optional[str]:
        """Why the tab, claimed for this question, cannot take it now (None: it can)."""
        if tab.loading:
            return WAIT_FOR_MOLECULE
        if tab.molecule is None:
            return NO_MOLECULE
        if not isinstance(text, str):  # the page's API sends its raw value (the event has preprocess=False)
            return f"The question must be text, got {text!r:.100}."
        # white space and invisible characters alone (U+200B, U+FEFF...) are no question either: `blank`,
        # the chat CLI's emptiness rule too (was: `if text`, and a question of U+200B was answered)
        return NO_QUESTION if blank(text) else None

    def hold(self, tab: Tab) -> list:
        """A question's first step, in the browser's round trip (queue=False): switches the
        question box, asking, clearing and loading off, and claims the tab for the question
        unless a reply is under way. A second click before the switches arrive (Enter and
        Send, a double click) claims nothing, and its `ask` leaves the page alone: it blanked
        the chat and switched the controls on under the first reply, or, queued behind it,
        asked the same question again."""
        with self.guard:
            tab.held.append(not tab.answering)
            tab.answering = True
        return [gr.update(interactive=False)] * (1 + self.busy_controls)

    def ask(self, tab: Tab, text: Optional[str], temperature: float, max_tokens: int):
        """Stream the reply to `text` about the tab's molecule: yields (question box, chat,
        *switches). The question box and the switches come back on when it ends. Takes the
        claim of its `hold` (the clicks' asks run in the order of their holds; one without
        a hold, called directly, claims the tab itself)."""
        if text is None or isinstance(text, str):  # anything else (the page's API) is refused by `_refusal`
            text = (text or "").strip()
        with self.guard:
            claimed = tab.held.popleft() if tab.held else not tab.answering
            refusal = self._refusal(tab, text) if claimed else WAIT_FOR_REPLY
            if claimed:  # an unclaimed ask leaves the flag to the reply that holds it (it locked the tab for good)
                tab.answering = refusal is None
            molecule, history, notes = tab.molecule, list(tab.turns), dict(tab.notes)
        if not claimed:  # another question's reply is being written: its chat and switches are left alone
            warn(refusal)
            yield (gr.update(),) * (2 + self.busy_controls)
            return
        if refusal is not None:
            warn(refusal)
            yield (gr.update(interactive=True), chat_messages(history, notes), *self._switches(True))
            return
        try:
            yield ("", chat_messages(history + [(text, None)], notes), *self._switches(False))
            reply, said = "", []  # said: the reply's note (it stopped at the model's context), when it has one
            try:
                # (notes go in by position: wrappers of stream_reply pass its settings on as *args)
                for reply in stream_reply(self.session, molecule, history + [(text, None)],
                                          *reply_settings(temperature, max_tokens), said):
                    # nothing yet is no reply yet (NO_REPLY is for a reply that ended empty)
                    shown = reply if reply.strip() else None
                    yield (gr.update(), chat_messages(history + [(text, shown)], notes), *self._switches(False))
            except ChatRefusal as error:  # the reason as a toast; the page as it was, the question in its box
                # (gr.Error marked every output of the event with an "Error" badge that hid the chat
                # and the question, and printed a server traceback)
                self._answered(tab)
                warn(str(error))
                yield (gr.update(value=text, interactive=True), chat_messages(history, notes), *self._switches(True))
                return
            except Exception:  # re-raised: gradio reports it; the page is usable again first
                self._answered(tab)
                yield (gr.update(value=text, interactive=True), chat_messages(history, notes), *self._switches(True))
                raise
            if said:  # shown under the reply (was: a reply the context cut looked whole)
                notes[len(history)] = said[0]
            self._answered(tab, history + [(text, reply.strip())], notes)
            yield (gr.update(interactive=True), chat_messages(tab.turns, tab.notes), *self._switches(True))
        finally:  # also when the page stops listening (GeneratorExit)
            self._answered(tab)

    def _answered(self, tab: Tab, turns: Optional[List[Turn]] = None, notes: Optional[Dict[int, str]] = None) -> None:
        """The reply has ended: the tab may load and clear again; `turns`, when given, is
        the conversation with it, and `notes` the notes under its replies."""
        with self.guard:
            if turns is not None:
                tab.turns, tab.notes = turns, dict(notes or {})
            tab.answering = False

    def tokens(self, value):
        """The Max-new-tokens box after the user typed in it (the slider's `release`, raw value):
        the number of tokens a reply will get, a whole number in [1, the slider's end], with a
        toast when it differs from the typed one. The browser kept showing 0, 5000 or 2.5
        while the slider sent 1, 1024 or 2.5 (refused). Not a number: left to `ask` to name."""
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return gr.skip()
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return gr.skip()
        limit = max_new_tokens_limit(self.session)
        used = int(min(max(math.floor(value + 0.5), 1), limit))
        if used != value:
            why = (f"this model's context is {limit}" if limit < MAX_NEW_TOKENS and value > limit
                   else f"it is a whole number from 1 to {limit}")
            warn(f"Max new tokens: {value:g} set to {used} ({why}).")
        return used

    def clear(self, tab: Tab):
        """The chat emptied ("Clear chat", or the chat panel's own trash icon, which empties
        the display in the browser first): the conversation goes too, unless a reply is
        being written (then the reply's next update shows the chat again)."""
        with self.guard:
            if tab.answering:  # the reply still being written would bring the conversation back
                warn(WAIT_FOR_REPLY)
                return gr.skip()
            tab.turns, tab.notes = [], {}
        return []


def build_app(session: ChatSession) -> gr.Blocks:
    """The page for `session`'s model. Launch it with `launch_kwargs()`."""
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=CACHE_CLEANUP) as app:
        tab = gr.State(Tab())  # this browser tab's molecule and conversation (gradio copies it per tab)
        gr.HTML(f"<h1>{TITLE}</h1><p>{html.escape(session.describe())}</p>", elem_id="header")
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=360):
                with gr.Tabs():
                    with gr.Tab("SMILES", id="smiles-tab"):
                        smiles = gr.Textbox(label="SMILES", placeholder="e.g. CC(=O)Oc1ccccc1C(=O)O", max_lines=1,
                                            elem_id="smiles-input")
                        load_smiles = gr.Button("Load molecule", variant="primary", elem_id="load-smiles")
                        examples = gr.Examples(EXAMPLES, inputs=[smiles], label="Examples (one click loads)")
                    with gr.Tab("Structure file", id="structure-tab"):
                        structure = gr.File(label="Structure: SDF/MOL, MOL2, XYZ or PDB (first molecule)",
                                            file_types=STRUCTURE_TYPES, type="filepath", elem_id="structure-input")
                        # The resolver's `smiles` beside a `structure`: bonds and charges for a PDB or XYZ
                        # without hydrogens (refused without it), checked to be the file's molecule
                        structure_smiles = gr.Textbox(label="Its SMILES (optional)", max_lines=1,
                                                      placeholder="bonds for a PDB or XYZ without hydrogens",
                                                      elem_id="structure-smiles")
                        # Handed over unopened (the load event's preprocess=False, `uploaded`): the file as
                        # uploaded, read by `load_image` as the CLIs read it. gradio's preprocess re-saved
                        # modes other than image_mode after dropping the alpha (a drawing on a transparent
                        # background turned black) and turning by EXIF, and opened every upload with PIL.
                        image = gr.Image(label="Image (optional; else the structure is drawn)", type="filepath",
                                         image_mode=None, sources=["upload"], height=160, elem_id="image-input")
                        load_structure = gr.Button("Load structure", variant="primary", elem_id="load-structure")
                status = gr.HTML(status_html(None), elem_id="molecule-status")
            with gr.Column(scale=6, min_width=420):
                # gradio 6 always shows a trash icon on a non-empty Chatbot (no option hides it):
                # its `clear` event is wired to `Page.clear` below, as "Clear chat" is
                # Messages as plain text (`chat_messages`, `as_text`): no Markdown, no LaTeX. No
                # copy buttons: gradio's copy the stored, escaped text ("pKa &lt; 5"); text
                # selected in the page copies as shown.
                chatbot = gr.Chatbot(label="Chat", height=430, elem_id="chat", buttons=[],
                                     placeholder="Load a molecule, then ask about it.", render_markdown=False,
                                     latex_delimiters=[], sanitize_html=True)
                with gr.Row():
                    question = gr.Textbox(placeholder="Ask about a molecule...", show_label=False, scale=5,
                                          max_lines=4, elem_id="question", submit_btn=False)
                    send = gr.Button("Send", variant="primary", scale=1, min_width=80, elem_id="send")
                with gr.Row():
                    temperature = gr.Slider(0.0, MAX_TEMPERATURE, value=0.2, step=0.05, label="Temperature (0: greedy)",
                                            elem_id="temperature")
                    tokens_limit = max_new_tokens_limit(session)
                    max_new_tokens = gr.Slider(1, tokens_limit, value=min(DEFAULT_NEW_TOKENS, tokens_limit), step=1,
                                               label="Max new tokens", elem_id="max-new-tokens")
                    clear = gr.Button("Clear chat", size="md", elem_id="clear", scale=0, min_width=110)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=380):
                gr.HTML('<div class="panel-title">What the encoder sees</div>')
                with gr.Row():
                    atom = gr.Dropdown(label="Attention to atom", choices=[], value=None, interactive=True,
                                       visible=session.has_attention, elem_id="atom-choice", scale=3)
                    overlay = gr.Checkbox(label="Heatmap", value=True, visible=session.has_attention,
                                          elem_id="overlay", scale=1, min_width=90)
                depiction = gr.Image(label=f"Global view ({session.image_mode} mode)", type="pil", format="png",
                                     interactive=False, height=DISPLAY_SIZE // 2 + 40, elem_id="depiction",
                                     buttons=["download", "fullscreen"])
                tiles = gr.Image(label="Tiles, in their grid", type="pil", format="png", interactive=False,
                                 visible=False, height=DISPLAY_SIZE // 2 + 40, elem_id="tiles")
                attention_info = gr.HTML(attention_html(session, None, None), elem_id="attention-info")
            with gr.Column(scale=1, min_width=380):
                gr.HTML('<div class="panel-title">3D conformer (the coordinates behind molecule_fp)</div>')
                color_by = gr.Radio(COLOR_BY if session.has_attention else COLOR_BY[1:],
                                    value=first_colour(session),
                                    label="Colour atoms by", visible=session.has_attention, elem_id="color-by")
                viewer = gr.Plot(label="Drag to rotate, scroll to zoom; labels are molecule_fp rows",
                                 elem_id="viewer3d")

        # The browser switches asking, clearing and loading off at once (a click would otherwise
        # reach the server); `ask` switches them on again when it ends, even by an error.
        busy = [send, clear, load_smiles, load_structure]
        page = Page(session, len(busy), received=app.upload_file_set)
        panels = [chatbot, status, depiction, tiles, viewer, atom, attention_info]
        # Loads of different tabs run side by side, in one group for the four ways to load (`LOADS`)
        loads = dict(concurrency_id="load", concurrency_limit=LOADS)
        load_smiles.click(lambda t, s: page.load(t, s, None, None), [tab, smiles], panels, **loads)
        smiles.submit(lambda t, s: page.load(t, s, None, None), [tab, smiles], panels, **loads)
        examples.load_input_event.then(lambda t, s: page.load(t, s, None, None), [tab, smiles], panels, **loads)
        # the uploads unopened (`uploaded`); the SMILES last and optional (None: the page's API lists the
        # parameter as optional), so an API call giving the two files alone still fits
        load_structure.click(lambda t, f, i, smiles=None: page.load(t, smiles, f, i),
                             [tab, structure, image, structure_smiles], panels, preprocess=False, **loads)

        # preprocess=False: an atom left from the molecule before (the list is replaced a moment
        # after a load), or a value of the page's API, reaches the app's own checks (`Page._atom`,
        # `Page._colour`): gradio's choice check was its raw "Value: 12 is not in the list of
        # choices: [0, 1, 2]" error and a server traceback
        # (they also keep the controls' values in the tab: a load draws its panels by them, `Page.load`)
        for control in (atom, overlay):
            control.input(page.choose, [tab, atom, overlay, color_by], [depiction, tiles, viewer, attention_info],
                          preprocess=False)
        color_by.input(page.recolour, [tab, color_by, atom], [viewer], preprocess=False)

        for trigger in (send.click, question.submit):
            # preprocess=False: the page's API's raw values reach `ask`'s own checks (`reply_settings`:
            # text or None as a setting was gradio's "Could not preprocess" error and a server traceback)
            trigger(page.hold, [tab], [question, *busy], queue=False) \
                .then(page.ask, [tab, question, temperature, max_new_tokens], [question, chatbot, *busy],
                      preprocess=False) \
                .then(None, js=FOCUS_QUESTION)
        clear.click(page.clear, [tab], [chatbot])
        chatbot.clear(page.clear, [tab], [chatbot])  # the trash icon: empties the conversation too
        # the typed value, unchecked (the slider's own check is an "Error" badge), put right in the box
        max_new_tokens.release(page.tokens, [max_new_tokens], [max_new_tokens], preprocess=False)
    return app


def launch_kwargs(host: str, port: int) -> dict:
    """`Blocks.launch` options: local fonts and assets only (no share link, no SSR server)."""
    theme = gr.themes.Default(primary_hue="indigo", secondary_hue="slate", neutral_hue="slate",
                              radius_size="md", font=[gr.themes.LocalFont("Source Sans Pro"), "sans-serif"])
    return dict(server_name=host, server_port=port, share=False, ssr_mode=False, show_error=True, theme=theme,
                css=CSS, footer_links=[], quiet=False)
