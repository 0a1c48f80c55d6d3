"""The 3D panel: the conformer whose coordinates produced `molecule_fp`, as ball and stick.

Drawn with plotly (the figure is built here; gradio's `gr.Plot` renders it with the
plotly.js that ships inside gradio's own front end, so nothing is fetched at run time):
atoms are shaded spheres and bonds half-coloured cylinders (one `Mesh3d`), heavy atoms
carry their index, which is their row in `molecule_fp` (the fingerprint runs on the
molecule without hydrogens, keeping the heavy atoms' order). Rotate by dragging, zoom
with the wheel; hovering an atom shows its index, element and, with attention, its share.

Colours: by element (Jmol's palette), or by the attention each heavy atom receives on
the same colour scale as the heatmaps (one colour where the shares differ by no more than
rounding); hydrogens have no tokens and stay grey then. Shares are written in percent, as
in the page's legend and atom list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import numpy as np
import plotly.graph_objects as go
from rdkit import Chem

from ..molecule.bonds import bonds
from .attention import COLOR_STOPS, ShareScale, colorize, received_scale, scaled, value_range

# Jmol's element colours for what molecules usually hold; anything else is pink.
ELEMENT_COLORS = {
    "H": "#ffffff", "C": "#909090", "N": "#3050f8", "O": "#ff0d0d", "F": "#90e050", "P": "#ff8000",
    "S": "#ffff30", "Cl": "#1ff01f", "Br": "#a62929", "I": "#940094", "B": "#ffb5b5", "Si": "#f0c8a0",
    "Na": "#ab5cf2", "K": "#8f40d4", "Mg": "#8aff00", "Ca": "#3dff00", "Fe": "#e06633", "Zn": "#7d80b0",
    "Cu": "#c88033", "Pt": "#d0d0e0", "Se": "#ffa100", "Li": "#cc80ff",
}
OTHER_ELEMENT = "#ff1493"
NO_TOKEN = "#d9d9d9"  # hydrogens (and truncated atoms) when colouring by attention
SELECTED = "#2563eb"
BOND_RADIUS = 0.11  # angstrom
FIGURE_HEIGHT = 460  # px
# The colour bar lies flat in a strip of its own under the scene (it stood over the atoms at
# the right edge): 12 px bar, a line of ticks and a line of title (~18 px each), padding.
COLORBAR_STRIP = 72  # px
COLORBAR_THICKNESS = 12  # px
# The camera is fitted so the whole molecule shows on the narrowest panel the page has: a
# 390 px phone leaves the plot about 320 px (gradio's paddings), at the scene's height.
NARROWEST_SCENE = 320  # px wide
FOV_TAN = np.tan(np.pi / 8)  # plotly.js draws 3D scenes in perspective, vertical field of view pi/4
FIT_MARGIN = 1.08  # the labels' text and the spheres' shading reach past their anchors
MIN_VIEW = 8.0  # angstrom across, at least: ethanol is drawn at a ring's scale, not panel-filling
# Index labels: drug-size molecules (~40 heavy atoms) get a smaller font, and no two labels'
# centres come closer on screen than 1.2 font sizes (a two-digit label is ~1.1 em wide).
LABEL_FONT, CROWDED_LABEL_FONT, CROWDED = 15, 12, 20  # px, px, heavy atoms
LABEL_GAP = 1.2  # font sizes
LABEL_OUT, LABEL_UP = 0.07, 0.10  # angstrom past the atom's drawn radius: outward, towards the camera
LABEL_CLEAR = 0.08  # angstrom: a label stands this far in front of what is drawn behind it on screen
DIGIT_WIDTH = 0.6  # font sizes: a digit's width (with its share of the spacing), what a label covers


def heavy_atom_rows(mol: Chem.Mol) -> List[Optional[int]]:
    """Per atom of `mol`, its row in molecule_fp (heavy atoms in order), None for hydrogens.
    Deuterium and tritium are hydrogens here, as in the fingerprint."""
    rows, k = [], 0
    for atom in mol.GetAtoms():
        if atom.GetAtomicNum() == 1:
            rows.append(None)
        else:
            rows.append(k)
            k += 1
    return rows


def _hex_rgb(color: str) -> Tuple[int, int, int]:
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))


def _unit_sphere(rings: int = 10) -> Tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) and triangles (F, 3) of a UV sphere of radius 1."""
    segments = 2 * rings
    theta = np.linspace(0, np.pi, rings + 1)  # pole to pole
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")  # (rings+1, segments)
    vertices = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=-1).reshape(-1, 3)
    faces = []
    for i in range(rings):
        for j in range(segments):
            a, b = i * segments + j, i * segments + (j + 1) % segments
            c, d = a + segments, b + segments
            faces += [(a, b, c), (b, d, c)]
    return vertices, np.array(faces)


def _cylinder(start: np.ndarray, end: np.ndarray, radius: float, sides: int = 12) -> Tuple[np.ndarray, np.ndarray]:
    """Open cylinder from start to end: vertices (2*sides, 3), triangles (2*sides, 3)."""
    axis = end - start
    axis = axis / np.linalg.norm(axis)
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u)
    w = np.cross(axis, u)
    angles = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    ring = radius * (np.outer(np.cos(angles), u) + np.outer(np.sin(angles), w))  # (sides, 3)
    vertices = np.concatenate([start + ring, end + ring])
    faces = []
    for j in range(sides):
        k = (j + 1) % sides
        faces += [(j, k, sides + j), (k, sides + k, sides + j)]
    return vertices, np.array(faces)


def atom_colors(mol: Chem.Mol, received: Optional[np.ndarray], resolution: float = 0.0) -> List[str]:
    """Per atom: its element colour, or (with `received`, one share per token row) its place
    on the attention scale (smallest to largest share; one colour for shares uniform within
    `resolution`, as `value_range` takes it)."""
    rows = heavy_atom_rows(mol)
    if received is None:
        return [ELEMENT_COLORS.get(a.GetSymbol(), OTHER_ELEMENT) for a in mol.GetAtoms()]
    level = scaled(received, *value_range(received, resolution))  # (A,) in [0, 1]
    colors = []
    for row in rows:
        if row is None or row >= len(received):  # no token: hydrogen, or cut by a max-atoms truncation
            colors.append(NO_TOKEN)
        else:
            r, g, b = colorize(np.array(level[row]))
            colors.append(f"#{r:02x}{g:02x}{b:02x}")
    return colors


def colorbar_ticks(scale: ShareScale) -> dict:
    """The attention colour bar's ticks (`ShareScale.ticks`), written as the page's legend and
    atom list write the same shares (`received_scale`). A fixed ".3f" repeated one label down
    a bar only 0.001 wide. Uniform shares: one tick, "(uniform)"."""
    values = scale.ticks()
    if len(values) == 1:
        return dict(tickvals=values, ticktext=[f"{scale.text(values[0])} (uniform)"], tickmode="array")
    return dict(tickvals=values, ticktext=[scale.text(v) for v in values], tickmode="array")


def spread_labels(xy: np.ndarray, gap: float, rounds: int = 300) -> np.ndarray:
    """Label anchors (n, 2) moved apart in the screen plane until no two are closer than
    `gap`: each close pair is pushed apart along its line by half the shortfall each,
    a little more (5 %) so chains of pushes settle. Coincident anchors part along x.
    Close pairs come from a k-d tree (all n^2 pairs each round took 1.2 s for 250 atoms)."""
    from scipy.spatial import cKDTree

    xy = np.array(xy, dtype=float)
    for _ in range(rounds):
        pairs = cKDTree(xy).query_pairs(gap, output_type="ndarray")  # (p, 2), i < j
        i, j = pairs[:, 0], pairs[:, 1]
        delta = xy[i] - xy[j]  # (p, 2): from j to i
        dist = np.linalg.norm(delta, axis=1)
        close = dist < gap
        if not close.any():
            break
        i, j, delta, dist = i[close], j[close], delta[close], dist[close]
        away = np.where(dist[:, None] > 1e-6, delta / np.maximum(dist, 1e-6)[:, None], [-1.0, 0.0])  # (p, 2)
        push = 0.525 * (gap - dist)[:, None] * away
        move = np.zeros_like(xy)
        np.add.at(move, i, push)
        np.add.at(move, j, -push)
        xy += move
    return xy


def _camera_distance(points: np.ndarray, centre: np.ndarray, side: float, wide: float) -> float:
    """How far the camera (on +z, looking down) must stand, in plotly's scene units (the cube
    of `side` angstrom around `centre` spans 1), for `points` (n, 3) to show on a scene
    `wide` times as wide as it is tall: each point's depth must leave its x and y inside the
    view's half-width tan(fov/2) * depth * wide and half-height tan(fov/2) * depth."""
    w = (points - centre) / side
    need = w[:, 2] + FIT_MARGIN * np.maximum(np.abs(w[:, 0]) / (FOV_TAN * wide), np.abs(w[:, 1]) / FOV_TAN)
    return float(max(need.max(), MIN_VIEW / (2 * FOV_TAN * wide * side)))


def labels_in_front(label_at: np.ndarray, vertices: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """Each label's depth (z) at the default camera (on +z): raised to `LABEL_CLEAR` in front of
    every mesh vertex within `reach` (per label, angstrom: half its text's diagonal on the
    narrowest panel) of it in the screen plane, so no sphere or bond nearer the camera hides
    it (plotly draws a 3D text behind what is in front of it). Was: a fixed step towards the
    camera, and the CH2 of ethanol had its label hidden by one of its own hydrogens. The
    mesh's faces lie within its vertices' heights (convex spheres, straight cylinders)."""
    from scipy.spatial import cKDTree

    z = label_at[:, 2].copy()
    covering = cKDTree(vertices[:, :2]).query_ball_point(label_at[:, :2], reach)
    for k, near in enumerate(covering):
        if near:
            z[k] = max(z[k], float(vertices[near, 2].max()) + LABEL_CLEAR)
    return z


@dataclass(frozen=True)
class Scene:
    """What the 3D view draws of one conformer whatever the colouring and the chosen atom:
    built once per molecule (`molecule_scene`). Rebuilt on every atom pick and colour
    switch, its label spreading took 1.9 s for a 250-atom molecule."""

    mol: Chem.Mol
    positions: np.ndarray  # (atoms, 3) angstrom
    rows: List[Optional[int]]  # per atom, its molecule_fp row (None: hydrogen)
    heavy: List[int]  # atom indices of the heavy atoms, in row order
    radii: np.ndarray  # (atoms,) drawn sphere radius, angstrom
    vertices: np.ndarray  # (V, 3) spheres and bond halves, one mesh
    faces: np.ndarray  # (F, 3) its triangles
    vertex_atom: np.ndarray  # (V,) the atom whose colour each vertex takes
    sphere: Tuple[np.ndarray, np.ndarray]  # the unit sphere's (vertices, triangles): the chosen atom's shell
    label_at: np.ndarray  # (heavy, 3) index label anchors, spread apart
    font: int  # px


def atom_radius(atomic_num: int) -> float:
    """Drawn sphere radius, angstrom: C 0.35, H 0.21, Cl 0.43, Na 0.62, Cs 0.85."""
    return 0.12 + 0.3 * Chem.GetPeriodicTable().GetRcovalent(atomic_num)


def _frame(drawn: np.ndarray) -> Tuple[np.ndarray, float]:
    """(centre, side): the cube around everything drawn (the axis ranges: plotly clips and pads nothing)."""
    return (drawn.min(axis=0) + drawn.max(axis=0)) / 2, float(np.ptp(drawn, axis=0).max()) + 1e-6


def molecule_scene(mol: Chem.Mol) -> Scene:
    """`mol`'s conformer as the view draws it: the mesh, and the index labels just outside
    their atoms and apart on the narrowest panel."""
    positions = mol.GetConformer().GetPositions()  # (atoms, 3), angstrom
    rows = heavy_atom_rows(mol)
    radii = np.array([atom_radius(a.GetAtomicNum()) for a in mol.GetAtoms()])
    sphere_v, sphere_f = _unit_sphere(10 if mol.GetNumAtoms() <= 150 else 6)  # coarser for big molecules
    vertices, faces, owners = [], [], []  # pieces of one mesh: (V_k, 3), (F_k, 3), the atom of each piece
    count = 0  # vertices so far: each piece's triangles index past them

    def add(v: np.ndarray, f: np.ndarray, atom: int) -> None:
        nonlocal count
        faces.append(f + count)
        vertices.append(v)
        owners.append(np.full(len(v), atom))
        count += len(v)

    for i in range(mol.GetNumAtoms()):
        add(positions[i] + radii[i] * sphere_v, sphere_f, i)
    for bond in bonds(mol):
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        middle = (positions[i] + positions[j]) / 2
        for atom in (i, j):  # each half in its atom's colour
            add(*_cylinder(positions[atom], middle, BOND_RADIUS), atom)
    v = np.concatenate(vertices)
    heavy = [i for i, row in enumerate(rows) if row is not None]
    # Labels sit just outside their atom's sphere, away from the middle of the molecule and
    # towards the first camera (+z) (a fixed 0.42 / 0.45 A hid the label inside Na, K and Cs),
    # then in front of whatever covers them on screen (`labels_in_front`).
    outward = positions[heavy] - positions.mean(axis=0)  # (heavy, 3)
    outward[:, 2] = 0.0
    norms = np.linalg.norm(outward, axis=1, keepdims=True)
    outward = np.where(norms > 1e-6, outward / np.maximum(norms, 1e-6), np.array([0.7, 0.7, 0.0]))
    r = radii[heavy, None]  # (heavy, 1)
    label_at = positions[heavy] + (r + LABEL_OUT) * outward + (r + LABEL_UP) * np.array([0.0, 0.0, 1.0])
    # ...and apart on the narrowest panel with the colour bar's strip (the shortest scene): its
    # angstrom per px is the most of any width and colouring (wider panels are height-bound,
    # taller ones than NARROWEST_SCENE/scene_height do not exist)
    font = LABEL_FONT if len(heavy) <= CROWDED else CROWDED_LABEL_FONT
    scene_height = FIGURE_HEIGHT - COLORBAR_STRIP
    wide = NARROWEST_SCENE / scene_height
    drawn = np.concatenate([v, label_at])
    centre, side = _frame(drawn)
    per_px = 2 * FOV_TAN * _camera_distance(drawn, centre, side, wide) * side / scene_height
    label_at[:, :2] = spread_labels(label_at[:, :2], LABEL_GAP * font * per_px)
    digits = np.array([len(str(rows[i])) for i in heavy])
    label_at[:, 2] = labels_in_front(label_at, v, np.hypot(DIGIT_WIDTH * digits / 2, 0.5) * font * per_px)
    # The mesh goes to the browser as JSON on every pick, its arrays in their own dtype:
    # float32 coordinates (far finer than a pixel) cut a 250-atom figure from 2.4 to 1.7 MB
    return Scene(mol=mol, positions=positions, rows=rows, heavy=heavy, radii=radii, vertices=v.astype(np.float32),
                 faces=np.concatenate(faces), vertex_atom=np.concatenate(owners), sphere=(sphere_v, sphere_f),
                 label_at=label_at, font=font)


def molecule_figure(mol: Union[Chem.Mol, Scene], received: Optional[np.ndarray] = None,
                    selected: Optional[int] = None, revision: str = "", resolution: float = 0.0) -> go.Figure:
    """Ball-and-stick figure of `mol`'s conformer (or of its `Scene`, built once per molecule).

    received: per molecule_fp row, the attention share (colours atoms by attention) or None
    (element colours); selected: a token row to ring in blue; revision: keeps the user's
    camera across redraws of the same molecule (plotly's uirevision); resolution: the
    shares' rounding (`AttentionMaps.resolution`): shares no further apart are one colour.
    """
    scene = mol if isinstance(mol, Scene) else molecule_scene(mol)
    mol, positions, rows, heavy = scene.mol, scene.positions, scene.rows, scene.heavy
    v, f = scene.vertices, scene.faces
    colors = np.array(atom_colors(mol, received, resolution))
    traces: list = [go.Mesh3d(
        x=v[:, 0], y=v[:, 1], z=v[:, 2], i=f[:, 0], j=f[:, 1], k=f[:, 2],
        vertexcolor=colors[scene.vertex_atom].tolist(),
        lighting=dict(ambient=0.5, diffuse=0.75, specular=0.35, roughness=0.35, fresnel=0.1),
        lightposition=dict(x=100, y=200, z=1000), hoverinfo="skip", showscale=False, name="atoms",
    )]
    shell = None  # a translucent shell around the chosen atom
    if selected is not None and selected in rows:
        i = rows.index(selected)
        shell = positions[i] + 1.6 * scene.radii[i] * scene.sphere[0]
    # The view: a cube around everything drawn, the camera as far as the narrowest panel needs
    scene_height = FIGURE_HEIGHT - (COLORBAR_STRIP if received is not None else 0)
    wide = NARROWEST_SCENE / scene_height
    drawn = np.concatenate([v, scene.label_at] + ([shell] if shell is not None else []))
    centre, side = _frame(drawn)
    hover = []
    if received is not None:
        scale = received_scale(received, resolution)  # the page's legend and atom list write it so too
        low, high = scale.low, scale.high
    for i in heavy:
        text = f"atom {rows[i]} · {mol.GetAtomWithIdx(i).GetSymbol()}"
        if received is not None and rows[i] < len(received):
            text += f" · attention {scale.text(received[rows[i]])}"  # as the atom list writes it
        hover.append(text)
    label_at = scene.label_at
    traces.append(go.Scatter3d(
        x=label_at[:, 0], y=label_at[:, 1], z=label_at[:, 2], mode="text", text=[str(rows[i]) for i in heavy],
        textposition="middle center",
        textfont=dict(size=scene.font, color="#111827", family="Source Sans Pro, sans-serif"),
        hoverinfo="skip", name="atom index",
    ))
    marker = dict(size=6, opacity=0.01, color="#000000")
    if received is not None:  # the marker colours carry the colour bar of the attention scale
        # uniform shares: the bar is the one colour the atoms have (`scaled`: all at the scale's start)
        stops = [(0.0, COLOR_STOPS[0][1]), (1.0, COLOR_STOPS[0][1])] if scale.uniform else COLOR_STOPS
        marker.update(
            color=[float(received[rows[i]]) if rows[i] < len(received) else low for i in heavy], cmin=low,
            cmax=high, colorscale=[[s, c] for s, c in stops], showscale=True,
            colorbar=dict(title=dict(text="share of attention", side="top"), orientation="h",
                          thickness=COLORBAR_THICKNESS, len=0.8, x=0.5, xanchor="center", y=0, yanchor="bottom",
                          **colorbar_ticks(scale)),
        )
    traces.append(go.Scatter3d(  # near-invisible points on the heavy atoms: what hovering reads
        x=positions[heavy, 0], y=positions[heavy, 1], z=positions[heavy, 2], mode="markers", marker=marker,
        hovertext=hover, hoverinfo="text", name="atom info",
    ))
    if shell is not None:
        sphere_f = scene.sphere[1]
        traces.append(go.Mesh3d(
            x=shell[:, 0], y=shell[:, 1], z=shell[:, 2], i=sphere_f[:, 0], j=sphere_f[:, 1],
            k=sphere_f[:, 2], color=SELECTED, opacity=0.3, hoverinfo="skip", name="chosen atom",
        ))
    figure = go.Figure(traces)
    eye = _camera_distance(drawn, centre, side, wide)
    axes = [dict(visible=False, showspikes=False, range=[c - side / 2, c + side / 2]) for c in centre]
    figure.update_layout(
        scene=dict(xaxis=axes[0], yaxis=axes[1], zaxis=axes[2], aspectmode="cube", bgcolor="#ffffff",
                   domain=dict(x=[0, 1], y=[1 - scene_height / FIGURE_HEIGHT, 1]),
                   camera=dict(eye=dict(x=0.0, y=0.0, z=eye), center=dict(x=0, y=0, z=0), up=dict(x=0, y=1, z=0))),
        margin=dict(l=0, r=0, t=0, b=0), showlegend=False, paper_bgcolor="#ffffff",
        uirevision=revision or None, height=FIGURE_HEIGHT,
    )
    return figure


def oriented(mol: Chem.Mol) -> Chem.Mol:
    """A copy whose conformer is centred and turned so its widest extent lies in the screen
    plane (principal axes: largest along x, smallest along z, the viewing direction)."""
    copy = Chem.Mol(mol)
    conf = copy.GetConformer()
    positions = conf.GetPositions()  # (atoms, 3)
    centred = positions - positions.mean(axis=0)
    if len(positions) > 2:
        _, _, axes = np.linalg.svd(centred, full_matrices=False)  # rows: principal axes, largest first
        if np.linalg.det(axes) < 0:  # keep a rotation (no mirror image: chirality must survive)
            axes[2] *= -1
        centred = centred @ axes.T
    for i, p in enumerate(centred):
        conf.SetAtomPosition(i, p.tolist())
    return copy
