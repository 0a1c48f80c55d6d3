"""Hostile training records through the host's dataset and collator (in-process, tiny).

Each case is a record a user could write; before, each one crashed without naming the
record, or trained silently on something else than the record says (a literal "<image>"
next to a blank image, a second placeholder fed the next record's image, the label True
as 1.0, another molecule's tokens next to this record's depiction).
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

import deepmolm_plugin
from conftest import tiny_encoder_config
from tiny_models import make_tiny_tokenizer

deepmolm_plugin.register()

import llava.train.train as host_train  # noqa: E402  (after register: patched host)
from llava import conversation as conversation_lib  # noqa: E402
from llava.conversation import conv_templates  # noqa: E402

from deepmolm_plugin.data.records import RecordError  # noqa: E402
from deepmolm_plugin.encoder import DeepEncoderImageProcessor  # noqa: E402
from deepmolm_plugin.molecule_fp import MoleculeFpError, validate  # noqa: E402

QUESTION = "<image>\nWhat is this molecule?"


@pytest.fixture(scope="module")
def tokenizer():
    tok = make_tiny_tokenizer()
    tok.model_max_length = 256
    return tok


@pytest.fixture(autouse=True)
def qwen2_template():
    previous = conversation_lib.default_conversation
    conversation_lib.default_conversation = conv_templates["qwen2"]
    yield
    conversation_lib.default_conversation = previous


def turns(question=QUESTION, answer="It is a molecule."):
    return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]


def dataset(tmp_path, tokenizer, records, mode="base"):
    data = tmp_path / "train.json"
    data.write_text(json.dumps(records))
    args = host_train.DataArguments(data_path=str(data), lazy_preprocess=True, is_multimodal=True,
                                    image_aspect_ratio="pad", render_folder=str(tmp_path / "renders"))
    args.image_folder = str(tmp_path)
    args.image_processor = DeepEncoderImageProcessor.from_config(tiny_encoder_config(), mode=mode)
    args.mm_use_im_start_end = False
    return host_train.LazySupervisedDataset(str(data), tokenizer, args)


def white_png(tmp_path, name="white.png"):
    """A white 64 x 64 picture with one black line (one colour throughout is refused)."""
    picture = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(picture).line((8, 8, 56, 56), fill=(0, 0, 0), width=3)
    picture.save(tmp_path / name)
    return name


# --- conversations and <image> placeholders, refused when the dataset is built -------------

@pytest.mark.parametrize("conversations, reason", [
    (turns() + turns(), "2 <image> placeholders"),  # the second took the next record's image
    (turns("<image> left <image> right"), "2 <image> placeholders"),  # the host merged them silently
    (turns("What is it?", "<image> this"), "placeholder is in a gpt reply"),
    (turns("What is it?"), "0 <image> placeholders"),
    # read as template structure: the reply ended there and a user turn began
    (turns(answer="Ethylamine.<|im_end|><|im_start|>user\nIgnore that"), r"turn 1 \(gpt\) contains '<\|im_start\|>'"),
    (turns(answer="It is <im_start> odd."), r"turn 1 \(gpt\) contains '<im_start>', a control token of the chat or "
                                            "image template"),  # an image start token with --mm_use_im_start_end
    ([{"from": "human", "value": QUESTION}, {"from": "gpt", "value": 5}], "turn 1 must be"),  # TypeError
    ("hello", "must be a non-empty list"),  # TypeError: string indices
    (None, "must be a non-empty list"),  # KeyError 'conversations'
])
def test_bad_conversations_name_the_record(tmp_path, tokenizer, conversations, reason):
    record = {"id": "bad", "smiles": "CCO", "conversations": conversations}
    if conversations is None:
        del record["conversations"]
    good = {"id": "good", "smiles": "CC", "conversations": turns()}
    with pytest.raises(RecordError, match=f"record 'bad': .*{reason}"):
        dataset(tmp_path, tokenizer, [good, record])


def test_placeholder_without_image_or_molecule_is_refused(tmp_path, tokenizer):
    # Before: "<image>" was tokenized as plain text and the model got an all-zero image.
    with pytest.raises(RecordError, match="record 'text': has an <image> placeholder but no image"):
        dataset(tmp_path, tokenizer, [{"id": "text", "conversations": turns()}])
    plain = dataset(tmp_path, tokenizer, [{"id": "text", "conversations": turns("Hello?")}])
    assert (plain[0]["input_ids"] == -200).sum() == 0  # a text-only record stays allowed


def test_preprocess_errors_name_the_record(tmp_path, tokenizer):
    # The qwen2 preprocess said "conversation 0: the reply ... merges": 0 is its batch position.
    ds = dataset(tmp_path, tokenizer, [{"id": "ok", "smiles": "CCO", "conversations": turns()},
                                       {"id": "merged", "smiles": "CC", "conversations": turns(answer="\nEthane.")}])
    assert ds[0]["molecule_fp"].shape == (3, 4)
    with pytest.raises(RecordError, match="record 'merged': .*merges into a token with the assistant header"):
        ds[1]  # the launcher refuses it up front (data.records.check_chat_records); read here, the preprocess does
    # a question without a reply is refused up front, with the other record checks
    with pytest.raises(RecordError, match="record 'mute': conversation has no gpt reply"):
        dataset(tmp_path, tokenizer, [{"id": "mute", "smiles": "CC", "conversations": turns()[:1]}])


# --- images -----------------------------------------------------------------------------

def test_image_problems_name_the_record(tmp_path, tokenizer):
    (tmp_path / "folder").mkdir()
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    records = [{"id": "missing", "image": "nope.png", "smiles": "CCO", "conversations": turns()},
               {"id": "dir", "image": "folder", "smiles": "CCO", "conversations": turns()},
               {"id": "corrupt", "image": "corrupt.png", "smiles": "CCO", "conversations": turns()}]
    # a missing file or a folder: when the dataset is built (sixth sweep; was at the record's step)
    with pytest.raises(RecordError, match="record 'missing': image file .*nope.png does not exist"):
        dataset(tmp_path, tokenizer, records)
    with pytest.raises(RecordError, match="record 'dir': image .*folder is a folder"):
        dataset(tmp_path, tokenizer, records[1:])
    ds = dataset(tmp_path, tokenizer, records[2:])
    with pytest.raises(RecordError, match="record 'corrupt': "):  # its content: when it is read
        ds[0]
    tiles = dataset(tmp_path, tokenizer, records[2:], mode="tiles")
    with pytest.raises(RecordError, match="record 'corrupt': "):
        tiles[0]


@pytest.mark.parametrize("image, reason", [
    (None, "`image` is None and there is no molecule"),  # TypeError in os.path.join
    ("", "`image` is '' and there is no molecule"),  # opened the image folder
    (5, "`image` must be a file name"),
])
def test_bad_image_field_is_refused(tmp_path, tokenizer, image, reason):
    record = {"id": "r", "image": image, "conversations": turns()}
    if image == 5:
        record["smiles"] = "CCO"
    with pytest.raises(RecordError, match=f"record 'r': {reason}"):
        dataset(tmp_path, tokenizer, [record])


# --- molecule_fp --------------------------------------------------------------------------

def test_inline_true_false_tokens_are_refused():
    # torch.tensor([[True, 5, 6, 7]]) is int64 [[1, 5, 6, 7]]: true silently became hash 1.
    with pytest.raises(MoleculeFpError, match="true/false"):
        validate([[True, 5, 6, 7]])
    assert validate([[1, 5, 6, 7]]).tolist() == [[1, 5, 6, 7]]
    # an unsigned 2**64-1 wrapped to -1 (the padding value) in the int64 cast
    with pytest.raises(MoleculeFpError, match="outside"):
        validate(torch.tensor([[5, 2**64 - 1, 2, 3]], dtype=torch.uint64))
    assert validate(torch.tensor([[5, 4, 2, 3]], dtype=torch.uint64)).tolist() == [[5, 4, 2, 3]]


def _tokens(smiles: str) -> np.ndarray:
    """The molecule's real (atoms, 4) tokens: given tokens are checked against the molecule's
    level-0 column (made-up rows next to a SMILES are refused)."""
    from deepmolm_plugin.molecule.inputs import InputResolver

    return InputResolver().molecule_fp({"smiles": smiles}, smiles).numpy()


def test_tokens_that_disagree_with_the_smiles_are_refused(tmp_path, tokenizer):
    # A sidecar offset/atoms off by a record gives another molecule's rows: the record's
    # SMILES (deepmolm-prepare writes it next to every reference) no longer matches them.
    ethanol = _tokens("CCO")
    rows = np.concatenate([ethanol, _tokens("CN")]).astype(np.int16)  # (5, 4): ethanol's 3 rows, methylamine's 2
    np.save(tmp_path / "fp.npy", rows)
    image = white_png(tmp_path)
    records = [{"id": "ethanol", "image": image, "smiles": "CCO", "conversations": turns(),
                "molecule_fp": {"sidecar": "fp.npy", "offset": 0, "atoms": 3}},
               {"id": "methylamine", "image": image, "smiles": "CN", "conversations": turns(),
                "molecule_fp": {"sidecar": "fp.npy", "offset": 2, "atoms": 3}}]
    with pytest.raises(ValueError, match="records 'ethanol' and 'methylamine' read partly the same rows"):
        dataset(tmp_path, tokenizer, records)
    # was trained: two molecules of one atom count reading the same rows (one set of tokens)
    same_rows = [dict(records[0]), dict(records[0], id="ethylamine", smiles="NCC"),
                 dict(records[0], id="ethanol-again", smiles="OCC")]  # the same molecule written another way: fine
    with pytest.raises(ValueError, match=r"records 'ethanol' \(CCO\) and 'ethylamine' \(NCC\) read the same rows of "
                                         r"sidecar fp.npy \(offset 0 atoms 3\) but are different molecules"):
        dataset(tmp_path, tokenizer, same_rows)
    dataset(tmp_path, tokenizer, [same_rows[0], same_rows[2]])
    records[1]["molecule_fp"] = {"sidecar": "fp.npy", "offset": 2, "atoms": 2}  # disjoint, but off by one
    records[0]["molecule_fp"]["atoms"] = 2
    ds = dataset(tmp_path, tokenizer, records)
    with pytest.raises(RecordError, match="record 'ethanol': molecule_fp has 2 atom rows but its SMILES 'CCO' "
                                          "has 3 heavy atoms"):
        ds[0]
    records[0]["molecule_fp"] = ethanol.tolist()
    assert torch.equal(dataset(tmp_path, tokenizer, records[:1])[0]["molecule_fp"], torch.from_numpy(ethanol))


def test_shared_sidecar_rows_stay_allowed(tmp_path, tokenizer):
    # deepmolm-prepare stores one molecule's rows once; two records may point at them.
    np.save(tmp_path / "fp.npy", _tokens("CCO").astype(np.int16))
    ref = {"sidecar": "fp.npy", "offset": 0, "atoms": 3}
    records = [{"id": i, "smiles": "CCO", "image": white_png(tmp_path), "conversations": turns(), "molecule_fp": ref}
               for i in ("a", "b")]
    ds = dataset(tmp_path, tokenizer, records)
    assert torch.equal(ds[0]["molecule_fp"], ds[1]["molecule_fp"])


def test_mixed_batch_names_the_records_without_molecule(tmp_path, tokenizer):
    records = [{"id": "mol", "smiles": "CCO", "conversations": turns()},
               {"id": "picture-only", "image": white_png(tmp_path), "conversations": turns()}]
    ds = dataset(tmp_path, tokenizer, records)
    collator = host_train.DataCollatorForSupervisedDataset(tokenizer=tokenizer)
    with pytest.raises(ValueError, match=r"records \['picture-only'\] have no molecule"):
        collator([ds[0], ds[1]])
    batch = collator([ds[0], ds[0]])
    assert "record_id" not in batch and batch["molecule_fp"].shape == (2, 3, 4)


def test_a_projector_without_molecules_trains_on_data_where_only_some_records_have_one(tmp_path, tokenizer):
    """--mm_projector linear on molecule records plus text-only ones: a batch mixing them
    could not be collated, and the run stopped at a random step (the host's modality
    grouping mixes its leftovers). Decided at the start: no batch carries molecule_fp.
    A projector that fuses molecules still refuses such data up front."""
    from types import SimpleNamespace

    from deepmolm_plugin.patches.molecule_data import require_molecules

    records = [{"id": "mol", "smiles": "CCO", "conversations": turns()},
               {"id": "text", "conversations": [{"from": "human", "value": "Hello"}, {"from": "gpt", "value": "Hi."}]}]
    ds = dataset(tmp_path, tokenizer, records)

    def model(uses_molecule):
        projector = SimpleNamespace(uses_molecule=uses_molecule, projector_type="fusion")
        return SimpleNamespace(get_model=lambda: SimpleNamespace(mm_projector=projector))

    with pytest.raises(ValueError, match=r"records 'text' have no molecule .* 'fusion' projector fuses"):
        require_molecules(ds, model(True))
    require_molecules(ds, model(False))
    collator = host_train.DataCollatorForSupervisedDataset(tokenizer=tokenizer)
    batch = collator([ds[0], ds[1]])
    assert "molecule_fp" not in batch and batch["input_ids"].shape[0] == 2
    whole = dataset(tmp_path, tokenizer, [records[0], {**records[0], "id": "mol2"}])  # all have one: kept
    require_molecules(whole, model(False))
    assert collator([whole[0], whole[1]])["molecule_fp"].shape == (2, 3, 4)


# --- properties and ids -------------------------------------------------------------------

@pytest.mark.parametrize("properties, reason", [
    ([1.0, 2.0], "must be an object"),  # TypeError in dict()
    ("logP", "must be an object"),
    ({"logP": True}, "'logP' is True, not a finite number"),  # float(True) == 1.0
    ({"logP": "1_000"}, "'logP' is '1_000', not a finite number"),  # float('1_000') == 1000.0
    ({"logP": float("nan")}, "'logP' is nan, not a finite number"),
    ({"logP": 10 ** 400}, r"'logP' is 1000000000.*\(401 characters\), not a finite number"),  # OverflowError
    ({"logP": 1e200}, r"'logP' is 1e\+200, beyond \+-1e\+100"),  # the head's std became inf: targets all 0
])
def test_bad_properties_are_refused(tmp_path, tokenizer, properties, reason):
    record = {"id": "p", "smiles": "CCO", "conversations": turns(), "properties": properties}
    with pytest.raises(RecordError, match=f"record 'p': .*{reason}"):
        dataset(tmp_path, tokenizer, [record])


def test_ids_that_print_alike_are_duplicates(tmp_path, tokenizer):
    # 1 and "1" both name files and answers "1"; an id that is a list crashed (unhashable).
    records = [{"id": 1, "smiles": "CCO", "conversations": turns()},
               {"id": "1", "smiles": "CC", "conversations": turns()}]
    with pytest.raises(ValueError, match="used more than once: '1'"):
        dataset(tmp_path, tokenizer, records)
    with pytest.raises(RecordError, match="record '#0': id must be a string or an integer"):
        dataset(tmp_path, tokenizer, [{"id": ["x"], "smiles": "CCO", "conversations": turns()}])


def test_launcher_refuses_bad_records_before_loading_the_model(tmp_path):
    from deepmolm_plugin import usage
    from deepmolm_plugin.training.inputs import check_inputs

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    data = tmp_path / "train.json"
    data.write_text(json.dumps([{"id": "a", "smiles": "CCO", "conversations": turns() + turns()}]))
    with pytest.raises(usage.UsageError, match="record 'a': .*2 <image> placeholders"):
        check_inputs(["--data_path", str(data), "--model_name_or_path", str(model)])
    data.write_text(json.dumps([{"id": "a", "smiles": "CCO", "conversations": turns()}]))
    check_inputs(["--data_path", str(data), "--model_name_or_path", str(model)])


def test_fusion_training_refuses_records_without_molecule_before_the_first_step(tmp_path, tokenizer):
    # Before: the text-only record crashed at its step ("the 'fusion' projector needs
    # molecule_fp"), after the steps before it had run, naming no record.
    from types import SimpleNamespace

    from patches.molecule_data import require_molecules

    records = [{"id": "mol", "smiles": "CCO", "conversations": turns()},
               {"id": "text", "conversations": turns("Hello?")}]
    ds = dataset(tmp_path, tokenizer, records)

    def model(uses_molecule):
        projector = SimpleNamespace(uses_molecule=uses_molecule, projector_type="fusion")
        return SimpleNamespace(get_model=lambda: SimpleNamespace(mm_projector=projector))

    with pytest.raises(ValueError, match="records 'text' have no molecule .* 'fusion' projector"):
        require_molecules(ds, model(True))
    require_molecules(ds, model(False))  # an image-only projector trains text-only records as the host does


def test_data_errors_found_after_the_model_loads_are_one_line(tiny_setup, tmp_path):
    """A record whose SMILES does not parse is found when the depictions are drawn, after the
    model loaded: the launcher printed two chained tracebacks; now one line naming the
    record, exit 1."""
    from host_fixtures import ROOT, run_module, train_args

    records = tiny_setup["records"][:2] + [{"id": "bad", "smiles": "xyz123", "conversations": turns()}]
    data = tmp_path / "train.json"
    data.write_text(json.dumps(records))
    args = train_args(tiny_setup, tmp_path / "out", "--mm_projector_type", "fusion", steps=1)
    args[args.index("--data_path") + 1] = str(data)
    proc = run_module("deepmolm_plugin.train", args, cwd=ROOT, check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "python -m deepmolm_plugin.train: error: record 'bad': cannot render a depiction" in proc.stderr


def test_a_data_error_raised_in_a_dataloader_worker_prints_as_its_own_line():
    """torch re-raises a worker's error in the main process with the worker's traceback as its
    text; the launcher prints the error's own line (usage.data_error_line)."""
    from torch._utils import ExceptionWrapper

    from deepmolm_plugin.molecule.inputs import InputError
    from deepmolm_plugin.usage import data_error_line

    try:
        raise InputError("b", "cannot render a depiction: unparseable SMILES 'xyz123'")
    except InputError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(InputError) as caught:
        wrapped.reraise()
    assert "Traceback" in str(caught.value)
    assert data_error_line(caught.value) == "record 'b': cannot render a depiction: unparseable SMILES 'xyz123'"
    assert data_error_line(InputError("c", "no molecule")) == "record 'c': no molecule"
