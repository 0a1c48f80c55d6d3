"""Structure files in, ``MoleculeRecord``s out: one reader module per format.

The file format comes from the suffix (any case); compressed files (``.sdf.gz``) are not
read, and say so. ``read_structures`` yields one item per record. Each reader registers
its suffixes in ``READERS`` (``base.register_reader``) and yields one ``ParsedStructure``
per record; ``read_structures`` applies the common
finishing steps (checks, fragments, size cap, 3D policy: ``finish.py``, ``policy.py``).

==========  ===============================================================================
``.sdf``    MDL V2000 and V3000, any number of ``$$$$``-separated records (``.mol``, ``.sd``
``.mol``    the same reader, ``sdf.py``). Record id: the title line, else ``file#index``.
``.mol2``   Tripos MOL2, records start at ``@<TRIPOS>MOLECULE`` (``mol2.py``). Id: the
            molecule name. Counts must match the lines; all hydrogens needed.
``.xyz``    One or more frames (count line, comment line, ``symbol x y z`` lines); bonds,
            bond orders and formal charges perceived by RDKit's ``rdDetermineBonds``
            (needs all the hydrogens). Total charge 0 unless the comment holds an integer
            ``charge=N``. Element symbols are case-insensitive, or atomic numbers;
            ``D``/``T`` are hydrogen isotopes. Id: ``file#frame``; a comment line that
            is a plain name is a title note, not the id (``xyz.py``).
``.pdb``    One molecule per file (first MODEL, noted). Bonds and bond orders from the
            CONECT records (RDKit writes a double bond as a repeated CONECT pair); a PDB
            without CONECT records, or whose CONECT records hold no bond orders and leave
            atoms short, or leave an atom short beside the file's H atoms, gets bonds
            perceived from coordinates, as for XYZ (``pdb.py``).
``.smi``    One ``SMILES [|cxsmiles|] [id]`` per line; blank lines and ``#`` comments
``.txt``    skipped; the first other line is a header if its first word is ``smiles``.
            Id: the words after the SMILES, else ``file#line`` (``smiles.py``). Another
            format saved so (XYZ, molfile, MOL2, PDB, a table whose header names a
            ``smiles`` column: ``id,smiles``) is one error for the file naming it.
``.csv``    Column ``smiles`` (any case); id from the first of ``id, name, cid,
            compound_id`` (any case), else ``file#row``; a column named twice, or a row
            of another width than the header, is an error (``csv.py``).
==========  ===============================================================================

Files are read as UTF-8 (a leading byte-order mark is dropped); bytes that are not (in
titles or data fields) become U+FFFD (deepmolm-fingerprint and deepmolm-render, whose
outputs are keyed by the name, fail such a record: ``names_are_keys``). A UTF-16 or
binary file (NUL or other control bytes throughout its first 64 KiB: ``read.not_text``) is one error for the
file; a stray control character other than a tab, LF or CR (a NUL) fails the record it is in,
wherever it is, naming the line and what it is (the name; an SDF title, header or connection
table; a MOL2 section; a PDB record; an XYZ count, comment or atom line; a SMILES;
``base.control_problem``). Was: one NUL in the first 64 KiB refused the whole file, one after
it passed (an SDF title 'm\x001990' became the id) or failed its record. Non-ASCII text where
numbers and symbols belong (an SDF connection table, PDB atom and CONECT records) fails that record.
SDF, SMILES and CSV files are streamed (data sets can be large); the others are read
whole. Bad records: a ``MoleculeError`` naming the record and the reason (RDKit's own
message included): unparseable text, a truncated record, a count line that disagrees with
the atom lines, sanitisation/valence errors, a SMILES field that does not match the
coordinates (naming the SMILES, the file and the molecule it gives:
``matching.NotTheMolecule``), and the structure checks of ``checks.py``. A file that gives
hydrogens as atoms (a CH2 or CH3 written out; or, in 3D, every carbon's) but leaves an atom short
of bonds (RDKit would give it implicit H), or whose atoms carrying H atoms are short, lost bond
orders or charges (an SDF also radical marks): the SDF and MOL2 record fails naming the atoms, a PDB gets its bonds
from the coordinates (``base.short_beside_hydrogens``; was: read as another molecule). A file with no records at all is
one error. ``read_structures`` yields the error and goes on with the next record
(``errors='raise'`` raises it instead).
"""

# Importing a reader module registers it; this order is SUFFIXES' order (keep it).
from . import sdf, mol2, xyz, pdb, smiles, csv  # noqa: F401,I001
from .base import READERS, ParsedStructure, ReaderSpec, reader_for, register_reader, unknown_format
from .read import count_records, read_structures
from .sdf import sdf_blocks

# How structure files and atom lists become molecules (these readers, ``builders.from_atoms``'s
# bond perception and its checks): raised whenever the same bytes can give another molecule, so
# that a depiction drawn under older rules is not served beside the new molecule's tokens (it is
# part of a structure's or atom list's depiction name, ``inputs.depiction_name``). 1: hydrogens
# given but bond orders, charges or radicals lost fail the record, PDB CONECT orders, drawn
# stereo from wedges, four-membered ring diagonals not bonds; 2: charge-separated hypervalent
# bonds (a sulfoxide perceived from XYZ as [S+]-[O-]) read in their neutral form, hypervalent.py,
# and dative bonds refused when read; 3: "either" stereo marks (crossed double bonds, wavy bonds)
# dropped (finish.py): a configuration marked unknown is an unassigned one; a charge shared by
# equal terminal atoms placed by the coordinates (shared_charges.py); `M  ISO` lines supersede
# atom-block mass differences; query atoms refused (checks.py); MOL2 bonded metals neutral and
# pyrrole-type N.ar read, PDB CONECT records after ENDMDL kept (pdb.py, mol2.py).
READER_RULES = 3

# Every suffix with a reader, in registration order (the order error messages list them).
SUFFIXES = tuple(READERS)

__all__ = ["READERS", "READER_RULES", "SUFFIXES", "ParsedStructure", "ReaderSpec", "count_records", "read_structures",
           "reader_for", "register_reader", "sdf_blocks", "unknown_format"]
