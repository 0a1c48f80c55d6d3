"""Seventeenth round: Open Babel-written MOL2 files of charged molecules were refused.

Open Babel, the commonest MOL2 writer (docking inputs), states each formal charge in a
@<TRIPOS>UNITY_ATOM_ATTR section as ``charge 1``. RDKit's MOL2 reader, finding that section,
reads charges from it alone and only in the spelling ``AtomExpr 1``, and skips its own charges
by type (N.4 as N+, O.co2): every charged molecule Open Babel wrote lost its charges, and 103
of 166 BACE molecules (protonated amines, amidines) were refused with "Explicit valence for
atom N..., 4" (nitro groups, pyridinium, amidinium and zwitterions alike). Open Babel writes a
carboxylate's two C-O bonds ``ar``, the -1 on one O.co2, which RDKit refused as "non-ring atom
marked aromatic". The records below are as Open Babel 3.1.1 wrote them (from RDKit 3D SDFs;
Open Babel is not needed here).
"""

from __future__ import annotations

from rdkit import Chem
from test_hostile_structure_files import _items, _write

from deepmolm_plugin.molecule import MoleculeError

_METHYLAMMONIUM = """\
@<TRIPOS>MOLECULE
methylammonium
 8 7 0 0 0
SMALL
GASTEIGER

@<TRIPOS>ATOM
      1 C          -0.7033   -0.0284   -0.0545 C.3     1  UNL1       -0.0466
      2 N           0.7390   -0.0004   -0.0114 N.4     1  UNL1        0.2163
      3 H          -1.1159   -0.6847   -0.8291 H       1  UNL1        0.0776
      4 H          -1.0231   -0.4222    0.9433 H       1  UNL1        0.0776
      5 H          -1.1527    0.9807   -0.1397 H       1  UNL1        0.0776
      6 H           1.1978   -0.2225   -0.9087 H       1  UNL1        0.1991
      7 H           0.9982    0.9942    0.2210 H       1  UNL1        0.1991
      8 H           1.0600   -0.6167    0.7791 H       1  UNL1        0.1991
@<TRIPOS>UNITY_ATOM_ATTR
2 1
charge 1
@<TRIPOS>BOND
     1     1     2    1
     2     1     3    1
     3     1     4    1
     4     1     5    1
     5     2     6    1
     6     2     7    1
     7     2     8    1
"""

_GLYCINE = """\
@<TRIPOS>MOLECULE
gly_zw
 10 9 0 0 0
SMALL
GASTEIGER

@<TRIPOS>ATOM
      1 N          -1.1041    0.2269   -0.1761 N.4     1  GLY1        0.2227
      2 CA          0.0743   -0.4528    0.3689 C.3     1  GLY1        0.0051
      3 C           1.2986    0.1919   -0.1575 C.2     1  GLY1        0.0862
      4 O           1.2688    1.1810   -0.9575 O.co2   1  GLY1       -0.5444
      5 OXT         2.5161   -0.3363    0.2648 O.co2   1  GLY1       -0.5444
      6 H1         -0.9322    1.2442   -0.2954 H       1  GLY1        0.1998
      7 H2         -1.3204   -0.2397   -1.0938 H       1  GLY1        0.1998
      8 H3         -1.8802    0.0197    0.4937 H       1  GLY1        0.1998
      9 HA1         0.0924   -0.3259    1.4777 H       1  GLY1        0.0878
     10 HA2        -0.0132   -1.5091    0.0753 H       1  GLY1        0.0878
@<TRIPOS>UNITY_ATOM_ATTR
1 1
charge 1
5 1
charge -1
@<TRIPOS>BOND
     1     1     2    1
     2     2     3    1
     3     3     4   ar
     4     3     5   ar
     5     1     6    1
     6     1     7    1
     7     1     8    1
     8     2     9    1
     9     2    10    1
"""

_NITROMETHANE = """\
@<TRIPOS>MOLECULE
nitromethane
 7 6 0 0 0
SMALL
GASTEIGER

@<TRIPOS>ATOM
      1 C          -0.6671    0.0036    0.0697 C.3     1  UNL1        0.1981
      2 N           0.7930    0.0159   -0.1017 N.pl3   1  UNL1        0.0348
      3 O           1.4044   -1.0525   -0.3196 O.2     1  UNL1        0.0341
      4 O           1.4911    1.1994   -0.0235 O.co2   1  UNL1       -0.5820
      5 H          -1.0350   -0.9405   -0.4098 H       1  UNL1        0.1050
      6 H          -0.8238   -0.0951    1.1665 H       1  UNL1        0.1050
      7 H          -1.1626    0.8692   -0.3817 H       1  UNL1        0.1050
@<TRIPOS>UNITY_ATOM_ATTR
2 1
charge 1
4 1
charge -1
@<TRIPOS>BOND
     1     1     2    1
     2     2     3    2
     3     2     4    1
     4     1     5    1
     5     1     6    1
     6     1     7    1
"""

_PYRIDINIUM = """\
@<TRIPOS>MOLECULE
pyridinium
 12 12 0 0 0
SMALL
GASTEIGER

@<TRIPOS>ATOM
      1 C           1.0355    0.9497   -0.0212 C.ar    1  UNL1       -0.0506
      2 C           1.2911   -0.4053   -0.0119 C.ar    1  UNL1        0.0021
      3 C           0.2707   -1.3519    0.0091 C.ar    1  UNL1        0.1695
      4 N          -1.0190   -0.9195    0.0207 N.ar    1  UNL1       -0.2172
      5 C          -1.3080    0.4087    0.0120 C.ar    1  UNL1        0.1695
      6 C          -0.2865    1.3390   -0.0088 C.ar    1  UNL1        0.0021
      7 H           1.8609    1.6782   -0.0378 H       1  UNL1        0.0621
      8 H           2.3346   -0.7537   -0.0212 H       1  UNL1        0.0677
      9 H           0.4805   -2.4123    0.0163 H       1  UNL1        0.1375
     10 H          -1.7684   -1.6508    0.0364 H       1  UNL1        0.4522
     11 H          -2.3363    0.7499    0.0213 H       1  UNL1        0.1375
     12 H          -0.5550    2.3679   -0.0150 H       1  UNL1        0.0677
@<TRIPOS>UNITY_ATOM_ATTR
4 1
charge 1
@<TRIPOS>BOND
     1     1     2   ar
     2     2     3   ar
     3     3     4   ar
     4     4     5   ar
     5     5     6   ar
     6     6     1   ar
     7     1     7    1
     8     2     8    1
     9     3     9    1
    10     4    10    1
    11     5    11    1
    12     6    12    1
"""

_ACETAMIDINIUM = """\
@<TRIPOS>MOLECULE
acetamidinium
 11 10 0 0 0
SMALL
GASTEIGER

@<TRIPOS>ATOM
      1 C           1.1165   -0.3858   -0.5338 C.3     1  UNL1        0.0344
      2 C          -0.1741    0.0322    0.0734 C.2     1  UNL1        0.2308
      3 N          -1.2011   -0.8769    0.4358 N.pl3   1  UNL1       -0.2541
      4 N          -0.3111    1.3244    0.2594 N.2     1  UNL1       -0.2928
      5 H           1.1891   -0.0684   -1.6000 H       1  UNL1        0.0349
      6 H           1.9052    0.2277   -0.0075 H       1  UNL1        0.0349
      7 H           1.3297   -1.4502   -0.3722 H       1  UNL1        0.0349
      8 H          -1.1996   -1.4000    1.3449 H       1  UNL1        0.2879
      9 H          -1.9874   -1.0270   -0.2336 H       1  UNL1        0.2879
     10 H           0.5096    1.8947   -0.0454 H       1  UNL1        0.3005
     11 H          -1.1768    1.7293    0.6789 H       1  UNL1        0.3005
@<TRIPOS>UNITY_ATOM_ATTR
4 1
charge 1
@<TRIPOS>BOND
     1     1     2    1
     2     2     3    1
     3     2     4    2
     4     1     5    1
     5     1     6    1
     6     1     7    1
     7     3     8    1
     8     3     9    1
     9     4    10    1
    10     4    11    1
"""

_CF3NO2 = """\
@<TRIPOS>MOLECULE
cf3no2
 7 6 0 0 0
SMALL
GASTEIGER

@<TRIPOS>ATOM
      1 F          -0.8223   -1.0587   -1.0103 F       1  UNL1       -0.1030
      2 C          -0.6103   -0.0635   -0.0514 C.3     1  UNL1        0.6927
      3 F          -1.2581    1.0742   -0.4697 F       1  UNL1       -0.1030
      4 F          -1.1618   -0.4418    1.1746 F       1  UNL1       -0.1030
      5 N           0.8204    0.1453    0.0671 N.pl3   1  UNL1        0.1478
      6 O           1.3705    1.2437   -0.1621 O.2     1  UNL1        0.0431
      7 O           1.6616   -0.8993    0.4519 O.co2   1  UNL1       -0.5748
@<TRIPOS>UNITY_ATOM_ATTR
5 1
charge 1
7 1
charge -1
@<TRIPOS>BOND
     1     1     2    1
     2     2     3    1
     3     2     4    1
     4     2     5    1
     5     5     6    2
     6     5     7    1
"""

_BACE_121 = """\
@<TRIPOS>MOLECULE
mol121
 43 45 0 0 0
SMALL
GASTEIGER

@<TRIPOS>ATOM
      1 BR          3.6922   -2.1070   -2.5052 Br      1  UNL1       -0.0495
      2 C           4.7343   -1.2439   -1.1740 C.ar    1  UNL1        0.0282
      3 C           5.9492   -1.7052   -0.7275 C.ar    1  UNL1       -0.0101
      4 S           6.6318   -0.8869    0.3336 S.2     1  UNL1       -0.1037
      5 C           5.3761    0.2692    0.3826 C.ar    1  UNL1       -0.0199
      6 C           4.3786   -0.0667   -0.5214 C.ar    1  UNL1       -0.0222
      7 C           3.1102    0.6378   -0.8236 C.3     1  UNL1        0.0183
      8 CA          1.8789   -0.0468   -0.2113 C.3     1  UNL1        0.1320
      9 N           0.7451    0.7852   -0.6224 N.pl3   1  UNL1       -0.2283
     10 C          -0.6047    0.4387   -0.2957 C.2     1  UNL1        0.2715
     11 N          -0.8670   -0.6208    0.3683 N.2     1  UNL1       -0.2701
     12 C          -2.1305   -1.1262    0.7846 C.3     1  UNL1        0.1041
     13 C          -3.3396   -0.3347    0.4165 C.3     1  UNL1        0.0161
     14 C          -2.9773    0.8636   -0.3463 C.ar    1  UNL1       -0.0270
     15 C          -1.7247    1.2722   -0.7030 C.ar    1  UNL1        0.0645
     16 C          -1.4963    2.4250   -1.4241 C.ar    1  UNL1       -0.0454
     17 C          -2.5865    3.2149   -1.8110 C.ar    1  UNL1       -0.0426
     18 C          -3.8630    2.8350   -1.4697 C.ar    1  UNL1        0.0413
     19 CL         -5.2633    3.7975   -1.9342 Cl      1  UNL1       -0.0835
     20 C          -4.0445    1.6791   -0.7507 C.ar    1  UNL1       -0.0392
     21 C          -2.3914   -2.5256    0.1652 C.3     1  UNL1       -0.0214
     22 C          -2.1304   -1.4463    2.2984 C.3     1  UNL1       -0.0214
     23 C           2.0299   -0.0590    1.2750 C.2     1  UNL1        0.0844
     24 O           2.8643    0.6159    1.8971 O.co2   1  UNL1       -0.5456
     25 OXT         1.1876   -0.8779    2.0548 O.co2   1  UNL1       -0.5456
     26 H           6.4161   -2.6099   -1.1038 H       1  UNL1        0.0704
     27 H           5.4180    1.1190    1.0466 H       1  UNL1        0.0696
     28 H           3.1047    1.6593   -0.3895 H       1  UNL1        0.0357
     29 H           2.8921    0.7468   -1.9013 H       1  UNL1        0.0357
     30 HA          1.7741   -1.0714   -0.6063 H       1  UNL1        0.0829
     31 H           0.9676    1.6295   -1.1564 H       1  UNL1        0.2919
     32 H          -0.0184   -1.2036    0.6419 H       1  UNL1        0.3044
     33 H          -4.1013   -0.9627   -0.1245 H       1  UNL1        0.0357
     34 H          -3.8553   -0.0592    1.3807 H       1  UNL1        0.0357
     35 H          -0.5407    2.7735   -1.7183 H       1  UNL1        0.0626
     36 H          -2.4222    4.1348   -2.3848 H       1  UNL1        0.0632
     37 H          -5.0654    1.3912   -0.4869 H       1  UNL1        0.0635
     38 H          -2.0465   -3.3104    0.8619 H       1  UNL1        0.0273
     39 H          -3.4812   -2.6635    0.0117 H       1  UNL1        0.0273
     40 H          -1.8501   -2.6311   -0.8018 H       1  UNL1        0.0273
     41 H          -3.1633   -1.6331    2.6594 H       1  UNL1        0.0273
     42 H          -1.5928   -0.6635    2.8643 H       1  UNL1        0.0273
     43 H          -1.5942   -2.4327    2.3947 H       1  UNL1        0.0273
@<TRIPOS>UNITY_ATOM_ATTR
11 1
charge 1
25 1
charge -1
@<TRIPOS>BOND
     1     1     2    1
     2     2     3   ar
     3     3     4   ar
     4     4     5   ar
     5     5     6   ar
     6     6     7    1
     7     7     8    1
     8     8     9    1
     9     9    10    1
    10    10    11    2
    11    11    12    1
    12    12    13    1
    13    13    14    1
    14    14    15   ar
    15    15    16   ar
    16    16    17   ar
    17    17    18   ar
    18    18    19    1
    19    18    20   ar
    20    12    21    1
    21    12    22    1
    22     8    23    1
    23    23    24   ar
    24    23    25   ar
    25     6     2   ar
    26    15    10    1
    27    20    14   ar
    28     3    26    1
    29     5    27    1
    30     7    28    1
    31     7    29    1
    32     8    30    1
    33     9    31    1
    34    11    32    1
    35    13    33    1
    36    13    34    1
    37    16    35    1
    38    17    36    1
    39    20    37    1
    40    21    38    1
    41    21    39    1
    42    21    40    1
    43    22    41    1
    44    22    42    1
    45    22    43    1
"""


def _read(tmp_path, text, name="x.mol2"):
    (record,) = _items(_write(tmp_path / name, text))
    return record


def _reads_as(tmp_path, text, smiles, notes=()):
    """The record of ``text`` read as the molecule ``smiles`` (charges and all), with ``notes``."""
    record = _read(tmp_path, text)
    assert not isinstance(record, MoleculeError), record
    assert Chem.MolToSmiles(Chem.RemoveHs(record.mol)) == Chem.MolToSmiles(Chem.MolFromSmiles(smiles))
    assert record.notes == list(notes)
    return record


def _refused(tmp_path, text) -> str:
    record = _read(tmp_path, text)
    assert isinstance(record, MoleculeError), record
    return record.reason


def _line(text, line) -> int:
    """The file line (from 1) of the first line of ``text`` equal to ``line``."""
    return text.split("\n").index(line) + 1


def test_open_babel_ammonium_n4_reads_as_its_stated_charge(tmp_path):
    # was: "Explicit valence for atom N2, 4, is greater than permitted"
    record = _reads_as(tmp_path, _METHYLAMMONIUM, "C[NH3+]")
    assert record.mol.GetAtomWithIdx(1).GetFormalCharge() == 1


def test_open_babel_zwitterion_carboxylate_bonds_ar_take_the_stated_anion(tmp_path):
    # N.4 (charge 1) and a carboxylate written ar/ar with the -1 on OXT: was refused
    record = _reads_as(tmp_path, _GLYCINE, "[NH3+]CC(=O)[O-]")
    o, oxt = record.mol.GetAtomWithIdx(3), record.mol.GetAtomWithIdx(4)
    assert (o.GetFormalCharge(), oxt.GetFormalCharge()) == (0, -1)
    assert record.mol.GetBondBetweenAtoms(2, 4).GetBondType() == Chem.BondType.SINGLE  # the anion the file names
    assert record.mol.GetBondBetweenAtoms(2, 3).GetBondType() == Chem.BondType.DOUBLE


def test_open_babel_nitro_pyridinium_and_amidinium_read_as_written(tmp_path):
    # N.pl3 with four bonds (nitro), N.ar with an H, N.2 with two H: each charge only in UNITY_ATOM_ATTR
    _reads_as(tmp_path, _NITROMETHANE, "C[N+](=O)[O-]")
    _reads_as(tmp_path, _PYRIDINIUM, "c1cc[nH+]cc1")
    _reads_as(tmp_path, _ACETAMIDINIUM, "CC(N)=[NH2+]")


def test_open_babel_bace_amidinium_carboxylate_is_the_smiles_open_babel_was_given(tmp_path):
    # MoleculeNet BACE row 121 (3D from RDKit, written by Open Babel): was "Explicit valence for atom N..."
    _reads_as(tmp_path, _BACE_121, "Brc1cscc1C[C@H](NC1=[NH+]C(Cc2c1ccc(Cl)c2)(C)C)C(=O)[O-]")


def test_stated_charges_of_a_molecule_without_hydrogens_are_not_taken_for_guesses(tmp_path):
    # CF3NO2 has no H to give: its charges are the file's, not RDKit's guess (it guesses none
    # here, and its warning that charges needed estimating is not passed on as a note)
    _reads_as(tmp_path, _CF3NO2, "O=[N+]([O-])C(F)(F)F")


_CARBONATE = """@<TRIPOS>MOLECULE
carbonate
 4 3 0 0 0
SMALL
GASTEIGER

@<TRIPOS>ATOM
      1 O           1.7321   -0.0000    0.0000 O.co2   1  UNL1       -0.5371
      2 C           0.8660    0.5000    0.0000 C.2     1  UNL1        0.1112
      3 O           0.8660    1.5000    0.0000 O.co2   1  UNL1       -0.5371
      4 O          -0.0000   -0.0000    0.0000 O.co2   1  UNL1       -0.5371
@<TRIPOS>UNITY_ATOM_ATTR
1 1
charge -1
3 1
charge -1
@<TRIPOS>BOND
     1     1     2   ar
     2     2     3   ar
     3     2     4   ar
"""


def test_open_babel_carbonate_takes_its_two_stated_anions(tmp_path):
    """Open Babel writes a carbonate's three C-O bonds 'ar', two O.co2 stated -1 (found by a
    review: refused as "does not say which O is the anion", which it does)."""
    _reads_as(tmp_path, _CARBONATE, "O=C([O-])[O-]")


def test_carboxylate_bonds_ar_whose_anion_is_not_stated_are_refused_naming_the_atoms(tmp_path):
    # no O.co2 at -1 (as Open Babel writes an acid whose H it lost): which bond is single is not said
    text = _GLYCINE.replace("5 1\ncharge -1\n", "")
    reason = _refused(tmp_path, text)
    assert "O.co2 atoms O4, O5 are bonded 'ar' to C3 with charges [0, 0]" in reason, reason


def test_a_stated_charge_on_no_atom_or_against_atomexpr_is_refused_naming_its_line(tmp_path):
    text = _METHYLAMMONIUM.replace("@<TRIPOS>UNITY_ATOM_ATTR\n2 1\n", "@<TRIPOS>UNITY_ATOM_ATTR\n9 1\n")
    reason = _refused(tmp_path, text)
    assert f"line {_line(text, 'charge 1')}: " in reason and "atom 9, which is no atom of the record" in reason, reason
    text = _METHYLAMMONIUM.replace("2 1\ncharge 1\n", "2 2\nAtomExpr -1\ncharge 1\n")
    reason = _refused(tmp_path, text)
    assert f"line {_line(text, 'charge 1')}: " in reason and "the charge 1 and, as AtomExpr, -1" in reason, reason
    # the two spellings agreeing: read
    _reads_as(tmp_path, _METHYLAMMONIUM.replace("2 1\ncharge 1\n", "2 2\nAtomExpr 1\ncharge 1\n"), "C[NH3+]")
