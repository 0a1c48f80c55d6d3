"""Image processor for DeepEncoder: images -> normalised square views.

DeepEncoder (DeepSeek-OCR's vision tower) sees square RGB views and emits one token per
64 px, so a 1024 px global view gives 16x16 = 256 tokens and a 640 px tile 10x10 = 100.

Two modes, as in DeepSeek-OCR:

- ``"base"``: one global view. The image is resized (bicubic, aspect preserved) to fit
  ``image_size`` x ``image_size`` and padded with the mean colour (127 gray), so padding
  normalises to ~0 and no content is cropped or stretched.
- ``"tiles"`` ("gundam"): the global view plus a grid of ``tile_size`` tiles cut from the
  image stretched to the grid (DeepSeek-OCR's ``dynamic_preprocess``), which gives small
  text and thin bonds more pixels. Images that fit in one tile get no tiles.

This is a plain class rather than a ``transformers.BaseImageProcessor``: the LLaVA host only
needs ``preprocess(img, return_tensors="pt")["pixel_values"]``, ``image_mean`` (for its own
pad colour) and ``crop_size``, and the tiles mode returns ragged per-image tile stacks that
``BaseImageProcessor``'s tensor conversion does not handle.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import math
import numbers
import os
import struct
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from transformers import BatchFeature

from .config import DeepEncoderConfig

MODES = ("base", "tiles")
TOKEN_STRIDE = 64  # pixels per output token: SAM patch 16 x two stride-2 convs

ImageInput = Union[Image.Image, str, "os.PathLike[str]", np.ndarray, torch.Tensor]
Grid = Tuple[int, int]  # (cols, rows)

# Modes whose pixels carry their own alpha; "transparency" in img.info covers the rest
# (palette "P", "L" and "RGB" PNGs with a tRNS chunk).
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_16BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
# Modes `_to_rgb` converts or refuses itself because PIL's plain convert("RGB") reads
# them as another picture: 16-bit grey clipped at 255, 32-bit pixels with no range, and
# CIELAB turned into wrong colours (white became cyan).
_OWN_MODES = _16BIT_MODES + ("I", "F", "LAB")
_EXIF_ORIENTATION = 274  # the EXIF / TIFF tag; 1 is "as stored", 2..8 mirror and turn
_TIFF_EXTRA_SAMPLES = 338  # the TIFF tag; value 0 is "unspecified data", which PIL drops
# The raster formats the README lists (PIL's names). PIL picks a plugin by the file's
# contents, not its name: was any format, so a PostScript file named `.png` was opened as
# EPS, and decoding it runs Ghostscript. Also refuses ICO / TGA, which PIL may read without
# their alpha channel.
RASTER_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
_FORMATS_SAID = "PNG, JPEG, GIF, BMP, TIFF or WebP"  # RASTER_FORMATS in messages
# What PIL raises for a damaged file, at open or later (n_frames seeking a TIFF's pages, an
# EXIF block, decoding): a TIFF with a damaged second page was a bare TypeError "Missing
# dimensions", a JPEG with a damaged EXIF header a SyntaxError. A ValueError only when PIL
# raised it ("buffer is not large enough"): the checks here raise ValueErrors naming the image.
_DAMAGED_FILE_ERRORS = (SyntaxError, EOFError, OSError, TypeError, ValueError, KeyError, IndexError,
                        struct.error, ZeroDivisionError, Image.DecompressionBombError)


def _raised_by_pil(error: BaseException) -> bool:
    """Whether `error` was raised inside Pillow (its innermost frame is a PIL module)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_globals.get("__name__", "").startswith("PIL.")


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def load_image(image: ImageInput, name: Optional[str] = None) -> Image.Image:
    """Return `image` as an RGB PIL image; transparent pixels become white.

    Accepts a PIL image, a path (str / os.PathLike), a numpy array or a torch tensor
    (H x W, H x W x 1, H x W x 3 or H x W x 4, channels last; uint8, or float in [0, 1]).
    16-bit grayscale files are rescaled to 8 bits; 32-bit int / float PIL modes are refused.
    `name` (e.g. "images[3]") is put in error messages to say which input was bad.

    Alpha is composited onto white, not dropped: molecule drawings are usually black
    on a transparent background, and dropping alpha would leave black on black.
    """
    where = f" ({name})" if name else ""
    # the file limit for every input kind, before any conversion (was: a 20000 x 20000
    # in-memory image took 2.8 GB and 13 s while the same file was refused)
    label = _label(image, name)
    if isinstance(image, Image.Image):
        check_pixel_count(image, label)
    elif isinstance(image, (torch.Tensor, np.ndarray)) and image.ndim >= 2:
        check_pixels(int(image.shape[1]), int(image.shape[0]), label)  # H x W [x C]
    if isinstance(image, Image.Image):
        with_alpha = _hidden_alpha(image)  # an opened 32-bit BMP's alpha, which PIL does not read
        return _to_rgb(image if with_alpha is None else with_alpha, where)
    if isinstance(image, (str, os.PathLike)):
        return _open_image(os.fspath(image), name)
    if isinstance(image, torch.Tensor):
        image = _tensor_to_numpy(image, where)
    if isinstance(image, np.ndarray):
        return _to_rgb(Image.fromarray(_array_to_uint8(image, where)), where)
    raise TypeError(
        f"unsupported image type {type(image).__name__}{where}; expected a PIL image, a path, "
        "a numpy array or a torch tensor"
    )


def _tensor_to_numpy(tensor: torch.Tensor, where: str) -> np.ndarray:
    """A dense tensor's pixels as a numpy array, for `_array_to_uint8` to check. Tensors
    numpy cannot hold are a ValueError naming the input (they were torch's TypeError or
    NotImplementedError: "Got unsupported ScalarType Float8_e4m3fn", "Cannot copy out of
    meta tensor")."""
    if tensor.layout != torch.strided or tensor.is_quantized or tensor.device.type == "meta":
        kind = "quantized" if tensor.is_quantized else ("on the meta device" if tensor.device.type == "meta"
                                                       else f"of layout {tensor.layout}")
        raise ValueError(f"image tensor{where} is {kind}; give a dense tensor holding its pixels")
    if tensor.is_floating_point():
        if tensor.dtype not in (torch.float16, torch.float32, torch.float64):
            tensor = tensor.float()  # bfloat16, float8: numpy has neither; float32 holds them exactly
    elif tensor.dtype != torch.uint8:  # the array check's message, also for dtypes numpy lacks
        raise ValueError(f"image tensor{where} has dtype {tensor.dtype}; expected uint8, or float in [0, 1]")
    return tensor.detach().cpu().numpy()


@contextlib.contextmanager
def _opened(path: str, name: Optional[str], open_errors_as_pil: bool = False) -> Iterator[Image.Image]:
    """`Image.open(path)` limited to RASTER_FORMATS, its failures (and those of the block: a
    truncated file fails when it is decoded, a damaged TIFF page when its pages are counted)
    as errors naming the path: missing, a folder, not an image, damaged. Every loader here
    opens files through it. open_errors_as_pil: PIL's two refusals at open, not an image
    and a decompression bomb, keep their class (`check_host_conversion`: the training
    record's message has said "UnidentifiedImageError: cannot identify image file ...")."""
    where = f" ({name})" if name else ""
    label = f"{path!r}{where}"
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f"image file not found{where}", path)
    if os.path.isdir(path):  # was "[Errno 21] Is a directory: ...", which did not say it was the image
        raise IsADirectoryError(errno.EISDIR, f"image path is a folder, not an image file{where}", path)
    try:
        with Image.open(path, formats=RASTER_FORMATS) as img:
            yield img
    except UnidentifiedImageError as e:
        if open_errors_as_pil:
            raise UnidentifiedImageError(f"{e} (images are read as {_FORMATS_SAID})") from e
        raise ValueError(f"{label} is not a readable image: {e} (images are read as {_FORMATS_SAID})") from e
    except Image.DecompressionBombError as e:
        if open_errors_as_pil:
            raise
        raise ValueError(f"{label} is not a readable image: {e}") from e
    except (PermissionError, IsADirectoryError, NotADirectoryError):
        raise
    except _DAMAGED_FILE_ERRORS as e:  # truncated or corrupt data, broken chunks, a damaged page
        if isinstance(e, ValueError) and not _raised_by_pil(e):
            raise  # one of the checks here: it names the image and says why
        raise ValueError(f"{label} is not a readable image: {e}") from e


def _open_image(path: str, name: Optional[str]) -> Image.Image:
    """Open, fully decode and close `path`. Not-an-image -> ValueError naming the path."""
    label = f"{path!r}" + (f" ({name})" if name else "")
    with _opened(path, name) as img:
        check_file_header(img, label)  # before decoding it
        with_alpha = _hidden_alpha(img)
        if with_alpha is not None:
            return _to_rgb(with_alpha, f" {label}")
        img.load()  # decode now; leaving the block closes the file and invalidates
        # `img` itself, which is why _to_rgb always returns a new image.
        return _to_rgb(img, f" {label}")


def check_file_header(img: Image.Image, label: str) -> None:
    """ValueError for what every loader refuses, read before the pixels are decoded: a
    format outside RASTER_FORMATS, more pixels than the bomb limit, an animation, an EXIF
    orientation (also from a PNG's eXIf chunk after the image data), 32-bit or CIELAB
    pixels, a TIFF's unspecified extra samples. The one check of a file's header that
    load_image, check_host_reads_alike and num_llm_positions share (was: num_llm_positions
    counted a PNG whose late eXIf chunk preprocess refused)."""
    check_format(img, label)
    check_pixel_count(img, label)
    _check_convertible(img, f" {label}")
    extra = getattr(img, "tag_v2", {}).get(_TIFF_EXTRA_SAMPLES)
    if extra is not None and 0 in (extra if isinstance(extra, tuple) else (extra,)):
        raise ValueError(f"image {label} is a TIFF with extra samples marked 'unspecified' (ExtraSamples 0), "
                         "which PIL drops: if one is an alpha channel, the model would see the colour under "
                         "transparent pixels; save it as RGB, or as RGBA with its alpha marked")


def check_format(img: Image.Image, label: str) -> None:
    """ValueError for an image opened in a format outside RASTER_FORMATS (a caller that
    opened it without `formats=`, as deepmolm-prepare opens the bytes it copies): PIL
    decodes EPS / PDF with Ghostscript."""
    if img.format is not None and img.format not in RASTER_FORMATS:
        raise ValueError(f"image {label} is {img.format}, not one of the raster formats read here "
                         f"({_FORMATS_SAID}), whatever its name says; convert it to PNG first")


def _hidden_alpha(img: Image.Image) -> Optional[Image.Image]:
    """A 32-bit BMP's pixels as RGBA, where PIL reads it as RGB: PIL takes the 4th byte of
    an uncompressed 32-bit BMP for padding ("BGRX"), though writers (PIL's own RGBA save
    among them) put the alpha there, so a black drawing on transparent black read as all
    black (was: accepted by every check). None when the file has no such byte, or when it
    is one value throughout (padding: usually 0). Read from the undecoded file with PIL's
    own unpacker; a decoded image has no tile left to read (None)."""
    if img.format != "BMP" or img.mode != "RGB" or len(img.tile) != 1 or img.fp is None:
        return None
    tile = img.tile[0]
    rawmode, stride, orientation = tile.args
    if tile.codec_name != "raw" or "X" not in rawmode:
        return None
    img.fp.seek(tile.offset)
    data = img.fp.read(abs(stride) * img.height)
    rgba = Image.frombytes("RGBA", img.size, data, "raw", rawmode.replace("X", "A"), stride, orientation)
    low, high = rgba.getchannel("A").getextrema()
    return rgba if low != high else None


def check_host_readable(path: str) -> None:
    """`path` decodes as `load_image` reads it (ValueError / OSError: not an image,
    truncated, an animation...) and the host's own `convert("RGB")` sees the same picture
    (`check_host_conversion`). What the chat CLI and model_vqa check before the model loads."""
    load_image(path)
    check_host_conversion(path)


def check_host_conversion(path: str) -> None:
    """ValueError naming `path` when PIL's plain `Image.open(path).convert("RGB")`, which the
    host's loaders use (its training dataset, model_vqa, the chat CLI), reads other pixels
    than `load_image`: it keeps the colour under transparent pixels (a black drawing on a
    transparent black background became all black), clips 16-bit grey at 255 (all white),
    reads float grey in [0, 1] as black, takes an animation's first frame and reads a 32-bit
    BMP without its alpha (the 4th byte of each pixel). Files that both read as
    another picture than the file shows are refused too (`load_image` refuses them as
    well): an EXIF orientation (viewers turn the picture, neither loader does), CIELAB
    (PIL's conversion changes the colours), a format outside RASTER_FORMATS, and more
    pixels than PIL's decompression-bomb limit, decoded or on the host's square pad canvas
    (gigabytes for one view; deepmolm-prepare refuses them). So is an image of one colour
    throughout (`check_shows_something`: it shows no molecule).

    The training dataset checks every image each time it is read, so a file that passed is
    remembered by (path, modification time, size) and costs a stat() the next epoch; a
    changed file is checked again."""
    stat = os.stat(path)
    _host_conversion_verdict(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=1 << 15)  # 32k files, ~10 MB per process; beyond that some are checked again
def _host_conversion_verdict(path: str, mtime_ns: int, size: int) -> None:
    """check_host_conversion's work; returns (and so is cached) only when the file passes."""
    # was a bare Image.open: a damaged EXIF block was a raw SyntaxError, an EPS file was opened as one
    with _opened(path, None, open_errors_as_pil=True) as img:
        check_host_reads_alike(img, repr(path))


# The most a channel may vary over an image that still counts as one colour, in 8-bit
# levels (of 255): a flat colour saved as JPEG (any quality) decodes within 2 levels of
# itself, and sensor noise of 1.5 levels (s.d.) on blank paper spans about 8 after JPEG;
# a molecule's lines are dark or coloured on a light background, a hundred levels and
# more apart.
ONE_COLOUR_SPREAD = 16


def check_shows_something(rgb: Image.Image, label: str) -> None:
    """ValueError naming `label` for an RGB image of one colour throughout (every channel
    within ONE_COLOUR_SPREAD levels; a transparent image as read, on white): it shows no
    molecule, and a model given it answers about nothing. Part of `check_host_reads_alike`,
    the one check of an image file that the GUI, the chat CLI's --image-file, eval's
    `image` fields, training's records (`check_host_conversion`) and deepmolm-prepare all
    run (was: accepted; the GUI said "Image: yours" under a blank square). A drawn
    depiction is refused blank by `render_molecule`; in-memory images (the blank image
    training gives text-only records) are not checked."""
    extrema = rgb.getextrema()  # ((low, high) per channel)
    if all(high - low <= ONE_COLOUR_SPREAD for low, high in extrema):
        low, high = tuple(lo for lo, _ in extrema), tuple(hi for _, hi in extrema)
        colour = f"RGB {low}" if low == high else f"RGB {low} to {high}"
        raise ValueError(f"image {label} is one colour throughout ({colour}): it shows no molecule")


def check_host_reads_alike(img: Image.Image, label: str) -> None:
    """`check_host_conversion` on an opened, not yet decoded image (`label` names it):
    deepmolm-prepare checks the bytes it copies with it, training the file it reads, and
    the GUI, the chat CLI and eval a user's image. Decodes every image, to see that it
    is not one colour (was: only those in the modes where the two loaders differ)."""
    check_file_header(img, label)
    check_pad_canvas(img.width, img.height, label)
    with_alpha = _hidden_alpha(img)  # a 32-bit BMP's alpha, which PIL (and so the host) does not read
    transparent = with_alpha is not None or img.mode in _ALPHA_MODES or "transparency" in img.info
    img.load()
    with warnings.catch_warnings():
        # PIL warns on convert("RGB") of a palette image whose transparency is given per index
        # (a PNG tRNS, even one naming an unused index): this is the host's own conversion,
        # checked against ours just below, so the warning was a stray stderr line, not news
        warnings.filterwarnings("ignore", message="Palette images with Transparency expressed in bytes",
                                category=UserWarning)
        host = img.convert("RGB")
    if transparent or img.mode in _OWN_MODES:
        _check_same_pixels(img, with_alpha, host, transparent, label)
    check_shows_something(host, label)  # the host's pixels: load_image's too, as just checked


def _check_same_pixels(img: Image.Image, with_alpha: Optional[Image.Image], host: Image.Image, transparent: bool,
                       label: str) -> None:
    """`check_host_reads_alike`'s ValueError when `host`, the host's `convert("RGB")` of
    `img`, is not `load_image`'s picture of it."""
    ours = _to_rgb(img if with_alpha is None else with_alpha, f" {label}")
    if host.tobytes() != ours.tobytes():
        how = ("reads a 32-bit BMP without its alpha channel and so keeps the colour under transparent pixels"
               if with_alpha is not None else "keeps the colour under transparent pixels" if transparent
               else "clips 16-bit values at 255")
        raise ValueError(f"image {label} (mode {'RGBA' if with_alpha is not None else img.mode}"
                         f"{', transparent' if transparent else ''}): the host reads it with PIL's "
                         f"convert('RGB'), which {how}, so it would see another picture; "
                         "save it as 8-bit RGB (transparent areas on white) first")


def check_pad_canvas(width: int, height: int, label: str) -> None:
    """ValueError for an image whose square canvas is over PIL's decompression-bomb limit.
    The host's `image_aspect_ratio pad` (every DeepMoLM model), and `preprocess(...,
    square_first=True)`, paste the image on a long side x long side canvas before resizing
    it, the view the models were trained on: a 20000 x 20 px file (0.4 M px) cost 3 GB and 7 s per read, an
    89000 x 1000 px one would need 24 GB (an OOM kill). Was: only the decoded pixels were
    bounded. Refused rather than padded another way, because resizing first gives another
    view than the one the models saw (up to 0.33 along the content's border)."""
    limit = Image.MAX_IMAGE_PIXELS
    side = max(width, height)
    if limit and side * side > limit:
        raise ValueError(f"image{' ' + label if label else ''} is {width}x{height} px: the models' view pads it "
                         f"to a square of its long side first, {side}x{side} = {side * side} px, over PIL's "
                         f"decompression-bomb limit of {limit} px (Image.MAX_IMAGE_PIXELS), gigabytes for one "
                         f"view; crop its margins or resize it to a long side of at most {math.isqrt(limit)} px")


def check_pixel_count(img: Image.Image, label: str) -> None:
    """ValueError naming `label` for an image over PIL's decompression-bomb limit
    (`Image.MAX_IMAGE_PIXELS`, ~89 M px; None turns it off). PIL only warns up to twice that
    and decodes it: hundreds of MB to GB for a view of 1024 px, every time it is read.
    Checked from the header, before decoding; deepmolm-prepare refuses the same images."""
    check_pixels(img.width, img.height, label)


def check_pixels(width: int, height: int, label: str) -> None:
    """check_pixel_count for a width and height (an array's, a tensor's)."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit and width * height > limit:
        raise ValueError(f"image {label} is {width}x{height} = {width * height} px, over PIL's "
                         f"decompression-bomb limit of {limit} px (Image.MAX_IMAGE_PIXELS): decoding it would "
                         "cost gigabytes for one view; resize it first")


def check_orientation(img: Image.Image, where: str) -> None:
    """ValueError for an image with an EXIF orientation other than "as stored": viewers
    (the GUI's preview, a browser) show it mirrored or turned, while the host's loaders,
    like `load_image`, read the stored pixels, so the model would see another picture
    than the user. Applying it here only would make the global view (the host's) and the
    tiles (ours) disagree. TIFFs are fine: PIL itself turns them when it opens them."""
    if hasattr(img, "tag_v2"):  # a TIFF: every loader gets the picture turned already
        return
    orientation = _orientation(img, where)
    if orientation in range(2, 9):
        raise ValueError(f"image{where} has EXIF orientation {orientation} (viewers show it mirrored or turned), "
                         "but the model reads its pixels as stored and would see another picture; save it with "
                         "the orientation applied (PIL: ImageOps.exif_transpose(image))")


def _orientation(img: Image.Image, where: str = "") -> int:
    """The EXIF orientation tag (1: as stored). From the EXIF bytes PIL has read so far, or a
    PNG's eXIf chunk after the image data (PIL reads it only when it decodes; found here
    without decoding), parsed afresh: getexif() keeps its first answer. Without those bytes,
    the base class's getexif (PNG's own would decode the whole image to look for them). A
    damaged EXIF block is a ValueError saying so (was: "not a readable image", for intact pixels)."""
    raw = img.info.get("exif") or _png_exif_after_data(img)
    try:
        if raw:
            exif = Image.Exif()
            exif.load(raw)
            return exif.get(_EXIF_ORIENTATION, 1)
        return Image.Image.getexif(img).get(_EXIF_ORIENTATION, 1)
    except _DAMAGED_FILE_ERRORS as e:
        raise ValueError(f"image{where} has a damaged EXIF block ({type(e).__name__}: {e}), so its orientation "
                         "cannot be read; save it again without EXIF") from e


def _png_exif_after_data(img: Image.Image) -> Optional[bytes]:
    """The eXIf chunk of an undecoded PNG, found by walking its chunk headers (cheap: no
    pixel is decoded), or None. The file position is restored for PIL's own decode."""
    if img.format != "PNG" or getattr(img, "fp", None) is None:
        return None
    fp = img.fp
    position = fp.tell()
    try:
        fp.seek(8)  # past the signature
        while True:
            head = fp.read(8)
            if len(head) < 8:
                return None
            length, kind = struct.unpack(">I4s", head)
            if kind == b"eXIf":
                return fp.read(length)
            if kind == b"IEND":
                return None
            fp.seek(length + 4, os.SEEK_CUR)  # the data and its CRC
    finally:
        fp.seek(position)


def _array_to_uint8(array: np.ndarray, where: str) -> np.ndarray:
    """Check shape/dtype/range of an H x W [x C] array and return it as uint8."""
    shape_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))
    if not shape_ok or array.shape[0] == 0 or array.shape[1] == 0:
        channels_first = array.ndim == 3 and array.shape[0] in (1, 3, 4)  # torchvision's C x H x W
        hint = "; it looks channels-first (C x H x W): move the channels last" if channels_first else ""
        raise ValueError(
            f"image array{where} has shape {tuple(array.shape)}; expected H x W, H x W x 1, "
            f"H x W x 3 or H x W x 4 (channels last, non-empty){hint}"
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError(f"float image array{where} contains NaN or inf")
        lo, hi = float(array.min()), float(array.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"float image array{where} has values in [{lo:g}, {hi:g}]; expected [0, 1]"
            )
        return np.round(array.astype(np.float64) * 255.0).astype(np.uint8)
    raise ValueError(
        f"image array{where} has dtype {array.dtype}; expected uint8, or float in [0, 1]"
    )


def _check_convertible(img: Image.Image, where: str) -> None:
    """ValueError for what `_to_rgb` refuses, read from the header alone (no pixel decoded):
    an animation, an EXIF orientation, 32-bit int / float pixels, CIELAB."""
    frames = getattr(img, "n_frames", 1)
    if frames > 1:  # PIL would hand over the first frame and silently drop the others
        raise ValueError(f"image{where} has {frames} frames (an animation or a multi-page file); "
                         "give a single image")
    check_orientation(img, where)
    if img.mode in ("I", "F"):
        raise ValueError(
            f"image{where} has mode {img.mode!r} (32-bit int / float pixels) with no defined "
            "range; convert it to an 8-bit mode first"
        )
    if img.mode == "LAB":
        raise ValueError(f"image{where} is CIELAB (mode 'LAB'), which PIL converts to RGB with wrong colours "
                         "(white becomes cyan); save it as RGB with a colour-managed tool first")


def _to_rgb(img: Image.Image, where: str) -> Image.Image:
    """Any 8-bit (or 16-bit gray) PIL mode -> RGB, alpha composited onto white."""
    _check_convertible(img, where)
    if img.mode == "La":  # premultiplied alpha: PIL converts it to nothing but "LA"
        img = img.convert("LA")
    if img.mode in _16BIT_MODES:
        img = _gray16_to_8bit(img)
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode == "RGB":
        return img.copy()  # a new object: the caller's may be mutated or closed later
    return img.convert("RGB")


def _gray16_to_8bit(img: Image.Image) -> Image.Image:
    """16-bit grey -> "L", rescaled: convert("L") would clip at 255 (almost everything
    white). A transparent grey value (PNG tRNS) becomes an alpha channel ("LA"), matched on
    the 16-bit values: `Image.fromarray` keeps no `info`, so it used to be dropped."""
    gray = np.asarray(img)
    # == round(gray / 257): x / 257 is never halfway between integers (257 is odd); in
    # uint32, not float64, which took 8 bytes a pixel, twice over.
    img8 = Image.fromarray(((gray.astype(np.uint32) + 128) // 257).astype(np.uint8))
    key = img.info.get("transparency")
    if key is None:
        return img8
    alpha = Image.fromarray(np.where(gray == key, 0, 255).astype(np.uint8))
    return Image.merge("LA", (img8, alpha))


# --------------------------------------------------------------------------------------
# Tiling and token counts
# --------------------------------------------------------------------------------------


def best_tile_grid(
    width: int, height: int, tile_size: int = 640, min_tiles: int = 2, max_tiles: int = 6
) -> Optional[Grid]:
    """Grid (cols, rows) of tiles for a `width` x `height` image, or None for no tiles.

    Same choice as DeepSeek-OCR's `dynamic_preprocess` / InternVL's
    `find_closest_aspect_ratio`, so tiles match what the pretrained encoder saw: the grid
    whose aspect cols/rows is closest to width/height, among min_tiles..max_tiles tiles;
    on an exact tie the larger grid wins only if the image has enough pixels to fill more
    than half of it.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if not 1 <= min_tiles <= max_tiles:
        raise ValueError(f"need 1 <= min_tiles <= max_tiles, got {min_tiles}, {max_tiles}")
    if width <= tile_size and height <= tile_size:
        return None
    candidates = sorted(
        set(
            (i, j)
            for n in range(min_tiles, max_tiles + 1)
            for i in range(1, n + 1)
            for j in range(1, n + 1)
            if min_tiles <= i * j <= max_tiles
        ),
        key=lambda x: x[0] * x[1],
    )
    aspect = width / height
    area = width * height
    best, best_diff = (1, 1), float("inf")
    for i, j in candidates:
        diff = abs(aspect - i / j)
        if diff < best_diff:
            best, best_diff = (i, j), diff
        elif diff == best_diff and area > 0.5 * tile_size * tile_size * i * j:
            best = (i, j)
    return best


def check_fits_view(width: int, height: int, side: int, where: str = "") -> None:
    """Refuse an image whose aspect ratio is so extreme that, resized to fit the
    ``side`` x ``side`` global view, its short side would round to 0 px: PIL would fail
    with "height and width must be > 0", and nothing of the image would be left to see."""
    short = round(min(width, height) / max(width, height) * side)
    if short < 1:
        raise ValueError(
            f"image{where} is {width}x{height} px: fitted into the {side} px view its short side would be "
            f"{min(width, height) / max(width, height) * side:.2f} px, so nothing of it would be left; "
            "crop it or pad it to a less extreme aspect ratio"
        )


def num_llm_positions_for_grid(
    image_size: int, tile_size: int, grid: Optional[Grid], token_stride: int = TOKEN_STRIDE
) -> int:
    """LLM positions for one image laid out by the projector.

    Layout: the local mosaic (tiles in their grid) as rows of tokens, each row followed by
    a newline position; then the global view's rows, each followed by a newline; then one
    view separator. grid=None (no tiles) leaves only the global part: g * (g + 1) + 1,
    273 at 1024 px.
    """
    for side in (image_size, tile_size):
        if side <= 0 or side % token_stride:
            raise ValueError(f"view side {side} is not a positive multiple of {token_stride} px")
    g = image_size // token_stride
    n = g * (g + 1) + 1
    if grid is not None:
        cols, rows = grid
        if cols < 1 or rows < 1:
            raise ValueError(f"tile grid must be at least 1x1, got {grid}")
        t = tile_size // token_stride
        n += (rows * t) * (cols * t + 1)
    return n


# --------------------------------------------------------------------------------------
# Processor
# --------------------------------------------------------------------------------------


def _label(item: ImageInput, name: Optional[str]) -> str:
    """How a message names an input: images[k], a path's repr, or its kind."""
    if name:
        return name
    return repr(os.fspath(item)) if isinstance(item, (str, os.PathLike)) else f"({type(item).__name__} in memory)"


def _check_three(name: str, values, allowed: Callable[[float], bool], what: str) -> None:
    """ValueError unless `values` is 3 real, finite numbers each `allowed` (one per RGB channel)."""
    items = None if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)) else list(values)
    ok = items is not None and len(items) == 3 and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and allowed(v) for v in items)
    if not ok:
        raise ValueError(f"{name} must be 3 {what}, got {values!r}")


class DeepEncoderImageProcessor:
    """Images -> DeepEncoder input views (see the module docstring for the two modes)."""

    def __init__(
        self,
        image_size: int = 1024,
        tile_size: int = 640,
        mode: str = "base",
        min_tiles: int = 2,
        max_tiles: int = 6,
        image_mean: Sequence[float] = (0.5, 0.5, 0.5),
        image_std: Sequence[float] = (0.5, 0.5, 0.5),
        token_stride: int = TOKEN_STRIDE,
    ):
        self._check_mode(mode)
        # each argument named: "1024" or a stride of 0 failed in the arithmetic below (a bare
        # TypeError, ZeroDivisionError), and a mean outside 0..1 gave a pad colour outside
        # 0..255 (510), which no longer normalises to 0
        for name, value in (("image_size", image_size), ("tile_size", tile_size), ("min_tiles", min_tiles),
                            ("max_tiles", max_tiles), ("token_stride", token_stride)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name, side in (("image_size", image_size), ("tile_size", tile_size)):
            if side % token_stride:
                raise ValueError(f"{name}={side} is not a positive multiple of {token_stride} px")
        if not 1 <= min_tiles <= max_tiles:
            raise ValueError(f"need 1 <= min_tiles <= max_tiles, got {min_tiles}, {max_tiles}")
        # was: a NaN / inf std accepted (all-NaN or all-zero views), a string std a bare
        # TypeError, and the mean's message printed '0.5' as 0.5
        _check_three("image_mean", image_mean, lambda m: 0 <= m <= 1, "values in 0..1 (finite numbers, of the 0..255 range)")
        _check_three("image_std", image_std, lambda s: s > 0, "finite positive numbers")
        self.image_size = int(image_size)
        self.tile_size = int(tile_size)
        self.mode = mode
        self.min_tiles = int(min_tiles)
        self.max_tiles = int(max_tiles)
        self.image_mean = [float(m) for m in image_mean]
        self.image_std = [float(s) for s in image_std]
        self.token_stride = int(token_stride)
        # The LLaVA host reads these (dummy images, its own pad colour).
        self.crop_size = {"height": self.image_size, "width": self.image_size}
        self.size = {"height": self.image_size, "width": self.image_size}

    @classmethod
    def from_config(
        cls, config: DeepEncoderConfig, mode: str = "base"
    ) -> "DeepEncoderImageProcessor":
        """The processor of a tower with `config` running in `mode`: where a configuration
        meets its mode, so in tiles mode its tiles are checked against its global view here
        (DeepEncoderConfig.check_tiles, with this processor's max_tiles), for every tower
        and every check made before one is built. Was: only the train launcher's
        --deepencoder_config was checked, and a saved model's tiles configuration ran:
        192 px tiles of a 128 px view, none at all for an image up to 192 px."""
        processor = cls(
            image_size=config.image_size,
            tile_size=config.tile_size,
            mode=mode,
            token_stride=config.token_stride,
        )
        if mode == "tiles":
            config.check_tiles(processor.max_tiles)
        return processor

    def to_dict(self) -> Dict[str, Any]:
        return {
            "image_processor_type": type(self).__name__,
            "image_size": self.image_size,
            "tile_size": self.tile_size,
            "mode": self.mode,
            "min_tiles": self.min_tiles,
            "max_tiles": self.max_tiles,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
            "token_stride": self.token_stride,
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "DeepEncoderImageProcessor":
        d = dict(d)
        kind = d.pop("image_processor_type", cls.__name__)
        if kind != cls.__name__:
            raise ValueError(f"image_processor_type is {kind!r}, expected {cls.__name__!r}")
        known = {"image_size", "tile_size", "mode", "min_tiles", "max_tiles", "image_mean",
                 "image_std", "token_stride"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown DeepEncoderImageProcessor fields: {unknown}")
        return cls(**d)

    def __repr__(self) -> str:
        fields = {k: v for k, v in self.to_dict().items() if k != "image_processor_type"}
        args = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        return f"{type(self).__name__}({args})"

    # --- views -----------------------------------------------------------------------------

    @property
    def pad_color(self) -> Tuple[int, int, int]:
        """Global-view pad colour, (127, 127, 127) for mean 0.5: the same rule the host uses."""
        return tuple(int(m * 255) for m in self.image_mean)

    def global_view(self, image: ImageInput, square_first: bool = False) -> Image.Image:
        """Any image `preprocess` takes (a PIL image, a path, an array, a tensor; `load_image`:
        RGB, alpha composited on white) -> its RGB global view, as `preprocess` makes it before
        normalising (was: a path was an AttributeError, an RGBA image came back RGBA, its
        transparent pixels black where `preprocess` makes them white)."""
        image = load_image(image)
        check_fits_view(*image.size, self.image_size)
        if square_first:
            check_pad_canvas(*image.size, "")
        return self._global_view(image, square_first)

    def _global_view(self, image: Image.Image, square_first: bool = False) -> Image.Image:
        """RGB image -> image_size x image_size, aspect kept, centred, mean-colour padding.

        square_first=False (default, as before): resized, then padded (DeepSeek-OCR's
        ImageOps.pad, the view the pretrained DeepEncoder saw). True: padded to a square of
        its long side, then resized: the host's `image_aspect_ratio pad` (llava's
        expand2square), the view every DeepMoLM model was trained on and sees in chat, eval
        and the GUI; use it to compute features for a trained model. The two differ along
        the content's border (a 200 x 120 drawing at 256 px: 5 % of the values, by up to
        0.33); a square image gives the same view either way."""
        if square_first:
            image = self.square(image)
        size = (self.image_size, self.image_size)
        return ImageOps.pad(
            image, size, method=Image.Resampling.BICUBIC, color=self.pad_color, centering=(0.5, 0.5)
        )

    def square(self, image: Image.Image) -> Image.Image:
        """`image` pasted centred on a square of its long side, in the pad colour: the host's
        expand2square (llava.mm_utils), which the encoder package does not import."""
        width, height = image.size
        if width == height:
            return image
        side = max(width, height)
        check_pad_canvas(width, height, "")  # callers name the image (preprocess checks first)
        canvas = Image.new(image.mode, (side, side), self.pad_color)
        canvas.paste(image, ((side - width) // 2, (side - height) // 2))
        return canvas

    def tiles(self, image: Image.Image) -> Tuple[List[Image.Image], Optional[Grid]]:
        """RGB image -> (tiles, row-major, and grid (cols, rows)); ([], None) if it fits one tile."""
        grid = best_tile_grid(*image.size, self.tile_size, self.min_tiles, self.max_tiles)
        if grid is None:
            return [], None
        cols, rows = grid
        t = self.tile_size
        # Stretched, not padded: the grid already matches the aspect as well as it can.
        resized = image.resize((t * cols, t * rows), resample=Image.Resampling.BICUBIC)
        boxes = [(c * t, r * t, (c + 1) * t, (r + 1) * t) for r in range(rows) for c in range(cols)]
        crops = [resized.crop(box) for box in boxes]  # row by row, left to right
        return crops, grid

    def normalize(self, image: Image.Image) -> torch.Tensor:
        """RGB PIL image (W x H) -> float32 (3, H, W), (x / 255 - mean) / std."""
        x = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())  # (H, W, 3) uint8
        x = x.permute(2, 0, 1).to(torch.float32).div_(255.0)  # (3, H, W) in [0, 1]
        mean = torch.tensor(self.image_mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.image_std, dtype=torch.float32).view(3, 1, 1)
        return (x - mean) / std

    # --- public API ------------------------------------------------------------------------

    def preprocess(
        self,
        images: Union[ImageInput, Sequence[ImageInput]],
        return_tensors: str = "pt",
        mode: Optional[str] = None,
        square_first: bool = False,
    ) -> BatchFeature:
        """One image or a list -> BatchFeature.

        pixel_values: float32 (n_images, 3, image_size, image_size), global views
        (square_first=True: the view trained DeepMoLM models saw, see `global_view`).
        tiles mode also: tile_pixel_values, a list of float32 (t_k, 3, tile_size, tile_size)
        (t_k may be 0), and tile_grids, a list of (cols, rows) or None.
        """
        if return_tensors != "pt":
            raise ValueError(f"only return_tensors='pt' is supported, got {return_tensors!r}")
        mode = self.mode if mode is None else self._check_mode(mode)
        batch = list(images) if isinstance(images, (list, tuple)) else [images]
        if not batch:
            raise ValueError("preprocess got an empty list of images")

        global_views, tile_stacks, grids = [], [], []
        for k, item in enumerate(batch):
            name = f"images[{k}]" if isinstance(images, (list, tuple)) else None
            image = load_image(item, name=name)
            label = name or (repr(os.fspath(item)) if isinstance(item, (str, os.PathLike)) else None)
            check_fits_view(*image.size, self.image_size, f" ({label})" if label else "")
            if square_first:
                check_pad_canvas(*image.size, label or "")
            global_views.append(self.normalize(self._global_view(image, square_first)))  # (3, S, S)
            if mode == "tiles":
                crops, grid = self.tiles(image)
                if crops:
                    stack = torch.stack([self.normalize(c) for c in crops])  # (t_k, 3, T, T)
                else:
                    stack = torch.empty(0, 3, self.tile_size, self.tile_size, dtype=torch.float32)
                tile_stacks.append(stack)
                grids.append(grid)

        data: Dict[str, Any] = {"pixel_values": torch.stack(global_views)}  # (n, 3, S, S)
        if mode == "tiles":
            data["tile_pixel_values"] = tile_stacks
            data["tile_grids"] = grids
        # No tensor_type: everything is already a tensor, and the ragged tile list must
        # not go through BatchFeature's conversion.
        return BatchFeature(data=data)

    __call__ = preprocess

    def tile_inputs(self, image: ImageInput) -> Tuple[torch.Tensor, Optional[Grid]]:
        """One image's tiles-mode inputs, as the training batch and `generate` take them:
        float32 (T, 3, tile_size, tile_size) (T = 0 when the image fits one tile) and the
        grid (cols, rows) or None."""
        views = self.preprocess(image, return_tensors="pt", mode="tiles")
        return views["tile_pixel_values"][0], views["tile_grids"][0]

    def num_llm_positions(
        self, image_or_size: Union[ImageInput, Tuple[int, int]], mode: Optional[str] = None
    ) -> int:
        """LLM positions this image takes after the projector (273 at 1024 px in base mode).

        `image_or_size` is an image (anything `load_image` takes) or a (width, height) tuple.
        """
        mode = self.mode if mode is None else self._check_mode(mode)
        width, height = self._image_size_of(image_or_size)  # checked in both modes
        check_fits_view(width, height, self.image_size)  # what preprocess would refuse has no count
        grid = None
        if mode == "tiles":
            grid = best_tile_grid(width, height, self.tile_size, self.min_tiles, self.max_tiles)
        return num_llm_positions_for_grid(self.image_size, self.tile_size, grid, self.token_stride)

    # --- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _check_mode(mode: str) -> str:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        return mode

    @staticmethod
    def _image_size_of(image_or_size: Union[ImageInput, Tuple[int, int]]) -> Tuple[int, int]:
        """(width, height) of an image, or a (width, height) tuple checked and returned."""
        if isinstance(image_or_size, tuple):
            if len(image_or_size) != 2 or not all(
                isinstance(v, (int, np.integer)) and v > 0 for v in image_or_size
            ):
                raise ValueError(
                    f"image size must be (width, height) positive ints, got {image_or_size}"
                )
            return int(image_or_size[0]), int(image_or_size[1])
        # An image's size from its header; what preprocess would refuse has no count (an
        # animation and an EXIF-rotated photo got one), and a file is not decoded for it
        # (an 8000 x 8000 PNG took 244 MB to count).
        if isinstance(image_or_size, Image.Image):
            _check_convertible(image_or_size, "")
            return image_or_size.size
        if isinstance(image_or_size, (str, os.PathLike)):
            path = os.fspath(image_or_size)
            with _opened(path, None) as img:  # a folder was a bare "[Errno 21] Is a directory"
                check_file_header(img, repr(path))  # preprocess's own check of the file
                return img.size
        return load_image(image_or_size).size
