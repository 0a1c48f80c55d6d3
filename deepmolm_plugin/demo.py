"""`make demo`: the main job, runnable on a 2-core CPU with nothing downloaded.

Current scope (the DeepEncoder issue): depict a real molecule with RDKit, preprocess it
in base and tiles mode, and encode it with the full-size DeepEncoder in bf16. No trained
weights ship with this repository and none can be downloaded here, so the tower is
explicitly random ("random" weights): the demo shows shapes, LLM position counts and
speed, not features. Pass `--weights PATH` to use a real checkpoint (any layout
`load_deepencoder` accepts). The training-and-chat demo replaces this in the
host-integration issue.
"""

from __future__ import annotations

import argparse
import time

import torch
from rdkit import Chem
from rdkit.Chem import Draw

from .encoder import DeepEncoder, DeepEncoderConfig, DeepEncoderImageProcessor, load_deepencoder


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smiles", default="CC(=O)Oc1ccccc1C(=O)O", help="molecule to depict (aspirin)")
    parser.add_argument("--weights", default=None, help="DeepEncoder checkpoint; default: random weights")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    args = parser.parse_args(argv)

    mol = Chem.MolFromSmiles(args.smiles)
    if mol is None:
        raise SystemExit(f"RDKit cannot parse SMILES {args.smiles!r}")
    image = Draw.MolToImage(mol, size=(1024, 1024))
    torch.manual_seed(0)
    t0 = time.perf_counter()
    if args.weights:
        encoder = load_deepencoder(args.weights, dtype=args.dtype)
        print(encoder.load_report.summary())
    else:
        encoder = DeepEncoder(DeepEncoderConfig(dtype=args.dtype)).to(getattr(torch, args.dtype))
        print("DeepEncoder with RANDOM weights (no checkpoint given): shapes and speed only")
    encoder.eval()
    n_params = sum(p.numel() for p in encoder.parameters())
    print(f"built {n_params / 1e6:.1f} M parameters in {time.perf_counter() - t0:.1f} s")

    for mode in ("base", "tiles"):
        processor = DeepEncoderImageProcessor.from_config(encoder.config, mode=mode)
        batch = processor.preprocess(image, return_tensors="pt")
        views = [batch["pixel_values"]] + [t for t in batch.get("tile_pixel_values", []) if len(t)]
        t0 = time.perf_counter()
        with torch.inference_mode():
            outs = [encoder(v) for v in views]
        shapes = ", ".join(str(tuple(o.shape)) for o in outs)
        print(
            f"{mode:5s} mode: views {shapes} -> {processor.num_llm_positions(image)} LLM positions "
            f"({time.perf_counter() - t0:.1f} s, {args.dtype})"
        )


if __name__ == "__main__":
    main()
