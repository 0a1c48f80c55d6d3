"""The one depiction function: data preparation, the CLI and the GUI all call it.

``render_molecule`` -> PIL RGB image, ``size x size`` (1024 for DeepMoLM), white
background, RDKit 2D depiction drawn by ``rdMolDraw2D`` (Cairo).

Why each step
- A copy is drawn; the caller's molecule and its 3D conformer are never touched.
- Stereo shown: chiral tags and double-bond stereo are read from the 3D geometry when
  the molecule has a 3D conformer, then drawn as wedges/hashes and E/Z geometry.
  ``stereo_labels=True`` also writes CIP labels (off by default, like DeepMoLM's images).
- Hydrogens are removed for drawing (RDKit keeps the ones it needs, e.g. isotopic ones).
- Deterministic: atoms and bonds are put in RDKit's canonical order
  (``canonical.canonical_copy``; with the atoms alone renumbered, the bonds kept the
  input's order and ``CCO`` / ``OCC`` differed in 3-9 pixels) and laid out by RDKit's own
  depictor (``forceRDKit``, ignoring the global CoordGen preference), so the same
  molecule gives identical pixels and PNG bytes, whatever its atom order in the file.
- A depiction of one colour, or without a white background, is an error, never a
  blank training image.

``depiction_atom_positions`` gives where each heavy atom lands in that same drawing (the
GUI marks the atom whose attention it shows): the rows are the heavy atoms in the
molecule's own order, as in ``molecule_fp``, although the drawing renumbers them.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from rdkit import Chem
from rdkit.Chem import rdDepictor
from rdkit.Chem.Draw import rdMolDraw2D

from .bonds import bonds
from .canonical import canonical_copy
from .errors import MoleculeError, first_line

__all__ = ["depiction_atom_positions", "render_molecule"]

_HAS_CAIRO = hasattr(rdMolDraw2D, "MolDraw2DCairo")
# Atom property: a heavy atom's row in molecule_fp (its rank among the molecule's heavy
# atoms), carried through RemoveHs and the canonical renumbering of the drawn copy.
_ROW = "_deepmolm_heavy_row"


def _as_mol(molecule, id: str | None) -> tuple[Chem.Mol, str]:
    if isinstance(molecule, str):
        from .builders import molecule_from_smiles  # local: builders import the conformer stack

        record = molecule_from_smiles(molecule, id, policy="keep")
        return record.mol, record.id
    if isinstance(molecule, Chem.Mol):
        name = molecule.GetProp("_Name") if molecule.HasProp("_Name") else ""
        return molecule, id or name or "molecule"
    if hasattr(molecule, "mol") and hasattr(molecule, "id"):  # a MoleculeRecord
        return molecule.mol, id or molecule.id
    raise TypeError(
        f"render_molecule needs a SMILES, an RDKit Mol or a MoleculeRecord, got {type(molecule)}"
    )


# What RDKit draws that is not the molecule: a label in an atom's place (CXSMILES `$...$`,
# molfile pseudo-atom labels: "OMe" was drawn over ethoxide's O, "R1" over a carbon), atom-map
# numbers ("C:1", common in reaction-derived data), notes. The depiction must show the
# molecule the tokens describe; map numbers also enter the canonical ranking, so one molecule
# was drawn in two ways, with and without them. Substance groups (data fields drawn as text,
# bracketed repeat units) go for the same reason; polymers are refused before drawing. So do
# enhanced stereo groups: RDKit writes "and1" / "or1" beside their atoms, while the tokens
# encode the configuration as written (finish.py's note says so), and only the labels told
# the picture of `|&1:1,3|` from the plain spelling's.
# Part of every drawn depiction's file name (inputs.depiction_name): raised whenever one input
# is drawn differently, so a render folder never serves a drawing made under older rules
# (2: annotations left out; 3: bonds in canonical order too; 4: a structure whose conformer
# was generated is drawn without its stereo, inputs.InputResolver.drawn_molecule; 5: enhanced
# stereo groups neither drawn nor read by the canonical ranking; 6: structure files read under
# new rules (a PDB's CONECT bond orders, stereo from wedges), whose old drawings showed the old
# molecule; later reader changes raise io.READER_RULES instead; 7: a charge-separated hypervalent
# bond, `C[S+](C)[O-]`, drawn in its neutral form S=O, hypervalent.py; 8: "either" stereo marks,
# a crossed double bond, a wavy bond, CXSMILES `|w:|`, dropped when read, finish.py: not drawn).
DRAWING_RULES = 8
_DISPLAY_ATOM_PROPS = ("atomLabel", "_displayLabel", "_displayLabelW", "dummyLabel", "atomNote", "molAtomMapNumber")


def _without_annotations(work: Chem.RWMol) -> None:
    work.SetStereoGroups([])
    for atom in work.GetAtoms():
        for name in _DISPLAY_ATOM_PROPS:
            atom.ClearProp(name)
    for bond in bonds(work):
        bond.ClearProp("bondNote")
    Chem.ClearMolSubstanceGroups(work)


def _depiction(mol: Chem.Mol, id: str) -> Chem.Mol:
    """Canonically ordered, hydrogen-free copy with fresh 2D coordinates and stereo tags,
    without display annotations (labels, map numbers, notes, substance groups, enhanced stereo
    groups)."""
    work = Chem.RWMol(mol)
    _without_annotations(work)
    heavy = [atom for atom in work.GetAtoms() if atom.GetAtomicNum() != 1]
    for row, atom in enumerate(heavy):
        atom.SetIntProp(_ROW, row)  # not an invariant of the canonical ranking: the drawing is unchanged
    if work.GetNumConformers() and work.GetConformer().Is3D():
        Chem.AssignStereochemistryFrom3D(work)
    params = Chem.RemoveHsParameters()
    # was: RDKit's "not removing hydrogen atom without neighbors" (a salt's H+) on stderr, naming
    # no record; the lone H is drawn as given (deepmolm-render refuses it as the fingerprint does)
    params.showWarnings = False
    try:
        work = Chem.RemoveHs(work, params)
    except Chem.MolSanitizeException as error:  # exceptions carry RDKit's message
        raise MoleculeError(id, f"cannot prepare for drawing: {error}") from error
    if work.GetNumAtoms() == 0:
        raise MoleculeError(id, "nothing to draw: no atoms")
    work, _ = canonical_copy(work)
    try:
        rdDepictor.Compute2DCoords(work, canonOrient=True, clearConfs=True, forceRDKit=True)
    except (RuntimeError, ValueError) as error:  # RDKit invariant violations
        raise MoleculeError(id, f"2D layout failed: RDKit error: {first_line(error)}") from error
    return work


def _drawer(work: Chem.Mol, size: int, stereo_labels: bool) -> "rdMolDraw2D.MolDraw2DCairo":
    """A Cairo drawer that has drawn ``work``: its PNG, and its pixel coordinates of each atom."""
    drawer = rdMolDraw2D.MolDraw2DCairo(size, size)
    options = drawer.drawOptions()
    options.clearBackground = True
    options.setBackgroundColour((1.0, 1.0, 1.0, 1.0))
    options.addStereoAnnotation = stereo_labels
    rdMolDraw2D.PrepareAndDrawMolecule(drawer, work)  # kekulise, wedges from chiral tags
    drawer.FinishDrawing()
    return drawer


def _draw(work: Chem.Mol, size: int, stereo_labels: bool) -> Image.Image:
    if not _HAS_CAIRO:  # RDKit built without Cairo: its default (PIL) drawer
        from rdkit.Chem import Draw

        return Draw.MolToImage(work, size=(size, size), kekulize=True, wedgeBonds=True).convert("RGB")
    return Image.open(io.BytesIO(_drawer(work, size, stereo_labels).GetDrawingText())).convert("RGB")


def render_molecule(
    molecule, size: int = 1024, id: str | None = None, stereo_labels: bool = False
) -> Image.Image:
    """Draw ``molecule`` (SMILES, RDKit Mol or MoleculeRecord) as a ``size`` x ``size`` RGB image."""
    mol, id = _as_mol(molecule, id)
    work = _depiction(mol, id)
    try:
        image = _draw(work, size, stereo_labels)
    except (RuntimeError, ValueError) as error:  # RDKit invariant violations, kekulisation
        raise MoleculeError(id, f"drawing failed: RDKit error: {first_line(error)}") from error
    if image.size != (size, size):
        raise MoleculeError(id, f"drawing has size {image.size}, expected {size}")
    if all(low == high for low, high in image.getextrema()):  # one colour everywhere
        raise MoleculeError(id, "drawing came out blank")
    if image.getpixel((0, 0)) != (255, 255, 255):
        raise MoleculeError(id, f"drawing background is {image.getpixel((0, 0))}, not white")
    return image


def depiction_atom_positions(
    molecule, size: int = 1024, id: str | None = None, stereo_labels: bool = False
) -> np.ndarray:
    """float ``[heavy_atoms, 2]``: the (x, y) pixel of each heavy atom (rows in the
    molecule's own order, as ``molecule_fp``'s) in ``render_molecule`` with the same
    arguments; NaN for a heavy atom the drawing does not show (none so far)."""
    mol, id = _as_mol(molecule, id)
    if not _HAS_CAIRO:  # the PIL drawer tells no coordinates
        raise MoleculeError(id, "atom positions need RDKit's Cairo drawer (rdMolDraw2D.MolDraw2DCairo)")
    work = _depiction(mol, id)
    try:
        drawer = _drawer(work, size, stereo_labels)
    except (RuntimeError, ValueError) as error:
        raise MoleculeError(id, f"drawing failed: RDKit error: {first_line(error)}") from error
    xy = np.full((sum(atom.GetAtomicNum() != 1 for atom in mol.GetAtoms()), 2), np.nan)
    for atom in work.GetAtoms():
        if atom.HasProp(_ROW):
            point = drawer.GetDrawCoords(atom.GetIdx())
            xy[atom.GetIntProp(_ROW)] = (point.x, point.y)
    return xy
