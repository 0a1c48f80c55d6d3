"""DeepEncoderImageProcessor: loading, global view, tiles, token counts, host contract.

Most tests use a tiny processor (128 px view, 64 px tiles, one token per 64 px) so they
run in milliseconds; a few check the real 1024 / 640 numbers the model and LLM rely on.
"""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import BatchFeature

from deepmolm_plugin.encoder.config import DeepEncoderConfig
from deepmolm_plugin.encoder.image_processor import (
    DeepEncoderImageProcessor,
    best_tile_grid,
    load_image,
    num_llm_positions_for_grid,
)

PAD = (127 / 255 - 0.5) / 0.5  # normalised value of the gray pad


def tiny(mode="base", **kw):
    return DeepEncoderImageProcessor(image_size=128, tile_size=64, mode=mode, **kw)


def denorm(x):
    """Normalised tensor -> 0..255 floats (mean = std = 0.5)."""
    return (x * 0.5 + 0.5) * 255


# --- token counts ------------------------------------------------------------------------


def test_real_token_counts():
    base = DeepEncoderImageProcessor()
    tiles = DeepEncoderImageProcessor(mode="tiles")
    assert base.num_llm_positions((1024, 1024)) == 16 * 17 + 1 == 273
    assert base.num_llm_positions((3000, 500)) == 273  # base mode ignores the size
    assert tiles.num_llm_positions((1024, 1024)) == 20 * 21 + 272 + 1 == 693
    assert tiles.num_llm_positions((600, 500)) == 273  # fits one tile: no tiles
    assert tiles.num_llm_positions((1024, 1024), mode="base") == 273
    # An image works as well as a size.
    assert tiles.num_llm_positions(Image.new("RGB", (1024, 1024))) == 693


def test_num_llm_positions_for_grid_formula():
    assert num_llm_positions_for_grid(1024, 640, None) == 273
    assert num_llm_positions_for_grid(1024, 640, (2, 2)) == 693
    # 3 cols x 1 row of 10x10-token tiles: 10 rows of 31 positions.
    assert num_llm_positions_for_grid(1024, 640, (3, 1)) == 10 * 31 + 273
    # Tiny: g = 2, t = 1.
    assert num_llm_positions_for_grid(128, 64, (3, 2)) == 2 * 4 + 2 * 3 + 1
    with pytest.raises(ValueError, match="multiple of 64"):
        num_llm_positions_for_grid(1000, 640, None)


def test_num_llm_positions_matches_preprocess():
    proc = tiny("tiles")
    for size in [(50, 60), (128, 128), (300, 90), (90, 300), (200, 130)]:
        out = proc(Image.new("RGB", size, (10, 20, 30)))
        grid = out["tile_grids"][0]
        n_tiles = 0 if grid is None else grid[0] * grid[1]
        assert out["tile_pixel_values"][0].shape[0] == n_tiles
        assert proc.num_llm_positions(size) == num_llm_positions_for_grid(128, 64, grid)


def test_num_llm_positions_rejects_bad_size():
    with pytest.raises(ValueError, match="width, height"):
        tiny().num_llm_positions((0, 10))
    with pytest.raises(ValueError, match="width, height"):
        tiny("tiles").num_llm_positions((10.5, 10))


# --- tile grid -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, grid",
    [
        ((600, 500), None),  # both sides <= 640
        ((640, 640), None),
        ((641, 640), (2, 2)),
        ((1024, 1024), (2, 2)),
        ((1280, 640), (2, 1)),
        ((2000, 700), (3, 1)),
        ((700, 2000), (1, 3)),
        ((3000, 500), (6, 1)),
        ((1920, 1080), (2, 1)),
        ((1000, 700), (3, 2)),
    ],
)
def test_best_tile_grid_table(size, grid):
    assert best_tile_grid(*size) == grid


def test_best_tile_grid_tie_break_on_area():
    # (1,1) and (2,2) tie on aspect; the larger grid wins only if the image has more
    # than half of its pixels (0.5 * 640^2 * 4 = 819200).
    assert best_tile_grid(700, 700, min_tiles=1) == (1, 1)
    assert best_tile_grid(1200, 1200, min_tiles=1) == (2, 2)
    # (2,1) vs (4,2) with max 8: threshold 0.5 * 640^2 * 8 = 1638400.
    assert best_tile_grid(1400, 700, max_tiles=8) == (2, 1)
    assert best_tile_grid(2000, 1000, max_tiles=8) == (4, 2)


def test_best_tile_grid_respects_tile_count_limits():
    for w, h in [(5000, 300), (300, 5000), (999, 1001), (4000, 3000)]:
        cols, rows = best_tile_grid(w, h, tile_size=64, min_tiles=2, max_tiles=6)
        assert 2 <= cols * rows <= 6


# --- tiles -----------------------------------------------------------------------------------


def test_tiles_are_row_major():
    # 3 cols x 2 rows of 64 px cells, each a distinct colour; aspect 1.5 -> grid (3, 2),
    # and the resize to 192x128 is the identity, so every tile is one flat colour.
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]
    arr = np.zeros((128, 192, 3), np.uint8)
    for k, c in enumerate(colours):
        r, col = divmod(k, 3)
        arr[r * 64 : (r + 1) * 64, col * 64 : (col + 1) * 64] = c
    out = tiny("tiles")(arr)
    assert out["tile_grids"] == [(3, 2)]
    tiles = out["tile_pixel_values"][0]
    assert tiles.shape == (6, 3, 64, 64) and tiles.dtype == torch.float32
    for k, c in enumerate(colours):
        mean = denorm(tiles[k]).mean(dim=(1, 2))
        assert torch.allclose(mean, torch.tensor(c, dtype=torch.float32), atol=0.5), (k, mean)


def test_wide_image_gets_wide_grid_real_size():
    out = DeepEncoderImageProcessor(mode="tiles")(Image.new("RGB", (2000, 700), (200, 10, 10)))
    cols, rows = out["tile_grids"][0]
    assert cols > rows
    assert out["tile_pixel_values"][0].shape == (cols * rows, 3, 640, 640)
    assert out["pixel_values"].shape == (1, 3, 1024, 1024)


def test_small_image_in_tiles_mode_has_empty_tile_stack():
    out = tiny("tiles")([Image.new("RGB", (60, 50)), Image.new("RGB", (256, 64))])
    assert out["pixel_values"].shape == (2, 3, 128, 128)
    assert out["tile_grids"][0] is None
    assert out["tile_pixel_values"][0].shape == (0, 3, 64, 64)
    assert out["tile_pixel_values"][0].dtype == torch.float32
    assert out["tile_grids"][1] == (4, 1)
    assert out["tile_pixel_values"][1].shape == (4, 3, 64, 64)


def test_base_mode_has_no_tile_keys():
    out = tiny()(Image.new("RGB", (300, 300)))
    assert set(out.keys()) == {"pixel_values"}
    out = tiny()(Image.new("RGB", (300, 300)), mode="tiles")
    assert {"tile_pixel_values", "tile_grids"} <= set(out.keys())


# --- global view -------------------------------------------------------------------------------


def test_wide_image_is_padded_top_and_bottom_with_gray():
    # 2:1 black image -> 128x64 content centred in a 128x128 view, gray rows above and below.
    x = tiny()(Image.new("RGB", (256, 128), (0, 0, 0)))["pixel_values"][0]  # (3, 128, 128)
    pad = torch.full_like(x[:, :32], PAD)
    assert torch.allclose(x[:, :32], pad, atol=1e-6)
    assert torch.allclose(x[:, 96:], pad, atol=1e-6)
    assert torch.allclose(x[:, 32:96], torch.full_like(x[:, 32:96], -1.0), atol=1e-6)


def test_tall_image_is_padded_left_and_right():
    x = tiny()(Image.new("RGB", (64, 128), (255, 255, 255)))["pixel_values"][0]
    assert torch.allclose(x[:, :, :32], torch.full_like(x[:, :, :32], PAD), atol=1e-6)
    assert torch.allclose(x[:, :, 96:], torch.full_like(x[:, :, 96:], PAD), atol=1e-6)
    assert torch.allclose(x[:, :, 32:96], torch.ones_like(x[:, :, 32:96]), atol=1e-6)


def test_normalisation_range_and_dtype():
    x = tiny()(Image.new("RGB", (128, 128), (255, 0, 255)))["pixel_values"][0]
    assert x.dtype == torch.float32
    assert torch.equal(x[0], torch.ones(128, 128)) and torch.equal(x[1], -torch.ones(128, 128))


def test_pad_colour_follows_image_mean():
    proc = tiny(image_mean=(0.2, 0.4, 0.6), image_std=(0.25, 0.25, 0.25))
    assert proc.pad_color == (51, 102, 153)
    x = proc(Image.new("RGB", (256, 128)))["pixel_values"][0]
    expected = (torch.tensor([51, 102, 153]) / 255 - torch.tensor([0.2, 0.4, 0.6])) / 0.25
    assert torch.allclose(x[:, 0, 0], expected, atol=1e-6)


# --- loading --------------------------------------------------------------------------------


def test_rgba_transparency_becomes_white():
    arr = np.zeros((8, 8, 4), np.uint8)  # transparent black
    arr[:4, :, 3] = 255  # top half opaque black
    arr[4:6, :, 3] = 128  # half transparent black
    rgb = np.asarray(load_image(Image.fromarray(arr, "RGBA")))
    assert rgb.shape == (8, 8, 3)
    assert (rgb[:4] == 0).all()
    assert (np.abs(rgb[4:6].astype(int) - 127) <= 1).all()
    assert (rgb[6:] == 255).all()


def test_la_transparency_becomes_white():
    img = Image.new("LA", (4, 4), (0, 0))
    assert (np.asarray(load_image(img)) == 255).all()


def test_palette_with_transparency_becomes_white(tmp_path):
    img = Image.new("P", (4, 4), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))
    img.putpixel((0, 0), 1)
    img.info["transparency"] = 0  # palette entry 0 (black) is transparent
    path = tmp_path / "pal.png"
    img.save(path)
    for src in (img, path):
        rgb = np.asarray(load_image(src))
        assert tuple(rgb[0, 0]) == (255, 0, 0)
        assert (rgb[1:] == 255).all()


def test_grayscale_becomes_three_channels():
    rgb = np.asarray(load_image(Image.new("L", (5, 3), 40)))
    assert rgb.shape == (3, 5, 3) and (rgb == 40).all()
    x = tiny()(Image.new("L", (128, 128), 0))["pixel_values"]
    assert x.shape == (1, 3, 128, 128) and torch.equal(x, -torch.ones_like(x))


def test_16bit_grayscale_is_rescaled_not_clipped():
    img = Image.fromarray(np.full((4, 4), 32768, np.uint16))
    assert img.mode.startswith("I;16")
    assert (np.asarray(load_image(img)) == 128).all()


def test_numpy_inputs():
    u8 = np.arange(12 * 10 * 3, dtype=np.uint8).reshape(12, 10, 3)
    assert np.array_equal(np.asarray(load_image(u8)), u8)
    assert np.array_equal(np.asarray(load_image(u8.astype(np.float32) / 255)), u8)
    assert np.array_equal(np.asarray(load_image(u8.astype(np.float64) / 255)), u8)
    gray = np.full((6, 7), 9, np.uint8)
    assert np.asarray(load_image(gray)).shape == (6, 7, 3)
    assert np.asarray(load_image(gray[:, :, None])).shape == (6, 7, 3)
    rgba = np.zeros((2, 2, 4), np.uint8)
    assert (np.asarray(load_image(rgba)) == 255).all()


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros((4, 4, 3), np.int64), "dtype int64"),
        (np.zeros((4, 4, 3), np.uint16), "dtype uint16"),
        (np.full((4, 4, 3), 2.0, np.float32), r"\[0, 1\]"),
        (np.full((4, 4, 3), -0.1), r"\[0, 1\]"),
        (np.full((4, 4, 3), np.nan), "NaN"),
        (np.zeros((3, 4, 5), np.uint8), "shape"),  # channels first
        (np.zeros((1, 4, 4, 3), np.uint8), "shape"),
        (np.zeros((0, 4, 3), np.uint8), "shape"),
    ],
)
def test_bad_arrays_raise(array, match):
    with pytest.raises(ValueError, match=match):
        load_image(array)


def test_torch_tensor_input():
    t = torch.randint(0, 256, (9, 11, 3), dtype=torch.uint8)
    assert np.array_equal(np.asarray(load_image(t)), t.numpy())
    with pytest.raises(ValueError, match="shape"):
        load_image(t.permute(2, 0, 1).contiguous())  # (3, H, W) is not channels last


def test_unsupported_type_raises():
    with pytest.raises(TypeError, match="list"):
        load_image([[0, 1]])


def test_path_inputs(tmp_path):
    arr = np.zeros((20, 30, 3), np.uint8)
    arr[:, :15] = (10, 200, 30)
    path = tmp_path / "img.png"
    Image.fromarray(arr).save(path)
    for src in (path, str(path)):
        assert np.array_equal(np.asarray(load_image(src)), arr)
    # Same tensor from a path as from the PIL image.
    proc = tiny("tiles")
    a, b = proc(str(path)), proc(Image.fromarray(arr))
    assert torch.equal(a["pixel_values"], b["pixel_values"])


def test_path_input_leaves_no_open_file(tmp_path):
    path = tmp_path / "img.png"
    Image.new("RGB", (10, 10)).save(path)
    load_image(path)
    assert Path("/proc/self/fd").is_dir()  # Linux, as every machine this project runs tests on

    def open_on(p):
        fds = Path("/proc/self/fd")
        return [f for f in fds.iterdir() if os.path.realpath(f) == str(p.resolve())]

    assert open_on(path) == []


def test_missing_path_raises_file_not_found(tmp_path):
    path = tmp_path / "nope.png"
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image(path)


def test_non_image_file_raises_value_error_naming_path(tmp_path):
    path = tmp_path / "text.png"
    path.write_text("not an image at all\n")
    with pytest.raises(ValueError, match="text.png.*not a readable image"):
        load_image(path)


def test_bad_item_in_batch_names_its_index(tmp_path):
    good = Image.new("RGB", (8, 8))
    with pytest.raises(ValueError, match=r"images\[1\]"):
        tiny()([good, np.zeros((4, 4), np.int32)])
    with pytest.raises(FileNotFoundError, match=r"images\[2\]"):
        tiny()([good, good, tmp_path / "missing.png"])


# --- host contract, config, determinism ------------------------------------------------------------


def test_llava_host_contract():
    proc = DeepEncoderImageProcessor()
    out = proc.preprocess(Image.new("RGB", (300, 200), (1, 2, 3)), return_tensors="pt")
    assert isinstance(out, BatchFeature)
    pv = out["pixel_values"]
    assert pv.shape == (1, 3, 1024, 1024) and pv.dtype == torch.float32
    assert pv[0].shape == (3, 1024, 1024)
    assert tuple(int(x * 255) for x in proc.image_mean) == (127, 127, 127)
    assert proc.crop_size == {"height": 1024, "width": 1024}
    assert proc.size == {"height": 1024, "width": 1024}
    assert list(proc.image_std) == [0.5, 0.5, 0.5]


def test_batch_and_call_alias():
    proc = tiny()
    imgs = [Image.new("RGB", (50, 80), (9, 9, 9)), Image.new("RGB", (80, 50), (200, 9, 9))]
    out = proc(imgs)
    assert out["pixel_values"].shape == (2, 3, 128, 128)
    assert torch.equal(out["pixel_values"][1], proc.preprocess(imgs[1])["pixel_values"][0])


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="return_tensors"):
        tiny().preprocess(Image.new("RGB", (8, 8)), return_tensors="np")
    with pytest.raises(ValueError, match="mode"):
        DeepEncoderImageProcessor(mode="gundam")
    with pytest.raises(ValueError, match="mode"):
        tiny()(Image.new("RGB", (8, 8)), mode="crop")
    with pytest.raises(ValueError, match="multiple of 64"):
        DeepEncoderImageProcessor(image_size=1000)
    with pytest.raises(ValueError, match="empty"):
        tiny()([])


def test_deterministic():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (90, 170, 3), dtype=np.uint8)
    proc = tiny("tiles")
    a, b = proc(arr), proc(arr.copy())
    assert torch.equal(a["pixel_values"], b["pixel_values"])
    assert torch.equal(a["tile_pixel_values"][0], b["tile_pixel_values"][0])
    assert a["tile_grids"] == b["tile_grids"]


def test_input_image_is_not_modified():
    img = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    before = img.tobytes()
    tiny("tiles")(img)
    assert img.mode == "RGBA" and img.tobytes() == before


def test_from_config_and_dict_round_trip():
    cfg = DeepEncoderConfig(image_size=128, tile_size=64)
    proc = DeepEncoderImageProcessor.from_config(cfg, mode="tiles")
    assert (proc.image_size, proc.tile_size, proc.mode) == (128, 64, "tiles")
    assert proc.token_stride == cfg.token_stride
    assert proc.num_llm_positions((128, 128)) == num_llm_positions_for_grid(128, 64, (2, 2))
    again = DeepEncoderImageProcessor.from_dict(proc.to_dict())
    assert again.to_dict() == proc.to_dict()
    with pytest.raises(ValueError, match="unknown"):
        DeepEncoderImageProcessor.from_dict({**proc.to_dict(), "resample": 3})
    with pytest.raises(ValueError, match="image_processor_type"):
        DeepEncoderImageProcessor.from_dict(
            {**proc.to_dict(), "image_processor_type": "CLIPImageProcessor"}
        )


def test_position_count_of_a_path_fails_as_loading_it_does(tmp_path):
    # was: a bare "[Errno 21] Is a directory" for a folder, and a missing file's OSError
    # without the word "image" (load_image named both)
    processor = DeepEncoderImageProcessor()
    with pytest.raises(IsADirectoryError, match="image path is a folder, not an image file"):
        processor.num_llm_positions(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="image file not found"):
        processor.num_llm_positions(str(tmp_path / "missing.png"))
    (tmp_path / "short.png").write_bytes(b"\x89PNG\r\n")
    with pytest.raises(ValueError, match="short.png' is not a readable image"):
        processor.num_llm_positions(tmp_path / "short.png")
