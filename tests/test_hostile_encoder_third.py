"""Hostile input, third sweep: the image processor and the vision tower's runtime input.

Each test says what used to happen ("was: ..."); the README's "Bad input" list has one
line per finding."""

import io
import tracemalloc
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from deepmolm_plugin.encoder.image_processor import (
    DeepEncoderImageProcessor,
    check_host_conversion,
    check_host_readable,
    load_image,
)
from deepmolm_plugin.encoder.tower import DeepEncoderVisionTower


@pytest.fixture
def processor():
    return DeepEncoderImageProcessor(image_size=128, tile_size=64, mode="tiles")


def _tower(config, cache=None):
    args = SimpleNamespace(deepencoder_config=config.to_dict(), vision_tower_weights="random",
                           vision_feature_cache=None if cache is None else str(cache))
    return DeepEncoderVisionTower("deepencoder", args)


def _left_red_right_blue(size=(80, 40)) -> Image.Image:
    img = Image.new("RGB", size, "blue")
    img.paste((255, 0, 0), (0, 0, size[0] // 2, size[1]))
    return img


def _with_orientation(img: Image.Image, path, orientation: int) -> str:
    exif = Image.Exif()
    exif[274] = orientation
    img.save(path, exif=exif.tobytes())
    return str(path)


# ----------------------------------------------------------------------------- EXIF orientation
@pytest.mark.parametrize("suffix", ["jpg", "png", "webp"])
def test_an_exif_turned_image_is_refused_by_every_loader(tmp_path, processor, suffix):
    # was: read as stored by all of them (the host's loaders, load_image, the tiles), while
    # the GUI's preview and any viewer showed it turned: the model saw it sideways, silently.
    path = _with_orientation(_left_red_right_blue(), tmp_path / f"turned.{suffix}", 6)
    with pytest.raises(ValueError, match=r"turned\.%s' has EXIF orientation 6" % suffix):
        check_host_conversion(path)  # training (each record), chat CLI and model_vqa
    with pytest.raises(ValueError, match="EXIF orientation 6"):
        check_host_readable(path)
    for read in (load_image, processor.preprocess, processor.tile_inputs, processor.num_llm_positions):
        with pytest.raises(ValueError, match="EXIF orientation 6"):
            read(path)
    with Image.open(path) as opened:  # the training tiles' and the chat's call: convert("RGB") keeps the EXIF
        with pytest.raises(ValueError, match="EXIF orientation 6"):
            processor.tile_inputs(opened.convert("RGB"))
        with pytest.raises(ValueError, match="EXIF orientation 6"):  # was: counted, 11 positions
            processor.num_llm_positions(opened)
        upright = ImageOps.exif_transpose(opened)  # what the message asks for
    assert processor.preprocess(upright)["pixel_values"].shape == (1, 3, 128, 128)


def test_a_png_whose_orientation_follows_its_pixels_is_refused_too(tmp_path, processor):
    # was: PIL reads a PNG's chunks after the image data only when it decodes, so the
    # checks made before decoding (training's, deepmolm-prepare's) took it as stored, while
    # load_image (chat, eval, the GUI) refused it as turned.
    import struct
    import zlib

    buffer = io.BytesIO()
    _left_red_right_blue().save(buffer, "PNG")
    data, exif = buffer.getvalue(), Image.Exif()
    exif[274] = 6
    raw = exif.tobytes()
    chunk = struct.pack(">I", len(raw)) + b"eXIf" + raw + struct.pack(">I", zlib.crc32(b"eXIf" + raw))
    end = data.rindex(b"IEND") - 4
    path = tmp_path / "late.png"
    path.write_bytes(data[:end] + chunk + data[end:])
    with Image.open(path) as opened:
        assert Image.Image.getexif(opened).get(274) is None  # what the early check saw
    for read in (check_host_conversion, load_image, processor.tile_inputs):  # (counting reads the header only)
        with pytest.raises(ValueError, match="EXIF orientation 6"):
            read(str(path))


def test_images_without_a_turn_or_turned_by_pil_itself_still_load(tmp_path):
    plain = _with_orientation(_left_red_right_blue(), tmp_path / "plain.jpg", 1)
    check_host_readable(plain)
    # PIL turns a TIFF by its orientation tag when it opens it: both loaders see it upright.
    tiff = _with_orientation(_left_red_right_blue(), tmp_path / "turned.tif", 6)
    check_host_readable(tiff)
    with Image.open(tiff) as opened:
        host = np.asarray(opened.convert("RGB"))
    assert host.shape == (80, 40, 3)
    assert np.array_equal(np.asarray(load_image(tiff)), host)


# --------------------------------------------------------------------------------------- colours
def test_a_cielab_image_is_refused_not_recoloured(tmp_path, processor):
    # was: PIL's convert("RGB") (the host's and ours) turned LAB white into cyan (0, 255, 255)
    white = Image.new("LAB", (32, 32), (255, 128, 128))
    white.save(tmp_path / "lab.tif")
    for read in (load_image, check_host_conversion, processor.preprocess):
        with pytest.raises(ValueError, match=r"lab\.tif' is CIELAB .*wrong colours"):
            read(str(tmp_path / "lab.tif"))
    with pytest.raises(ValueError, match="CIELAB"):
        load_image(white)


def test_16bit_grey_with_a_transparent_value_composites_on_white(tmp_path):
    # was: the 16-bit rescale rebuilt the image without its `info`, so the PNG's tRNS grey
    # value was dropped: transparent pixels came out black instead of white.
    gray = np.full((8, 8), 40000, dtype=np.uint16)
    gray[:, :4] = 0  # the transparent value
    Image.fromarray(gray).save(tmp_path / "g16.png", transparency=0)
    with Image.open(tmp_path / "g16.png") as opened:
        assert opened.mode == "I;16" and opened.info["transparency"] == 0
    rgb = np.asarray(load_image(str(tmp_path / "g16.png")))
    assert (rgb[:, :4] == 255).all()  # transparent -> white
    assert (rgb[:, 4:] == round(40000 / 257)).all()  # opaque grey rescaled as before


def test_16bit_rescale_is_exact_and_in_integers():
    # was: rescaled in float64, 8 bytes a pixel twice over (17 MiB of numpy arrays at 1 M px,
    # ~2.5 GB at 12k x 12k); now uint32, with the same round(x / 257) for every 16-bit value.
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    rgb = np.asarray(load_image(Image.fromarray(values)))
    assert np.array_equal(rgb[..., 0], np.round(values / 257.0).astype(np.uint8))
    big = Image.fromarray(np.zeros((1024, 1024), dtype=np.uint16))
    tracemalloc.start()
    try:
        load_image(big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 13 * 1024 * 1024, peak  # bytes; was 17.1 MiB, now 10.1 MiB


# ----------------------------------------------------------------------------------- big images
def test_an_image_over_the_decompression_bomb_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    # was: between PIL's limit and twice it, only a DecompressionBombWarning; the picture was
    # decoded (up to ~180 M px: gigabytes per read) although deepmolm-prepare refuses it.
    Image.new("RGB", (120, 100), "white").save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 12,000 px: the warning zone
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for read in (load_image, check_host_conversion):
            with pytest.raises(ValueError, match=r"big\.png' is 120x100 = 12000 px, over PIL's decompression-bomb"):
                read(str(tmp_path / "big.png"))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # the limit turned off: no check
    assert load_image(str(tmp_path / "big.png")).size == (120, 100)


# ------------------------------------------------------------------------------ arrays, tensors
def test_tensors_numpy_cannot_hold_are_read_or_named():
    pixels = torch.rand(16, 16, 3)
    expected = np.asarray(load_image(pixels.to(torch.float8_e4m3fn).float()))
    # was: TypeError "Got unsupported ScalarType Float8_e4m3fn"
    assert np.array_equal(np.asarray(load_image(pixels.to(torch.float8_e4m3fn))), expected)
    bad = {  # was: TypeError / NotImplementedError / RuntimeError from torch, naming no input
        "of layout torch.sparse_coo": pixels.to_sparse(),
        "on the meta device": pixels.to("meta"),
        "has dtype torch.uint16": (pixels * 255).to(torch.uint16),
    }
    for reason, tensor in bad.items():
        with pytest.raises(ValueError, match=r"image tensor \(images\[0\]\) (is )?%s" % reason):
            load_image(tensor, name="images[0]")


def test_a_channels_first_array_is_named_as_such():
    # was: only "expected H x W x 3 ... (channels last)", with no word that it looked C x H x W
    with pytest.raises(ValueError, match=r"\(3, 16, 20\).*looks channels-first"):
        load_image(torch.zeros(3, 16, 20, dtype=torch.uint8))


# ------------------------------------------------------------------------------------ the tower
def test_the_tower_refuses_integer_views(tiny_config):
    tower = _tower(tiny_config)
    pixels = torch.randint(0, 256, (1, 3, 128, 128), dtype=torch.uint8)
    # was: encoded silently, raw 0..255 pixels cast to float where the encoder expects [-1, 1]
    with pytest.raises(ValueError, match=r"images has dtype torch\.uint8; views are the image processor's"):
        tower(pixels)
    with pytest.raises(ValueError, match=r"images\[1\] has dtype torch\.bool"):
        tower([torch.zeros(3, 128, 128), torch.zeros(3, 64, 64, dtype=torch.bool)])


def test_the_tower_names_inputs_that_are_not_tensors(tiny_config):
    tower = _tower(tiny_config)
    # was: AttributeError "'list' object has no attribute 'dim'" / "'numpy.ndarray' ... 'to'"
    with pytest.raises(TypeError, match=r"images\[0\] is a list"):
        tower([[torch.zeros(3, 128, 128)]])
    with pytest.raises(TypeError, match="images is a ndarray"):
        tower(np.zeros((1, 3, 128, 128), np.float32))


@pytest.mark.parametrize("cached", [False, True])
def test_an_empty_batch_of_views_gives_no_features(tmp_path, tiny_config, cached):
    tower = _tower(tiny_config, tmp_path / "cache" if cached else None)
    # was: RuntimeError "cannot reshape tensor of 0 elements into shape [3, 0, 2, 16, -1]"
    # (with the cache: torch.stack of an empty list)
    out = tower(torch.zeros(0, 3, 128, 128))
    assert out.shape == (0, 4, tower.hidden_size) and out.dtype == torch.float32
    with pytest.raises(ValueError, match=r"square RGB views .*got shape \(0, 3, 100, 100\)"):
        tower(torch.zeros(0, 3, 100, 100))  # a wrong shape is still named
    assert tower(torch.zeros(2, 3, 128, 128)).shape == (2, 4, tower.hidden_size)
