"""Hostile training records and images, second sweep (in-process, tiny).

Each case once trained silently on something else than the record says: the host reads
images with PIL's `convert("RGB")` (a 16-bit grey depiction became all white, a black
drawing on a transparent background all black, an animation its first frame), a prompt
longer than --model_max_length left no answer token (the record trained nothing), a
conversation starting with a gpt turn lost it, an empty reply taught the model to stop.
Now each is an error naming the record, before the model loads where the record alone
tells.
"""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from deepmolm_plugin.data.records import RecordError
from deepmolm_plugin.encoder.image_processor import load_image
# The dataset built through the patched host, its tokenizer and the qwen2 template.
from test_hostile_training import dataset, qwen2_template, tokenizer, turns  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def record(rid, image, **fields):
    return {"id": rid, "image": image, "smiles": "CCO", "conversations": turns(), **fields}


def save(tmp_path, name, picture, **options):
    picture.save(tmp_path / name, **options)
    return name


# --- image modes the host's convert("RGB") mangles ----------------------------------------------

def grey16(tmp_path):
    pixels = np.full((64, 64), 60000, np.uint16)
    pixels[20:40, 20:40] = 1000  # a dark square on a near-white background
    return save(tmp_path, "grey16.png", Image.fromarray(pixels))


def black_on_transparent(tmp_path):
    picture = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    picture.paste((0, 0, 0, 255), (20, 20, 40, 40))
    return save(tmp_path, "transparent.png", picture)


def transparent_palette(tmp_path):
    picture = Image.new("P", (64, 64), 0)
    picture.putpalette([0, 0, 0, 255, 0, 0])
    picture.paste(1, (20, 20, 40, 40))
    return save(tmp_path, "palette.png", picture, transparency=0)


def float_grey(tmp_path):
    return save(tmp_path, "float.tif", Image.fromarray(np.full((64, 64), 0.9, np.float32)))


def animation(tmp_path):
    frames = [Image.new("RGB", (64, 64), c) for c in ("red", "green")]
    return save(tmp_path, "anim.gif", frames[0], save_all=True, append_images=frames[1:])


@pytest.mark.parametrize("make, reason", [
    (grey16, r"mode I;16\): .*clips 16-bit values at 255"),  # was all white
    (black_on_transparent, r"mode RGBA, transparent\): .*keeps the colour under transparent pixels"),  # all black
    (transparent_palette, r"mode P, transparent\)"),
    (float_grey, r"mode 'F' \(32-bit int / float pixels\)"),  # was all black
    (animation, "has 2 frames"),  # was its first frame
])
@pytest.mark.parametrize("mode", ["base", "tiles"])
def test_images_the_host_would_read_as_another_picture_are_refused(tmp_path, tokenizer, make, reason, mode):
    name = make(tmp_path)
    host_reads = np.asarray(Image.open(tmp_path / name).convert("RGB"))
    assert len(np.unique(host_reads)) == 1 or make is animation or make is transparent_palette  # the mangling
    ds = dataset(tmp_path, tokenizer, [record("bad", name)], mode=mode)
    with pytest.raises(RecordError, match=f"record 'bad': ValueError: image .*{name}.*{reason}"):
        ds[0]


def test_images_the_host_reads_alike_still_train(tmp_path, tokenizer):
    opaque = Image.new("RGBA", (64, 64), (255, 255, 255, 255))
    opaque.paste((0, 0, 0, 255), (20, 20, 40, 40))
    on_white = opaque.copy()
    on_white.paste((255, 255, 255, 0), (0, 0, 10, 10))  # transparent, white underneath: same picture
    names = [save(tmp_path, "opaque.png", opaque), save(tmp_path, "on_white.png", on_white),
             save(tmp_path, "bits.png", opaque.convert("1")), save(tmp_path, "cmyk.jpg", opaque.convert("CMYK"))]
    ds = dataset(tmp_path, tokenizer, [record(f"r{k}", name) for k, name in enumerate(names)])
    for k, name in enumerate(names):
        host = np.asarray(Image.open(tmp_path / name).convert("RGB"))
        assert np.array_equal(host, np.asarray(load_image(str(tmp_path / name))))
        assert ds[k]["image"].shape == (3, 128, 128)


def test_zero_byte_and_oversized_images_name_the_record(tmp_path, tokenizer, monkeypatch):
    (tmp_path / "empty.png").write_bytes(b"")
    big = Image.new("RGB", (100, 100), "white")
    big.putpixel((0, 0), (0, 0, 0))  # shows something: one colour throughout is refused
    save(tmp_path, "big.png", big)
    ds = dataset(tmp_path, tokenizer, [record("empty", "empty.png"), record("big", "big.png")])
    with pytest.raises(RecordError, match=r"record 'empty': image \S*empty\.png: UnidentifiedImageError: cannot identify image file"):
        ds[0]
    assert ds[1]["image"].shape == (3, 128, 128)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 10,000 px is now a decompression bomb
    with pytest.raises(RecordError, match="record 'big': DecompressionBombError: Image size"):
        ds[1]


# --- conversations ----------------------------------------------------------------------------

@pytest.mark.parametrize("conversations, reason", [
    # the host's v1 preprocess dropped a leading gpt turn silently; qwen2's refused it when read
    ([{"from": "gpt", "value": "Hello."}] + turns(), "turn 0 is from 'gpt': turns must alternate"),
    (turns() + [{"from": "gpt", "value": "More."}], "turn 2 is from 'gpt'"),
    (turns(answer=""), r"turn 1 \(gpt\) is empty or only white space"),  # trained to stop at once
    (turns(answer="  \n"), r"turn 1 \(gpt\) is empty"),  # qwen2 trained on the spaces
    (turns(answer="\u00a0\u200b\ufeff"), r"turn 1 \(gpt\) is empty"),  # zero-width: str.strip() keeps them
    ([{"from": "system", "value": "Be brief."}] + turns(), "turn 0 must be"),
    # was trained, a question left open at the end
    (turns() + [{"from": "human", "value": "And?"}], r"ends with a human turn \(turn 2\) that no gpt reply answers"),
])
def test_conversations_out_of_turn_or_blank_are_refused_before_training(tmp_path, tokenizer, conversations, reason):
    with pytest.raises(RecordError, match=f"record 'bad': .*{reason}"):
        dataset(tmp_path, tokenizer, [{"id": "bad", "smiles": "CCO", "conversations": conversations}])


def test_launcher_refuses_a_conversation_out_of_turn_before_loading_the_model(tmp_path):
    import json

    from deepmolm_plugin import usage
    from deepmolm_plugin.training.inputs import check_inputs

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    data = tmp_path / "train.json"
    data.write_text(json.dumps([{"id": "a", "smiles": "CCO", "conversations": turns()[::-1]}]))
    with pytest.raises(usage.UsageError, match="record 'a': conversation turn 0 is from 'gpt'"):
        check_inputs(["--data_path", str(data), "--model_name_or_path", str(tmp_path / "model")])


# --- --model_max_length cutting every answer token ----------------------------------------------

def test_a_prompt_longer_than_model_max_length_is_refused(tmp_path, tokenizer, monkeypatch):
    answer = "It is ethanol."
    ds = dataset(tmp_path, tokenizer, [record("long", None, conversations=turns(QUESTION_LONG, answer)),
                                       {"id": "ok", "smiles": "CCO", "conversations": turns(answer=answer)}])
    # Before: labels all IGNORE_INDEX, the record added nothing to the loss (alone in a batch: NaN).
    with pytest.raises(RecordError, match="record 'long': no answer token is left within --model_max_length 256"):
        ds[0]
    item = ds[1]
    first = int((item["labels"] != -100).nonzero()[0])
    length = len(item["input_ids"])
    # The text keeps its answer, but the image's 7 positions (tiny encoder: 2x2 tokens) push
    # it past the cut the model makes after splicing them in.
    monkeypatch.setattr(tokenizer, "model_max_length", first + 3)
    with pytest.raises(RecordError, match=rf"record 'ok': its first answer token comes after {first - 1} text tokens "
                                          r"and 7 image positions, past --model_max_length"):
        ds[1]
    # The first answer token fits, the rest is cut: the host's ordinary truncation, which trains.
    monkeypatch.setattr(tokenizer, "model_max_length", first + 7)
    assert len(ds[1]["input_ids"]) + 6 > first + 7


QUESTION_LONG = "<image>\n" + "Tell me about this molecule. " * 60


def test_an_image_in_a_later_turn_cut_by_model_max_length_is_refused(tmp_path, tokenizer, monkeypatch):
    # was: the placeholder was cut with the text (or the image's positions by the model), and
    # the record trained its first answer on text alone, without a word
    chat = [{"from": "human", "value": "Hello, what can you do?"}, {"from": "gpt", "value": "I describe molecules."},
            {"from": "human", "value": "<image>\nWhat is this molecule?"}, {"from": "gpt", "value": "Ethanol."}]
    ds = dataset(tmp_path, tokenizer, [{"id": "chat", "smiles": "CCO", "conversations": chat}])
    ids, labels = ds[0]["input_ids"], ds[0]["labels"]
    at = int((ids == -200).nonzero()[0])
    answer = at + int((labels[at:] != -100).nonzero()[0])  # the first answer token after the image
    monkeypatch.setattr(tokenizer, "model_max_length", at - 1)
    with pytest.raises(RecordError, match=f"record 'chat': its <image> placeholder lies past --model_max_length {at - 1}"):
        ds[0]
    monkeypatch.setattr(tokenizer, "model_max_length", at + 3)  # the tiny encoder's 7 positions do not fit
    with pytest.raises(RecordError, match=f"record 'chat': its image takes positions {at}-{at + 6}, past"):
        ds[0]
    # the image fits but no answer after it does (sixth sweep; was trained on the first reply alone)
    monkeypatch.setattr(tokenizer, "model_max_length", answer + 6)  # the image's 7 positions: answer at answer + 6
    with pytest.raises(RecordError, match=f"record 'chat': no answer token after its image is left within "
                                          f"--model_max_length {answer + 6}"):
        ds[0]
    monkeypatch.setattr(tokenizer, "model_max_length", answer + 7)  # an answer token fits: it trains
    assert (ds[0]["labels"][at:] != -100).any()


def test_tiles_mode_counts_the_tiles_positions(tmp_path, tokenizer, monkeypatch):
    wide = Image.new("RGB", (400, 100), "white")
    wide.putpixel((0, 0), (0, 0, 0))  # shows something: one colour throughout is refused
    name = save(tmp_path, "wide.png", wide)  # tiny encoder: 64 px tiles
    ds = dataset(tmp_path, tokenizer, [record("wide", name)], mode="tiles")
    item = ds[0]
    first = int((item["labels"] != -100).nonzero()[0])
    positions = ds.data_args.image_processor.num_llm_positions(str(tmp_path / name))
    assert positions > 7 and item["tile_grid"] is not None
    monkeypatch.setattr(tokenizer, "model_max_length", first + positions - 1)
    with pytest.raises(RecordError, match=f"and {positions} image positions"):
        ds[0]
    monkeypatch.setattr(tokenizer, "model_max_length", first + positions)
    assert torch.is_tensor(ds[0]["tile_images"])


# --- a --version template that does not fit a Qwen2 tokenizer -----------------------------------

@pytest.mark.parametrize("version", [None, "v1", "chatml_direct", "no-such-template"])
def test_a_template_that_masks_every_label_is_refused_by_the_launcher(tmp_path, capsys, version):
    # Before: the host's vicuna_v1 (what the default --version v0 trains with) and the others
    # miscount Qwen2 tokens, mask every label of every record ("WARNING: tokenization
    # mismatch ... (ignored)") and the run trained with loss 0.
    import json

    from deepmolm_plugin.train import main
    from deepmolm_plugin.training.inputs import check_template

    model = tmp_path / "qwen2"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    data = tmp_path / "train.json"
    data.write_text(json.dumps([{"id": "a", "smiles": "CCO", "conversations": turns()}]))
    argv = ["--data_path", str(data), "--model_name_or_path", str(model), "--output_dir", str(tmp_path / "out")]
    argv += ["--version", version] if version else []
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert (f"train: error: --version {version or 'v0'} does not fit the 'qwen2' model's tokenizer"
            in capsys.readouterr().err)
    for fitting in ("qwen2", "plain"):
        check_template(["--model_name_or_path", str(model), "--version", fitting])
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    check_template(["--model_name_or_path", str(model), "--version", "v1"])  # the host's own models keep theirs


def test_a_symbolic_link_loop_is_named_as_such(tmp_path, tokenizer):
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    with pytest.raises(RecordError, match="record 'loop': image .*loop.png is a symbolic link to nothing"):
        dataset(tmp_path, tokenizer, [record("loop", "loop.png")])  # was: "does not exist", beside a listing showing it


def test_a_checked_image_is_not_decoded_again_each_epoch_but_a_changed_one_is(tmp_path, tokenizer):
    import os

    from deepmolm_plugin.encoder import image_processor

    opaque = Image.new("RGBA", (64, 64), (255, 255, 255, 255))  # a mode the check decodes: alpha
    opaque.paste((0, 0, 0, 255), (20, 20, 40, 40))
    name = save(tmp_path, "drawing.png", opaque)
    ds = dataset(tmp_path, tokenizer, [record("a", name)])
    before = image_processor._host_conversion_verdict.cache_info()
    ds[0], ds[0], ds[0]  # three epochs
    after = image_processor._host_conversion_verdict.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 2)
    black_on_transparent(tmp_path)  # the file is replaced by one the host misreads
    os.replace(tmp_path / "transparent.png", tmp_path / name)
    os.utime(tmp_path / name, ns=(1, 1))  # a new mtime even on coarse-clock file systems
    with pytest.raises(RecordError, match="record 'a': ValueError: .*keeps the colour under transparent pixels"):
        ds[0]


@pytest.mark.parametrize("make", [grey16, black_on_transparent])
def test_chat_and_model_vqa_refuse_images_the_host_would_read_as_another_picture(tmp_path, make):
    from deepmolm_plugin import usage
    from deepmolm_plugin.cli import readable_image
    from deepmolm_plugin.eval.model_vqa import QuestionError, check_image

    path = str(tmp_path / make(tmp_path))
    load_image(path)  # our own loading reads it correctly: only the host's would not
    with pytest.raises(usage.UsageError, match="--image-file .*the host reads it with PIL's convert"):
        readable_image(path, "--image-file")
    with pytest.raises(QuestionError, match="the host reads it with PIL's convert"):
        check_image("q1", path, SimpleNamespace())


def test_a_json_lines_records_file_gets_a_hint(tmp_path):
    from deepmolm_plugin import usage

    lines = tmp_path / "train.jsonl"
    lines.write_text('{"id": "a"}\n{"id": "b"}\n')
    with pytest.raises(usage.UsageError, match=r"not JSON \(Extra data: line 2 .*\); JSON lines\? it must be one JSON "
                                               r"list of records: \[\{\.\.\.\}, \{\.\.\.\}\]"):
        usage.json_list_file(lines, "--data_path")
    broken = tmp_path / "broken.json"
    broken.write_text('[{"id": "a"}, {"id": ')
    with pytest.raises(usage.UsageError) as error:
        usage.json_list_file(broken, "--data_path")
    assert "JSON lines?" not in str(error.value)  # only where a second value starts a line


def test_chat_and_model_vqa_refuse_an_image_the_model_cannot_view_before_it_loads(tmp_path):
    # Was: in tiles mode (or without the host's pad squaring) a 1 x 3000 px image passed the
    # checks made before the model loads, then failed with a traceback after.
    from conftest import tiny_encoder_config
    from deepmolm_plugin import usage
    from deepmolm_plugin.cli import readable_image
    from deepmolm_plugin.eval.model_vqa import QuestionError, check_image

    path = str(tmp_path / "thin.png")
    thin = Image.new("RGB", (1, 3000), "white")
    thin.putpixel((0, 0), (0, 0, 0))  # shows something: one colour throughout is refused
    thin.save(path)
    encoder = tiny_encoder_config().to_dict()
    tiles = SimpleNamespace(image_mode="tiles", image_aspect_ratio="pad", deepencoder_config=encoder)
    square = SimpleNamespace(image_mode="base", image_aspect_ratio="square", deepencoder_config=encoder)
    for config in (tiles, square):
        with pytest.raises(usage.UsageError, match="--image-file .*thin.png: image is 1x3000 px: fitted into"):
            readable_image(path, "--image-file", config)
        with pytest.raises(QuestionError, match="question 'q': image .*thin.png: image is 1x3000 px"):
            check_image("q", path, config)
    check_image("q", path, SimpleNamespace(image_mode="base", image_aspect_ratio="pad", deepencoder_config=encoder))


def test_launcher_refuses_a_smiles_that_is_not_text_before_loading_the_model(tmp_path):
    # was: "SMILES must be a string" when the record was read, after the model had loaded (exit 1)
    import json

    from deepmolm_plugin import usage
    from deepmolm_plugin.training.inputs import check_inputs

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    data = tmp_path / "train.json"
    data.write_text(json.dumps([{"id": "a", "smiles": 6, "conversations": turns()}]))
    with pytest.raises(usage.UsageError, match="record 'a': `smiles` must be a string, got int 6"):
        check_inputs(["--data_path", str(data), "--model_name_or_path", str(tmp_path / "model")])


@pytest.mark.parametrize("ids, reason", [
    (["", "b"], r"record '#0': id '' is blank"),
    ([" r1", "r1"], r"record '#0': id ' r1' is blank or has white space around it"),
    (["cafe\u0301", "caf\u00e9"], r"record id\(s\) used more than once: 'café'"),
])
def test_ids_that_name_nothing_or_look_alike_are_refused(tmp_path, ids, reason):
    # was: trained as distinct ids (shown alike in every message, or as nothing)
    import json

    from deepmolm_plugin import usage
    from deepmolm_plugin.training.inputs import check_inputs

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    data = tmp_path / "train.json"
    data.write_text(json.dumps([{"id": i, "smiles": "CCO", "conversations": turns()} for i in ids]))
    with pytest.raises(usage.UsageError, match=reason):
        check_inputs(["--data_path", str(data), "--model_name_or_path", str(tmp_path / "model")])
