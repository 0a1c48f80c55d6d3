"""One molecule for every spelling of it, and its copy key.

``standard_molecule`` is what every KFLM2 graph, feature (Morgan, rdkit2d), copy key and
scaffold is computed from; ``molecule_keys`` is the copy key deepmolm-kflm2's splits keep
together and deepmolm-prepare's ``overlaps.jsonl`` counts by, so both tools find the same
copies. Here, beside ``canonical``, because both are questions about one molecule, not
about property prediction: prepare used to import them from the property package, and
with it torch (was: ~2-5 s at every assembly).
"""

from __future__ import annotations

import weakref
from typing import Sequence

from rdkit import Chem, rdBase
from rdkit.Chem import rdCIPLabeler
from rdkit.Chem.MolStandardize import rdMolStandardize

from .canonical import canonical_copy
from .errors import python_sigint_again, rdkit_messages, rdkit_step
from .hypervalent import neutral_hypervalent

__all__ = ["CIP_ITERATIONS", "STANDARD_RULES", "standard_molecule", "molecule_keys"]

# rdCIPLabeler's recursion bound (1,250,000 take about a second; most molecules need < 10,000)
CIP_ITERATIONS = 1_250_000


# Raised whenever standard_molecule gives another molecule for some input: 2, charge-separated
# hypervalent bonds written neutral (`hypervalent.py`). KFLM2 records it in its run config, so a
# run folder of other graphs, features, copy keys and scaffolds is not resumed as this run's.
STANDARD_RULES = 2


# standard_molecule's results by input molecule object, while it lives: deepmolm-kflm2 asks for
# the standard molecule of each row three or four times (copy key, graph, features, scaffold),
# and making it was about a quarter of a run's featurising (4,200 Lipophilicity rows: 55 of 208
# s). Kept beside the input's SMILES as it was then, so an input changed in place since is made
# again; each caller gets its own copy, so one that changes it changes nobody else's.
_MADE: "weakref.WeakKeyDictionary[Chem.Mol, tuple[str, Chem.Mol]]" = weakref.WeakKeyDictionary()


def standard_molecule(mol: Chem.Mol) -> Chem.Mol:
    """The molecule every KFLM2 graph, feature (Morgan, rdkit2d) and copy key
    (``molecule_keys``) is computed from, one for every spelling of it: explicit
    hydrogens removed (``[H]OC([H])([H])C([H])([H])[H]`` had 9 graph nodes, heavy atoms
    without their H counts, its own Morgan bits and copy key, so a --test-file molecule
    written so stayed in training), atom maps cleared (``[CH3:1][OH:2]`` was another key
    than ``CO``), hypervalent bonds neutral (``hypervalent``: ``C[S+](C)[O-]`` is ``CS(C)=O``), atoms and
    bonds in canonical order (``canonical.canonical_copy``), stereo
    as CIP descriptors (``_CIPCode`` on atoms and bonds). ``mol`` is not modified; isotopes,
    charges and fragments are chemistry and stay. Made once per input molecule (``_MADE``);
    each call returns a copy of its own."""
    now = Chem.MolToSmiles(mol, canonical=False)  # the input as it is: cheap, no ranking
    made = _MADE.get(mol)
    if made is None or made[0] != now:
        made = _MADE[mol] = (now, _standard_molecule(mol))
    return Chem.Mol(made[1])


def _standard_molecule(mol: Chem.Mol) -> Chem.Mol:
    """``standard_molecule``'s work, for one call."""
    with rdBase.BlockLogs():
        # RDKit's "not removing hydrogen atom without neighbors" ([H+] of F[B-](F)(F)F.[H+])
        # reached stderr naming no row; the lone H stays a graph node, as the SMILES has it
        mol = Chem.RemoveHs(mol)  # a copy
    for atom in mol.GetAtoms():
        atom.SetAtomMapNum(0)
    # C[S+](C)[O-] and CS(C)=O are one molecule: one graph, one copy key (as one set of tokens)
    mol = neutral_hypervalent(mol, mol.GetProp("_Name") if mol.HasProp("_Name") else "molecule", [])
    mol, _ = canonical_copy(mol)
    try:  # the labeller takes a Ctrl-C itself and raises: rdkit_step passes it on (was: swallowed below)
        with rdkit_messages() as messages:
            rdkit_step(lambda: rdCIPLabeler.AssignCIPLabels(mol, maxRecursiveIterations=CIP_ITERATIONS), messages)
    except RuntimeError:
        # A cage the new labeller cannot rank (a substituted C60: "Digraph generation failed")
        # stopped every KFLM2 path: the legacy codes `canonical_copy`'s stereo perception left
        # stand (computed on the canonical order, so still one per molecule).
        pass
    return mol


def molecule_keys(mols: Sequence) -> list[str]:
    """Each molecule's identity for finding copies: the canonical SMILES of the largest
    fragment of its ``standard_molecule`` with charges neutralised (RDKit MolStandardize,
    without its slower normalisation), so that one molecule written differently (explicit
    H and atom maps too: they were other keys, and such a --test-file molecule stayed in
    training), as a salt or in another charge state shares a key (a mixture is keyed by its
    largest component)."""
    chooser, uncharger = rdMolStandardize.LargestFragmentChooser(), rdMolStandardize.Uncharger()
    try:
        with rdBase.BlockLogs():  # the standardiser logs every step of every molecule
            return [Chem.MolToSmiles(uncharger.uncharge(chooser.choose(standard_molecule(mol)))) for mol in mols]
    finally:
        python_sigint_again()  # the Uncharger left SIGINT restarting blocking reads (logs blocked, not
        # collected by rdkit_messages, which would put Python's handler back itself: the standardiser logs every step)
