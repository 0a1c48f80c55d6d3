"""The page: molecule input, what the encoder sees, the 3D conformer, the chat, the attention.

Layout (gradio Blocks, every asset from the installed gradio package):

    header: DeepMoLM Chat, the model (name, projector, image mode, device)
    [ molecule: SMILES | structure file (+ image) tabs, examples, status ]  [ chat ]
    [ what the encoder sees (+ heatmap for a chosen atom) ]  [ 3D conformer ]

Every handler gets the session's state (the loaded molecule, the turns) as gradio State,
so two browser tabs hold two conversations. Bad input (a ValueError: the resolver's
message naming the molecule and the reason, or an unreadable image) is shown in the
status box and the previous molecule is cleared; the app keeps running. Anything else is
a bug and reaches gradio's error report with its traceback.
"""

from __future__ import annotations

import html
from typing import List, Optional

import gradio as gr

from .attention import ATOM_REDUCTION, COLOR_STOPS, HEATMAP_REDUCTION, heatmap_overlay, mark_atom, value_range
from .chat import Turn, stream_reply
from .session import ChatSession, LoadedMolecule
from .viewer3d import molecule_figure, oriented

TITLE = "DeepMoLM Chat"
EXAMPLES = [
    "CC(=O)Oc1ccccc1C(=O)O",  # aspirin
    "Cn1c(=O)c2c(ncn2C)n(C)c1=O",  # caffeine
    "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O",  # (S)-ibuprofen
    "OC[C@H]1OC(O)[C@H](O)[C@@H](O)[C@@H]1O",  # glucose
    "CCO",  # ethanol
]
STRUCTURE_TYPES = [".sdf", ".sd", ".mol", ".mol2", ".xyz", ".pdb"]
COLOR_BY = ["attention received", "element"]
DISPLAY_SIZE = 768  # px, longer side of the depiction panels

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
#attention-info { font-size: 0.88rem; color: var(--body-text-color-subdued); }
#attention-info .legend { display: flex; align-items: center; gap: 0.5rem; margin: 0.2rem 0 0.4rem; }
#attention-info .what { min-width: 11rem; }
#attention-info .bar { flex: 1; height: 10px; border-radius: 5px; border: 1px solid #e5e7eb; }
#attention-info .none { background: #f8fafc; border: 1px dashed #cbd5e1; border-radius: 8px; padding: 0.6rem;
  color: #334155; }
.panel-title { font-weight: 600; margin-bottom: -0.3rem; }
"""


def _legend(what: str, low: float, high: float) -> str:
    stops = ", ".join(f"{c} {100 * s:.0f}%" for s, c in COLOR_STOPS)
    return (f'<div class="legend"><span class="what">{what}</span><span>{low:.3f}</span><div class="bar" '
            f'style="background: linear-gradient(to right, {stops})"></div><span>{high:.3f}</span></div>')


def status_html(molecule: Optional[LoadedMolecule], error: Optional[str] = None) -> str:
    if error is not None:
        return f'<div class="error"><b>Cannot use this input.</b> {html.escape(error)}</div>'
    if molecule is None:
        return '<div class="idle">No molecule yet: enter a SMILES, upload a structure file, or pick an example.</div>'
    record = molecule.item.molecule
    fp = molecule.item.molecule_fp
    conformer = {"file": "from the file", "generated": "generated (ETKDGv3 + MMFF94)"}.get(record.conformer,
                                                                                           record.conformer)
    lines = [f"<b>{html.escape(molecule.name)}</b>: {molecule.atoms} heavy atoms, molecule_fp "
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
    parts = []
    if atom is not None:
        parts.append(f"<b>Atom {atom} ({symbol[atom]})</b> receives {100 * maps.received[atom]:.1f}% of all "
                     f"attention; most: atom {top} ({symbol[top]}), {100 * maps.received[top]:.1f}%.")
    parts.append(_legend("heatmap, global view", *value_range(maps.global_map)))
    if maps.tile_map is not None:
        parts.append(_legend("heatmap, tiles", *value_range(maps.tile_map)))
    parts.append(_legend("3D, attention received", *value_range(maps.received)))
    parts.append(f"<p>{HEATMAP_REDUCTION} This model has {maps.heads} heads.</p><p>{ATOM_REDUCTION}</p>")
    return "".join(parts)


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
        view = heatmap_overlay(views.view, maps.global_map[..., atom], *value_range(maps.global_map), DISPLAY_SIZE)
        mosaic = None
        if views.mosaic is not None and maps.tile_map is not None:
            mosaic = heatmap_overlay(views.mosaic, maps.tile_map[..., atom], *value_range(maps.tile_map),
                                     DISPLAY_SIZE)
    if atom is not None and molecule.atom_xy is not None:
        view = mark_atom(view, molecule.atom_xy[atom])
    return view, mosaic


def figure_for(molecule: Optional[LoadedMolecule], color_by: str, atom: Optional[int]):
    if molecule is None:
        return None
    received = molecule.attention.received if molecule.attention is not None and color_by == COLOR_BY[0] else None
    return molecule_figure(oriented(molecule.mol), received, atom, revision=molecule.name)


def atom_choices(molecule: LoadedMolecule) -> list:
    symbols = _heavy_symbols(molecule)
    received = molecule.attention.received
    return [(f"{k} · {symbols[k]}  ({100 * received[k]:.1f}%)", k) for k in range(molecule.atoms)]


def chat_messages(turns: List[Turn]) -> list:
    messages = []
    for question, reply in turns:
        messages.append({"role": "user", "content": question})
        if reply is not None:
            messages.append({"role": "assistant", "content": reply})
    return messages


def build_app(session: ChatSession) -> gr.Blocks:
    """The page for `session`'s model. Launch it with `launch_kwargs()`."""
    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        molecule_state = gr.State(None)  # LoadedMolecule or None
        turns_state = gr.State([])  # [(question, reply)]
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
                        image = gr.Image(label="Image (optional; else the structure is drawn)", type="filepath",
                                         sources=["upload"], height=160, elem_id="image-input")
                        load_structure = gr.Button("Load structure", variant="primary", elem_id="load-structure")
                status = gr.HTML(status_html(None), elem_id="molecule-status")
            with gr.Column(scale=6, min_width=420):
                chatbot = gr.Chatbot(label="Chat", height=430, elem_id="chat", buttons=["copy"],
                                     placeholder="Load a molecule, then ask about it.")
                with gr.Row():
                    question = gr.Textbox(placeholder="Ask about a molecule...", show_label=False, scale=5,
                                          max_lines=4, elem_id="question", submit_btn=False)
                    send = gr.Button("Send", variant="primary", scale=1, min_width=80, elem_id="send")
                with gr.Row():
                    temperature = gr.Slider(0.0, 1.5, value=0.2, step=0.05, label="Temperature (0: greedy)",
                                            elem_id="temperature")
                    max_new_tokens = gr.Slider(1, 1024, value=256, step=1, label="Max new tokens",
                                               elem_id="max-new-tokens")
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
                                    value=COLOR_BY[0] if session.has_attention else COLOR_BY[1],
                                    label="Colour atoms by", visible=session.has_attention, elem_id="color-by")
                viewer = gr.Plot(label="Drag to rotate, scroll to zoom; labels are molecule_fp rows",
                                 elem_id="viewer3d")

        molecule_outputs = [molecule_state, turns_state, chatbot, status, depiction, tiles, viewer, atom,
                            attention_info]

        def show(molecule: Optional[LoadedMolecule], error: Optional[str] = None):
            """Every panel for a newly loaded molecule (or for none, after bad input)."""
            chosen = None
            if molecule is not None and molecule.attention is not None:
                chosen = int(molecule.attention.received.argmax())
            view, mosaic = depiction_images(molecule, chosen, True)
            color = COLOR_BY[0] if session.has_attention else COLOR_BY[1]
            choices = atom_choices(molecule) if chosen is not None else []
            return (molecule, [], [], status_html(molecule, error), view,
                    gr.update(value=mosaic, visible=mosaic is not None), figure_for(molecule, color, chosen),
                    gr.update(choices=choices, value=chosen), attention_html(session, molecule, chosen))

        def load(smiles_text, structure_path, image_path):
            try:
                molecule = session.molecule(smiles_text, structure_path, image_path)
            except ValueError as e:  # the resolver's message (names the molecule and the reason), or a bad image
                return show(None, str(e))
            return show(molecule)

        load_smiles.click(lambda s: load(s, None, None), [smiles], molecule_outputs)
        smiles.submit(lambda s: load(s, None, None), [smiles], molecule_outputs)
        examples.load_input_event.then(lambda s: load(s, None, None), [smiles], molecule_outputs)
        load_structure.click(lambda f, i: load(None, f, i), [structure, image], molecule_outputs)

        def choose(molecule, chosen, show_overlay, colour):
            view, mosaic = depiction_images(molecule, chosen, show_overlay)
            return (view, gr.update(value=mosaic, visible=mosaic is not None), figure_for(molecule, colour, chosen),
                    attention_html(session, molecule, chosen))

        for control in (atom, overlay):
            control.input(choose, [molecule_state, atom, overlay, color_by],
                          [depiction, tiles, viewer, attention_info])
        color_by.input(lambda m, c, a: figure_for(m, c, a), [molecule_state, color_by, atom], [viewer])

        # While a reply is written, asking, clearing and loading are off: a second question would
        # be built on a history whose last reply is not there yet, and a new molecule's empty
        # chat would be overwritten by the old conversation's last words. They are switched
        # off at once in the browser and on again by `ask` when it ends, even by an error.
        busy = [send, clear, load_smiles, load_structure]
        on, same = (gr.update(interactive=True),), (gr.update(),)

        def ask(text, molecule, turns, temp, max_tokens):
            text = (text or "").strip()
            if not text or molecule is None:
                if molecule is None:
                    gr.Warning("Load a molecule first: the model answers about the molecule it sees.")
                yield (gr.update(interactive=True), turns, chat_messages(turns), *on * len(busy))
                return
            turns = list(turns) + [(text, None)]
            yield ("", turns, chat_messages(turns), *same * len(busy))
            reply = ""
            try:
                for reply in stream_reply(session, molecule, turns, float(temp), int(max_tokens)):
                    yield (gr.update(), turns, chat_messages(turns[:-1] + [(text, reply)]), *same * len(busy))
            except Exception:  # re-raised: gradio reports it; the page is usable again first
                yield (gr.update(value=text, interactive=True), turns[:-1], chat_messages(turns[:-1]), *on * len(busy))
                raise
            turns[-1] = (text, reply.strip())
            yield (gr.update(interactive=True), turns, chat_messages(turns), *on * len(busy))

        ask_inputs = [question, molecule_state, turns_state, temperature, max_new_tokens]
        ask_outputs = [question, turns_state, chatbot, *busy]
        for trigger in (send.click, question.submit):
            trigger(lambda: [gr.update(interactive=False)] * (1 + len(busy)), None, [question, *busy], queue=False) \
                .then(ask, ask_inputs, ask_outputs)
        clear.click(lambda: ([], []), None, [turns_state, chatbot])
    return app


def launch_kwargs(host: str, port: int) -> dict:
    """`Blocks.launch` options: local fonts and assets only (no share link, no SSR server)."""
    theme = gr.themes.Default(primary_hue="indigo", secondary_hue="slate", neutral_hue="slate",
                              radius_size="md", font=[gr.themes.LocalFont("Source Sans Pro"), "sans-serif"])
    return dict(server_name=host, server_port=port, share=False, ssr_mode=False, show_error=True, theme=theme,
                css=CSS, footer_links=[], quiet=False)
