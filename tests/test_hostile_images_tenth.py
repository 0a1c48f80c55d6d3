"""Hostile images, the encoder API and tower weights, tenth sweep (in-process, tiny).

Each case once went wrong: a black drawing on a transparent background saved as a 32-bit
BMP was read as all black by every loader and passed every check; a thin image cost memory
growing with the square of its long side (the host's `pad` canvas); a TIFF with a damaged
second page, or a JPEG with a damaged EXIF block, escaped as a raw TypeError / SyntaxError;
a trained DeepMoLM checkpoint given as tower weights got advice to load training_args.bin;
a PostScript file named .png was opened as EPS (Ghostscript); num_llm_positions counted a
PNG that preprocess refused; the documented API had no way to give the trained models'
view; dtype="auto" was refused by the encoder API.
"""

import io
import json
import struct
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import EpsImagePlugin, Image, ImageDraw
from safetensors.torch import save_file

from deepmolm_plugin import dtypes
from deepmolm_plugin.data.records import RecordError
from deepmolm_plugin.encoder import DeepEncoder, load_deepencoder
from deepmolm_plugin.encoder.image_processor import (DeepEncoderImageProcessor, check_host_conversion,
                                                     check_host_reads_alike, load_image)
from deepmolm_plugin.encoder.presets import encoder_config
from deepmolm_plugin.tensor_files import CheckpointError
# The dataset built through the patched host, its tokenizer and the qwen2 template.
from test_hostile_training import dataset, qwen2_template, tokenizer, turns  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def record(rid, image):
    return {"id": rid, "image": image, "smiles": "CCO", "conversations": turns()}


def drawing(background=(0, 0, 0, 0)):
    picture = Image.new("RGBA", (40, 24), background)
    ImageDraw.Draw(picture).line((2, 2, 38, 22), fill=(0, 0, 0, 255), width=3)
    return picture


def processor(**options):
    return DeepEncoderImageProcessor(image_size=128, tile_size=64, **options)


# --- 1. formats PIL opens without their alpha -----------------------------------------------------

def test_a_32_bit_bmp_with_alpha_is_read_with_it(tmp_path):
    drawing().save(tmp_path / "black.bmp")  # PIL's own RGBA save: the alpha in each pixel's 4th byte
    with Image.open(tmp_path / "black.bmp") as plain:
        assert plain.mode == "RGB" and np.asarray(plain).max() == 0  # the premise: PIL drops it, all black
    with pytest.raises(ValueError, match=r"black\.bmp' \(mode RGBA, transparent\): .*32-bit BMP without its alpha"):
        check_host_conversion(str(tmp_path / "black.bmp"))  # was: passed, and training saw black on black
    ours = np.asarray(load_image(str(tmp_path / "black.bmp")))
    assert ours[0, -1].tolist() == [255, 255, 255] and ours.min() == 0  # composited on white, as a PNG
    assert np.array_equal(ours, np.asarray(load_image(drawing())))
    # transparent pixels over white: the host reads the same picture, accepted as the PNG is
    drawing((255, 255, 255, 0)).save(tmp_path / "white.bmp")
    check_host_conversion(str(tmp_path / "white.bmp"))
    plain = Image.new("RGB", (8, 8), "red")
    plain.putpixel((0, 0), (0, 0, 0))  # shows something: one colour throughout is refused
    plain.save(tmp_path / "plain.bmp")  # 24-bit: no 4th byte to read
    check_host_conversion(str(tmp_path / "plain.bmp"))


def test_a_tiff_with_unspecified_extra_samples_is_refused(tmp_path):
    Image.new("RGBX", (8, 8)).save(tmp_path / "rgbx.tif")  # ExtraSamples 0: PIL reads RGB, drops the 4th
    for check in (load_image, check_host_conversion, processor().num_llm_positions):
        with pytest.raises(ValueError, match=r"rgbx\.tif' is a TIFF with extra samples marked 'unspecified'"):
            check(str(tmp_path / "rgbx.tif"))


# --- 5. only the raster formats the README lists, whatever the name -------------------------------

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 1 1 moveto 9 9 lineto stroke\nshowpage\n"


@pytest.fixture
def ghostscript_calls(monkeypatch):
    calls = []

    def ghostscript(*args, **kwargs):
        calls.append(args)
        raise OSError("Ghostscript was run")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ghostscript)
    monkeypatch.setattr(EpsImagePlugin, "has_ghostscript", lambda: True)
    return calls


def test_postscript_named_png_never_reaches_ghostscript(tmp_path, tokenizer, ghostscript_calls):
    from deepmolm_plugin import cli, usage

    path = tmp_path / "eps.png"
    path.write_bytes(EPS)
    for check in (load_image, check_host_conversion, processor().num_llm_positions, processor().preprocess):
        # (check_host_conversion keeps PIL's UnidentifiedImageError, an OSError: training's record message)
        read_as = r"eps\.png'.* \(images are read as PNG, JPEG, GIF, BMP, TIFF or WebP\)"
        with pytest.raises((ValueError, OSError), match=read_as):
            check(str(path))
    with pytest.raises(usage.UsageError, match=r"--image-file .*eps\.png: .*images are read as"):
        cli.readable_image(str(path), "--image-file")  # the chat CLI's check
    with pytest.raises(RecordError, match=r"record 'eps': .*images are read as"):
        dataset(tmp_path, tokenizer, [record("eps", "eps.png")])[0]  # training, before the host's Image.open
    with Image.open(io.BytesIO(EPS)) as opened:  # deepmolm-prepare opens the bytes it copies itself
        with pytest.raises(ValueError, match="is EPS, not one of the raster formats"):
            check_host_reads_alike(opened, "'copy.png'")
    Image.new("RGB", (8, 8)).save(tmp_path / "icon.ico")
    with pytest.raises(ValueError, match=r"icon\.ico' is not a readable image"):
        load_image(str(tmp_path / "icon.ico"))
    assert ghostscript_calls == []


# --- 3. damaged files: one clear error naming the file --------------------------------------------

def damaged_second_page(tmp_path):
    """A two-page TIFF whose second page has lost its ImageWidth tag (PIL: TypeError "Missing
    dimensions" when the pages are counted)."""
    pages = [Image.new("RGB", (8, 8), "white"), Image.new("RGB", (8, 8), "black")]
    buffer = io.BytesIO()
    pages[0].save(buffer, "TIFF", save_all=True, append_images=pages[1:])
    data = bytearray(buffer.getvalue())
    assert data[:4] == b"II*\x00"
    first = struct.unpack_from("<I", data, 4)[0]
    count = struct.unpack_from("<H", data, first)[0]
    second = struct.unpack_from("<I", data, first + 2 + 12 * count)[0]
    for k in range(struct.unpack_from("<H", data, second)[0]):
        entry = second + 2 + 12 * k
        if struct.unpack_from("<H", data, entry)[0] == 256:  # ImageWidth
            struct.pack_into("<H", data, entry, 0x9999)
    (tmp_path / "damaged.tif").write_bytes(bytes(data))
    return "damaged.tif"


def damaged_exif_jpeg(tmp_path):
    """Intact JPEG pixels, one byte of its EXIF block's TIFF magic changed."""
    exif = Image.Exif()
    exif[305] = "camera software"
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "white").save(buffer, "JPEG", exif=exif.tobytes())
    data = bytearray(buffer.getvalue())
    data[data.find(b"Exif\x00\x00") + 8] = 0xF5
    (tmp_path / "bad_exif.jpg").write_bytes(bytes(data))
    return "bad_exif.jpg"


def test_damaged_files_are_one_clear_error_on_every_path(tmp_path, tokenizer):
    tif, jpg = damaged_second_page(tmp_path), damaged_exif_jpeg(tmp_path)
    for check in (load_image, check_host_conversion, processor().num_llm_positions):
        with pytest.raises(ValueError, match=r"damaged\.tif' is not a readable image: Missing dimensions"):
            check(str(tmp_path / tif))  # was a raw TypeError
        with pytest.raises(ValueError, match=r"bad_exif\.jpg' has a damaged EXIF block .*save it again without EXIF"):
            check(str(tmp_path / jpg))  # was a raw SyntaxError from check_host_conversion
    for name, reason in ((tif, "not a readable image"), (jpg, "damaged EXIF block")):
        for mode in ("base", "tiles"):
            with pytest.raises(RecordError, match=f"record 'bad': ValueError: .*{reason}"):
                dataset(tmp_path, tokenizer, [record("bad", name)], mode=mode)[0]


# --- 2. the pad canvas is bounded like the decoded pixels -----------------------------------------

def test_a_thin_image_whose_pad_canvas_is_over_the_bomb_limit_is_refused(tmp_path, tokenizer, monkeypatch):
    Image.new("RGB", (40, 10), "white").save(tmp_path / "thin.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 400 px decoded, but a 40 x 40 = 1600 px canvas
    reason = r"is 40x10 px: the models' view pads it to a square of its long side first, 40x40 = 1600 px"
    with pytest.raises(ValueError, match=r"thin\.png' " + reason):
        check_host_conversion(str(tmp_path / "thin.png"))  # chat, eval, GUI and training run it
    with pytest.raises(RecordError, match="record 'thin': ValueError: .*" + reason):
        dataset(tmp_path, tokenizer, [record("thin", "thin.png")])[0]
    with pytest.raises(ValueError, match=r"thin\.png' " + reason):
        processor().preprocess(str(tmp_path / "thin.png"), square_first=True)
    assert processor().preprocess(str(tmp_path / "thin.png"))["pixel_values"].shape == (1, 3, 128, 128)


# --- 6. the count refuses what preprocess refuses -------------------------------------------------

def test_the_count_refuses_a_png_whose_exif_turn_follows_the_pixels(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (90, 30), "white").save(buffer, "PNG")
    png = buffer.getvalue()
    exif = Image.Exif()
    exif[274] = 6
    raw = exif.tobytes()[6:] if exif.tobytes().startswith(b"Exif\x00\x00") else exif.tobytes()
    chunk = struct.pack(">I", len(raw)) + b"eXIf" + raw + struct.pack(">I", zlib.crc32(b"eXIf" + raw))
    end = png.rfind(b"IEND") - 4
    (tmp_path / "late.png").write_bytes(png[:end] + chunk + png[end:])
    path = str(tmp_path / "late.png")
    with pytest.raises(ValueError, match="has EXIF orientation 6"):
        processor(mode="tiles").preprocess(path)
    with pytest.raises(ValueError, match=r"late\.png' has EXIF orientation 6"):
        processor(mode="tiles").num_llm_positions(path)  # was: 35
    with Image.open(path) as opened, pytest.raises(ValueError, match="has EXIF orientation 6"):
        processor(mode="tiles").num_llm_positions(opened)


# --- 7. the documented API can give the trained models' view --------------------------------------

def test_square_first_gives_the_view_the_host_pad_gives():
    from llava.mm_utils import process_images

    picture = load_image(drawing((255, 255, 255, 0)).resize((200, 120)))
    proc = processor()
    host = process_images([picture], proc, SimpleNamespace(image_aspect_ratio="pad"))[0]
    assert torch.equal(proc.preprocess(picture, square_first=True)["pixel_values"][0], host)
    assert not torch.equal(proc.preprocess(picture)["pixel_values"][0], host)  # default: DeepSeek-OCR's view
    square = picture.resize((120, 120))
    assert torch.equal(proc.preprocess(square)["pixel_values"],
                       proc.preprocess(square, square_first=True)["pixel_values"])


# --- 8. dtype "auto" in the encoder API ------------------------------------------------------------

def test_dtype_auto_is_the_resolvers_choice(tmp_path):
    expected = dtypes.resolve_dtype("auto", "cuda" if torch.cuda.is_available() else "cpu")
    assert encoder_config("tiny", dtype="auto").dtype == str(expected).replace("torch.", "")
    DeepEncoder(encoder_config("tiny")).save_pretrained(tmp_path / "tower")
    assert load_deepencoder(tmp_path / "tower", dtype="auto").dtype == expected  # was: "unknown dtype 'auto'"


# --- 4. a trained DeepMoLM checkpoint as tower weights --------------------------------------------

def deepmolm_checkpoint(folder, config):
    """A whole-model checkpoint as the trainer saves it: the tower under
    model.vision_tower.vision_tower.*, the LLM beside it, the tower's sizes in config.json,
    and the Trainer's pickled arguments."""
    folder.mkdir()
    tower = DeepEncoder(config)
    state = {f"model.vision_tower.vision_tower.{k}": v.detach().clone().contiguous()
             for k, v in tower.state_dict().items()}
    state.update({"lm_head.weight": torch.zeros(4, 2), "model.embed_tokens.weight": torch.zeros(4, 2)})
    save_file(state, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"model_type": "llava_qwen2", "mm_vision_tower": "deepencoder",
                                                    "deepencoder_config": config.to_dict()}))
    torch.save(SimpleNamespace(output_dir="x"), folder / "training_args.bin")  # needs code to load
    return tower


def test_a_trained_deepmolm_checkpoint_gives_its_tower(tmp_path):
    tower = deepmolm_checkpoint(tmp_path / "checkpoint", encoder_config("tiny"))
    loaded = load_deepencoder(tmp_path / "checkpoint")  # sizes from its config.json
    assert loaded.load_report.format == "deepmolm-model" and loaded.load_report.ignored_other == 2
    for name, value in tower.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value)
    with pytest.raises(CheckpointError, match="does not match the one saved with the weights .*checkpoint"):
        load_deepencoder(tmp_path / "checkpoint", config=encoder_config("demo"))


def test_an_unrecognised_folder_never_offers_the_trainers_files_as_weights(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    save_file({"lm_head.weight": torch.zeros(2, 2)}, folder / "model.safetensors")
    torch.save(SimpleNamespace(output_dir="x"), folder / "training_args.bin")
    torch.save({"state": {}}, folder / "optimizer.pt")
    with pytest.raises(CheckpointError, match="unrecognised checkpoint layout") as error:
        load_deepencoder(folder, config=encoder_config("tiny"))
    assert "training_args.bin" not in str(error.value) and "optimizer.pt" not in str(error.value)
    assert "model.vision_tower.vision_tower.*" in str(error.value)


def test_an_opened_32_bit_bmp_keeps_its_alpha_in_load_image(tmp_path):
    drawing().save(tmp_path / "black.bmp")
    with Image.open(tmp_path / "black.bmp") as opened:  # a PIL image, not yet decoded
        assert np.array_equal(np.asarray(load_image(opened)), np.asarray(load_image(drawing())))
