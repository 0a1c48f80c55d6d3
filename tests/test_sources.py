"""Dataset readers (3d-moit, vis-chebi20, chebi20, chebi20-mm) and the safe unpickler.

Every fixture file is written here, following the released files' layouts and quirks:
LMDB single files of pickled dicts with numpy arrays, a PubChemQC record whose canonical
SMILES does not follow its (permuted) atom order, doubled backslashes in ChEBI SMILES,
unquoted TSV descriptions with '"', blank optional CSV columns, missing images.
"""

import csv
import json
import os
import pickle
import zipfile

import lmdb
import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from deepmolm_plugin.data.prepare.schedule import FORMAT_MODULES, load_reader
from deepmolm_plugin.data.sources import READER_OPTIONS, READERS, SourceError, SourceItem, register_reader
from deepmolm_plugin.data.sources import chebi20, chebi20_mm, moit, vis_chebi20  # noqa: F401 (register)
from deepmolm_plugin.data.sources.moit import single_number
from deepmolm_plugin.data.sources.safe_pickle import safe_loads
from deepmolm_plugin.data.sources.vis_chebi20 import smiles_from_answer
from deepmolm_plugin.molecule import molecule_from_atoms


class Evil:
    """A pickled value whose loading would run a shell command (touches `marker`)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def read(fmt, path, **options):
    out = list(READERS[fmt](str(path), options))
    ids = [o.id for o in out]
    assert len(ids) == len(set(ids)), "ids must be unique"
    assert ids == [o.id for o in READERS[fmt](str(path), options)], "ids must be deterministic"
    return out


def items(out):
    return {o.id: o for o in out if isinstance(o, SourceItem)}


def errors(out):
    return {o.id: o for o in out if isinstance(o, SourceError)}


def embedded(smiles, seed=7):
    """(symbols incl. H, (n, 3) coordinates) of an RDKit conformer."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    return mol, [a.GetSymbol() for a in mol.GetAtoms()], mol.GetConformer().GetPositions()


def write_lmdb(path, records, protocol):
    path.parent.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(path), subdir=False, map_size=1 << 24, lock=False)
    with env.begin(write=True) as txn:
        for key, value in records.items():
            txn.put(key.encode(), value if isinstance(value, bytes) else pickle.dumps(value, protocol=protocol))
    env.close()


def write_json(path, entries):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries))


# ---------------------------------------------------------------------------------------
# safe_pickle


@pytest.mark.parametrize("protocol", range(6))
def test_safe_loads_round_trips_numpy_and_builtins(protocol):
    value = {"atoms": np.array(["C", "H"]), "coordinates": [np.arange(6.0).reshape(2, 3)[:, ::-1]],
             "f32": np.zeros((2, 3), np.float32), "scalar": np.float64(1.5), "s": np.str_("C"),
             "raw": b"\x00\xff", "set": {1, 2}, "c": 1 + 2j, "t": (1, "x")}
    # object and structured arrays are refused: tests/test_hostile_input.py
    out = safe_loads(pickle.dumps(value, protocol=protocol))
    assert out.keys() == value.keys()
    for key in value:
        assert np.array_equal(np.asarray(out[key]), np.asarray(value[key])), key


@pytest.mark.parametrize("protocol", range(6))
def test_safe_loads_refuses_code_and_never_runs_it(tmp_path, protocol):
    marker = tmp_path / "pwned"
    data = pickle.dumps({"atoms": ["C"], "x": Evil(marker)}, protocol=protocol)
    with pytest.raises(pickle.UnpicklingError, match=r"forbidden global (posix|os)\.system"):
        safe_loads(data)
    assert not marker.exists()
    for name in (b"builtins\neval", b"copyreg\n_reconstructor", b"subprocess\nPopen"):
        with pytest.raises(pickle.UnpicklingError, match="forbidden global"):
            safe_loads(b"c" + name + b"\n.")


def test_safe_loads_damaged_values_and_codecs():
    with pytest.raises(pickle.UnpicklingError):
        safe_loads(pickle.dumps({"a": np.ones(3)}, protocol=4)[:-9])
    # protocols 0-2 rebuild bytes with _codecs.encode(text, "latin1"); no other codec
    with pytest.raises(pickle.UnpicklingError, match="_codecs.encode"):
        safe_loads(b"\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00abX\x06\x00\x00\x00base64\x86R.")


# ---------------------------------------------------------------------------------------
# 3d-moit

ETHANOL, ACETONE, GLYCINE = "CCO", "CC(C)=O", "NCC(=O)O"


@pytest.fixture(scope="module")
def moit_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("moit") / "3d-mol-dataset"
    _, atoms, coords = embedded(ETHANOL)
    _, acetone_atoms, acetone_coords = embedded(ACETONE)
    marker = root.parent / "pwned"
    pubchem = {
        "702": {"cid": "702", "smiles": ETHANOL, "atoms": atoms, "coordinates": [coords, coords + 1.0],
                "description": "Ethanol is a primary alcohol.\n", "enriched_description": "Ethanol, enriched.\n"},
        "180": {"cid": "180", "smiles": ACETONE, "atoms": np.array(acetone_atoms),
                "coordinates": [acetone_coords], "description": "  \n", "enriched_description": "x"},
        "887": {"cid": "887", "smiles": "CO", "atoms": ["C", "O", "H", "H", "H", "H"],
                "coordinates": [np.zeros((5, 3))], "description": "Methanol.", "enriched_description": ""},
        "666": Evil(marker),
    }
    write_lmdb(root / "pubchem/train/3d-pubchem.lmdb", pubchem, protocol=5)
    write_lmdb(root / "pubchem/valid/3d-pubchem.lmdb", {"702": pubchem["702"]}, protocol=5)
    write_json(root / "pubchem/train/2d_computed_properties.json", [
        {"instruction": "What is the molecular weight?", "input": "702",
         "output": "The molecular weight is 46.07 g/mol.", "task": "Molecular Weight"},
        {"instruction": "TPSA?", "input": "702", "output": "The TPSA is 20.2 Å^2.",
         "task": "Topological Polar Surface Area"},
        {"instruction": "LogP?", "input": "999", "output": "-0.1", "task": "LogP"},
        {"instruction": "LogP?", "input": "887", "output": "-0.5", "task": "LogP"},
        {"instruction": "Boiling point?", "input": "702", "output": "78", "task": "Boiling Point"},
        {"instruction": "Complexity?", "input": "666", "output": "2.8", "task": "Complexity"},
    ])
    write_json(root / "pubchem/train/2d_descriptive_properties.json", [
        {"instruction": "Is it an alcohol?", "input": "702", "output": "Yes, a primary alcohol.", "task": "Description"},
        {"instruction": "What is it used for?", "input": "702", "output": "As a solvent.", "task": "Description"},
    ])

    # PubChemQC: permuted atoms, canonical SMILES that does not follow them; one record
    # with hydrogens, one without (3D-MoLM wrote them through RDKit's SDF supplier).
    mol, qc_atoms, qc_coords = embedded(GLYCINE, seed=3)
    order = np.random.default_rng(0).permutation(len(qc_atoms))
    heavy = [i for i in order if qc_atoms[i] != "H"]
    canonical = Chem.MolToSmiles(Chem.MolFromSmiles(GLYCINE))
    pubchemqc = {
        "0": {"cid": "750", "smi": canonical, "atoms": [qc_atoms[i] for i in order],
              "coordinates_list": [qc_coords[order]]},
        "1": {"cid": "750", "smi": canonical, "atoms": [qc_atoms[i] for i in heavy],
              "coordinates_list": [qc_coords[heavy]]},
    }
    write_lmdb(root / "pubchemqc/pubchemqc_database.lmdb", pubchemqc, protocol=4)
    write_json(root / "pubchemqc/train/3d_computed_properties_unit.json", [
        {"instruction": "HOMO?", "input": "0", "output": "The HOMO is -0.2351 Hartree.", "task": "HOMO"},
        {"instruction": "SCF?", "input": "1", "output": "-2.8 × 10^4 eV", "task": "SCF Energy"},
        {"instruction": "Gap?", "input": "7", "output": "0.3", "task": "HOMO-LUMO Gap"},
    ])
    return root, {"mol": mol, "order": order, "heavy": heavy, "coords": qc_coords, "marker": marker}


def test_moit_pubchem_items_and_errors(moit_root):
    root, _ = moit_root
    out = read("3d-moit", root, include="pubchem", splits=["train"])
    got, bad = items(out), errors(out)

    caption = got["pubchem-train-702-caption"]
    assert caption.task == "Caption" and caption.answer == "Ethanol is a primary alcohol."
    assert caption.instruction is None and caption.split == "train"
    spec = caption.molecule
    _, atoms, coords = embedded(ETHANOL)
    assert list(spec.atoms) == atoms and spec.smiles == ETHANOL
    np.testing.assert_allclose(spec.coordinates, coords)  # first conformer, not the second

    mw = got["pubchem-train-702-molecular-weight"]
    assert mw.properties == {"Molecular Weight": 46.07}
    assert mw.extra["source_instruction"] == "What is the molecular weight?" and mw.instruction is None
    assert got["pubchem-train-702-topological-polar-surface-area"].properties == {
        "Topological Polar Surface Area": 20.2}
    assert got["pubchem-train-702-description"].answer == "Yes, a primary alcohol."
    assert got["pubchem-train-702-description-2"].answer == "As a solvent."
    assert got["pubchem-train-702-description"].properties == {}

    assert bad["pubchem-train-180-caption"].stage == "answer"           # blank description
    assert bad["pubchem-train-887-caption"].stage == "atoms"            # 6 atoms, 5 rows
    assert "6 atoms but 5" in bad["pubchem-train-887-logp"].reason
    assert bad["pubchem-train-999-logp"].stage == "lookup"              # CID not in the LMDB
    assert bad["pubchem-train-2d_computed_properties#4"].stage == "schema"  # unknown task
    assert bad["pubchem-train-666-caption"].stage == "read"             # malicious value
    assert "forbidden global" in bad["pubchem-train-666-complexity"].reason
    assert not moit_root[1]["marker"].exists()
    assert len(got) + len(bad) == len(out) == 12  # 4 captions + 6 + 2 instruction entries


def test_moit_pubchemqc_keeps_atoms_and_maps_the_canonical_smiles(moit_root):
    root, truth = moit_root
    out = read("3d-moit", root, include="pubchemqc")
    got, bad = items(out), errors(out)
    assert bad["pubchemqc-train-7-homo-lumo-gap"].stage == "lookup"
    # "-0.2351 Hartree": the label is in eV, HOMO's unit, as evaluation reads the answer
    assert got["pubchemqc-train-0-homo"].properties == {"HOMO": pytest.approx(-0.2351 * 27.211386245988)}
    assert got["pubchemqc-train-1-scf-energy"].properties == {"SCF Energy": -28000.0}  # as the report reads it
    assert got["pubchemqc-train-0-homo"].extra == {
        "source": "pubchemqc", "source_instruction": "HOMO?", "lmdb_key": "0", "cid": "750"}

    reference = Chem.MolToSmiles(Chem.MolFromSmiles(GLYCINE))
    for key, index in (("0", truth["order"]), ("1", truth["heavy"])):
        item = got[f"pubchemqc-train-{key}-" + ("homo" if key == "0" else "scf-energy")]
        spec = item.molecule
        original = truth["mol"]
        # the spec carries the source's atoms + coordinates as they are (the truth) ...
        assert list(spec.atoms) == [original.GetAtomWithIdx(int(i)).GetSymbol() for i in index]
        np.testing.assert_allclose(spec.coordinates, truth["coords"][index])
        assert spec.smiles == reference
        smiles_order = [a.GetSymbol() for a in Chem.AddHs(Chem.MolFromSmiles(spec.smiles)).GetAtoms()]
        if key == "0":
            assert smiles_order != list(spec.atoms)  # the quirk: SMILES order != atom order
        # ... and the engine's builder accepts the canonical SMILES, mapped onto them
        record = molecule_from_atoms(spec.atoms, spec.coordinates, item.id, smiles=spec.smiles)
        mol = record.mol
        assert [a.GetSymbol() for a in mol.GetAtoms()] == list(spec.atoms)
        np.testing.assert_allclose(mol.GetConformer().GetPositions(), spec.coordinates)
        assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == reference
        position = {int(old): new for new, old in enumerate(index)}
        for bond in original.GetBonds():  # every original bond joins the permuted atoms
            a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
            if a in position and b in position:
                mapped = mol.GetBondBetweenAtoms(position[a], position[b])
                assert mapped is not None
                if key == "0":  # without hydrogens the two acid oxygens are graph-equivalent
                    assert mapped.GetBondType() == bond.GetBondType()


def test_moit_options(moit_root):
    root, _ = moit_root
    out = read("3d-moit", root, tasks=["Caption"], splits="valid", caption_field="enriched_description")
    assert [(o.id, o.answer) for o in out] == [("pubchem-valid-702-caption", "Ethanol, enriched.")]
    everything = read("3d-moit", root)
    assert {o.id.split("-")[0] for o in everything} == {"pubchem", "pubchemqc"}
    assert len(everything) == 12 + 1 + 3
    only_qc_tasks = read("3d-moit", root, tasks=["HOMO"])
    assert [o.id for o in only_qc_tasks] == ["pubchemqc-train-0-homo"]
    with pytest.raises(ValueError, match="unknown tasks"):
        read("3d-moit", root, tasks=["Melting Point"])
    with pytest.raises(FileNotFoundError, match="test"):
        read("3d-moit", root, splits=["test"])
    with pytest.raises(FileNotFoundError, match="pubchem"):
        read("3d-moit", root / "pubchem")
    assert read("3d-moit", root.parent, tasks=["Caption"], splits=["valid"])  # parent of the root works


def test_single_number():
    assert single_number("The molecular weight is 180.16 g/mol.", "Molecular Weight") == 180.16
    assert single_number("-0.2351", "HOMO") == -0.2351 and single_number("1e-3 eV", "HOMO") == 0.001
    assert single_number("TPSA: 63.6 Å^2", "TPSA") == 63.6
    assert single_number("−2.5 × 10^4 eV", "SCF Energy") == -25000.0
    assert single_number("between 1 and 2", "LogP") is None and single_number("no number", "LogP") is None
    assert single_number("HOMO-LUMO gap of C10H12 is 5.2", "HOMO-LUMO Gap") == 5.2
    # the label is the value evaluation scores: in the property's unit
    assert single_number("-0.25 Hartree", "HOMO") == pytest.approx(-0.25 * 27.211386245988)
    assert single_number("-0.25 Hartree", "SCF Energy") == -0.25  # "as in the data": not converted


# ---------------------------------------------------------------------------------------
# vis-chebi20


def vis_record(task, image, prompt, answer):
    return {"messages": [{"role": "user", "content": f"<image>{prompt}"},
                         {"role": "assistant", "content": answer}],
            "images": [image], "task_name": task}


@pytest.fixture
def vis_root(tmp_path):
    (tmp_path / "imgs").mkdir()
    for name in ("1.png", "2.png", "4.png"):  # three pictures: a picture is its bytes
        (tmp_path / "imgs" / name).write_bytes(b"\x89PNG fake " + name.encode())
    write_json(tmp_path / "train.json", [
        vis_record("struct_recog", "imgs/1.png", "Which groups are highlighted?", "A carboxylic acid."),
        vis_record("struct_cap", "imgs/1.png", "Caption the structure.", "A two-carbon acid."),
        vis_record("general_desp", "imgs/1.png", "Describe it.", "Acetic acid is ..."),
        vis_record("trans_iupac", "imgs/1.png", "IUPAC name?", "acetic acid"),
        vis_record("trans_smiles", "imgs/1.png", "SMILES?", "The SMILES is CC(=O)O."),
        vis_record("general_desp", "imgs/2.png", "Describe it.", "Unknown molecule."),
        vis_record("trans_smiles", "imgs/3.png", "SMILES?", "The SMILES is CCO."),
        vis_record("trans_smiles", "imgs/4.png", "SMILES?", "The SMILES is F/C=C\\\\F"),
        vis_record("struct_recog", "imgs/1.png", "Which rings?", "None."),
        vis_record("ocr", "imgs/1.png", "Read it.", "text"),
        vis_record("trans_smiles", "../outside.png", "SMILES?", "The SMILES is C."),
    ])
    (tmp_path.parent / "outside.png").write_bytes(b"\x89PNG not ours")
    write_json(tmp_path / "test.json", [
        vis_record("trans_iupac", "imgs/4.png", "IUPAC name?", "(Z)-1,2-difluoroethene"),
    ])
    return tmp_path


def test_vis_chebi20(vis_root):
    out = read("vis-chebi20", vis_root)
    got, bad = items(out), errors(out)
    assert {got[f"vis-chebi20-train-1-{t}"].task for t in
            ("recognition", "caption", "description", "iupac_naming", "smiles")} == {
        "recognition", "caption", "description", "iupac_naming", "smiles"}
    recog = got["vis-chebi20-train-1-recognition"]
    assert recog.molecule.smiles == "CC(=O)O" and recog.extra["smiles_from"].startswith("trans_smiles")
    assert recog.image == str(vis_root / "imgs/1.png") and recog.instruction is None
    assert recog.extra["source_instruction"] == "Which groups are highlighted?"
    assert got["vis-chebi20-train-1-recognition-2"].answer == "None."
    assert got["vis-chebi20-train-1-smiles"].answer == "The SMILES is CC(=O)O."
    assert got["vis-chebi20-train-4-smiles"].molecule.smiles == "F/C=C\\F"  # backslashes repaired
    assert got["vis-chebi20-train-4-smiles"].answer == "The SMILES is F/C=C\\F"
    assert got["vis-chebi20-test-4-iupac_naming"].molecule.smiles == "F/C=C\\F"  # from train.json
    assert bad["vis-chebi20-train-2-description"].stage == "molecule"
    assert bad["vis-chebi20-train-3-smiles"].stage == "image"
    assert bad["vis-chebi20-train-1-unknown"].stage == "schema"
    assert bad["vis-chebi20-train-outside-smiles"].stage == "image"  # never outside the folder
    assert len(out) == 12

    kept = read("vis-chebi20", vis_root, splits="train", tasks="caption", source_instructions=True)
    assert kept[0].id == "vis-chebi20-train-1-caption" and kept[0].instruction == "Caption the structure."
    assert [type(o) for o in kept] == [SourceItem, SourceError]  # an unknown task is never filtered away
    # a split vis-chebi20 does not have is named as such (was FileNotFoundError "no ['valid'] in ...")
    with pytest.raises(ValueError, match=r"no split 'valid'; vis-chebi20's splits are train \(train\.json\), "
                                         r"test \(test\.json\)"):
        read("vis-chebi20", vis_root, splits=["valid"])


def test_smiles_from_answer():
    assert smiles_from_answer("The SMILES is C1=CC=CC=C1.") == "C1=CC=CC=C1"
    assert smiles_from_answer("The SMILES of the molecule is: [Na+].[Cl-]") == "[Na+].[Cl-]"
    assert smiles_from_answer("CCO") == "CCO"
    assert smiles_from_answer("It is ethanol, I think") is None


# ---------------------------------------------------------------------------------------
# chebi20 (MolT5 TSV)


def test_chebi20_tsv(tmp_path):
    lines = ["CID\tSMILES\tdescription",
             '9\tF/C=C\\\\F\tThe molecule is a "difluoroethene" (cis).',
             "10\tCCO\tEthanol.\textra",
             "11\t \tNo SMILES.",
             "",
             "12\tCO\t",
             "9\tF/C=C\\\\F\tSame CID again."]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "validation.txt").write_text("CID\tSMILES\tdescription\r\n5\tC\tMethane.\r\n")
    out = read("chebi20", tmp_path)
    got, bad = items(out), errors(out)
    first = got["chebi20-train-9"]
    assert first.molecule.smiles == "F/C=C\\F" and first.task == "description"
    assert Chem.MolToSmiles(Chem.MolFromSmiles(first.molecule.smiles)) == "F/C=C\\F"
    assert first.answer == 'The molecule is a "difluoroethene" (cis).'
    assert got["chebi20-train-9-2"].answer == "Same CID again."
    assert got["chebi20-valid-5"].split == "valid" and got["chebi20-valid-5"].answer == "Methane."
    assert "4 tab-separated fields, expected 3: a 4th field 'extra'" in bad["chebi20-train-10"].reason  # by its CID
    assert "blank SMILES" in bad["chebi20-train-11"].reason
    assert "blank description" in bad["chebi20-train-12"].reason
    assert len(out) == 6
    (tmp_path / "test.txt").write_text("cid,smiles\n")
    with pytest.raises(ValueError, match="header"):
        read("chebi20", tmp_path, splits=["test"])


# ---------------------------------------------------------------------------------------
# chebi20-mm (CSV + image.zip)


def test_chebi20_mm(tmp_path):
    header = chebi20_mm.HEADER
    rows = [
        ["9", "F/C=C\\\\F", 'A "cis" alkene, with commas.', "0", "1.3", "InChI=1S/x", "(Z)-1,2-difluoroethene", "[F][C]"],
        ["702", "CCO", "Ethanol.", "20.2", "", "InChI=1S/y", "", ""],
        ["703", "CC", "Ethane.", "n/a", "1.8", "", "ethane", ""],
        ["704", "", "Nothing.", "0", "", "", "", ""],
        ["706", "C", "Methane.", "", "", "", "", ""],
    ]
    with open(tmp_path / "train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
        handle.write("705,C,short row\n")
    with zipfile.ZipFile(tmp_path / "image.zip", "w") as archive:
        archive.writestr("image/CID_9.png", b"\x89PNG nine")
        archive.writestr("../evil/CID_702.png", b"\x89PNG seven")

    cache = tmp_path / ".cache"  # hidden: not an input file
    out = read("chebi20-mm", tmp_path, image_dir=str(cache))
    got, bad = items(out), errors(out)
    desc = got["chebi20-mm-train-9-description"]
    assert desc.molecule.smiles == "F/C=C\\F" and desc.answer == 'A "cis" alkene, with commas.'
    assert desc.image == str(cache / "CID_9.png") and (cache / "CID_9.png").read_bytes() == b"\x89PNG nine"
    assert desc.extra == {"cid": "9", "inchi": "InChI=1S/x", "selfies": "[F][C]"}
    assert got["chebi20-mm-train-9-iupac-naming"].answer == "(Z)-1,2-difluoroethene"
    assert got["chebi20-mm-train-9-logp"].properties == {"LogP": 1.3}
    assert got["chebi20-mm-train-9-topological-polar-surface-area"].properties == {
        "Topological Polar Surface Area": 0.0}
    # blank xlogp / iupacname / SELFIES: no such item, no error
    assert not any(k.startswith("chebi20-mm-train-702-") and k.endswith(("logp", "naming")) for k in got)
    assert got["chebi20-mm-train-702-description"].image == str(cache / "CID_702.png")  # zip path ignored
    assert not (tmp_path / "evil").exists()
    assert got["chebi20-mm-train-703-description"].image is None
    assert "rendered" in got["chebi20-mm-train-703-description"].extra["image_note"]
    assert "is not a number in plain decimals" in bad["chebi20-mm-train-703-topological-polar-surface-area"].reason
    assert "blank SMILES" in bad["chebi20-mm-train-704"].reason
    assert "blank polararea" in bad["chebi20-mm-train-706-topological-polar-surface-area"].reason
    assert "3 fields, expected 8: no polararea" in bad["chebi20-mm-train-705"].reason  # by its CID
    assert len(got) == 10 and len(bad) == 4

    no_images = read("chebi20-mm", tmp_path, tasks="description")
    assert [o.image for o in no_images if isinstance(o, SourceItem)] == [None] * 4


def test_readers_registered():
    assert {"3d-moit", "vis-chebi20", "chebi20", "chebi20-mm"} <= set(READERS)


@pytest.mark.parametrize("fmt", sorted(FORMAT_MODULES))
def test_every_reader_refuses_unknown_options_before_reading(fmt, tmp_path):
    reader = load_reader(fmt)
    valid = READER_OPTIONS[fmt]
    assert valid, f"{fmt} declares no options"
    # the input does not exist: a reader that looked at it first would fail differently
    with pytest.raises(ValueError, match=rf"^{fmt}: unknown option\(s\) \['splt'\]; it takes ") as caught:
        next(iter(reader(str(tmp_path / "missing"), {"splt": "train"})))
    assert all(repr(name) in str(caught.value) for name in valid), str(caught.value)


def test_a_reader_must_declare_its_options():
    with pytest.raises(TypeError, match="options"):
        register_reader("test-undeclared")
