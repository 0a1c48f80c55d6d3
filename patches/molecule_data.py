"""molecule_fp through the host's data pipeline.

The host's `LazySupervisedDataset` yields input_ids, labels and image; its collator keeps
input_ids, labels, attention_mask and images. Their methods are wrapped to add:

- per record, `molecule_fp` from its molecule field (deepmolm_plugin.data.records);
  records with a molecule but no image get their depiction rendered once at start-up,
  into `--render_folder` (default `<data_path>.renders/`);
- in `--image_mode tiles`, the record's 640 px tiles and their grid;
- for records with `properties`, those labels and the molecule's 2D graph (the KFLM2
  auxiliary head's inputs; the head masks properties a record lacks);
- in the batch, `molecule_fp` (B, max_atoms, levels) padded with -1, next to `images`,
  which the Trainer hands to the model's forward as a keyword.
A record the projector cannot serve is an error naming the record.
"""

from __future__ import annotations

import os

from . import _host


def _patch_dataset(cls) -> None:
    """Wrap the host's dataset methods in place: its __init__ calls
    `super(LazySupervisedDataset, self)` through the module global, so a subclass bound
    to that name would recurse."""
    from PIL import Image
    from tqdm import tqdm

    from deepmolm_plugin.data.graphs import record_graph
    from deepmolm_plugin.data.records import MoleculeInputs, RecordError, record_id

    host_init, host_getitem = cls.__init__, cls.__getitem__

    def __init__(self, data_path, tokenizer, data_args):
        host_init(self, data_path, tokenizer, data_args)
        if data_args.image_folder is None:
            # The host joins it with every image path; prepared data (deepmolm-prepare) keeps
            # image paths relative to the data file, as it does sidecar paths.
            data_args.image_folder = os.path.dirname(os.path.abspath(data_path))
        render_folder = getattr(data_args, "render_folder", None) or f"{data_path}.renders"
        self.molecules = MoleculeInputs(
            structure_folder=getattr(data_args, "structure_folder", None),
            policy=getattr(data_args, "conformer_policy", "auto"),
            render_folder=render_folder,
            record_folder=os.path.dirname(os.path.abspath(data_path)),  # sidecar paths are relative to it
        )
        self.graphs = {}  # index -> MolGraph, for records with `properties`
        todo = [i for i, r in enumerate(self.list_data_dict) if not r.get("image") and self.molecules.has_molecule(r)]
        for i in tqdm(todo, desc="rendering depictions", disable=not todo):
            record = self.list_data_dict[i]
            self.molecules.ensure_image(record, record_id(record, i))

    def __getitem__(self, i):
        item = host_getitem(self, i)
        record = self.list_data_dict[i]
        if self.molecules.has_molecule(record):
            item["molecule_fp"] = self.molecules.molecule_fp(record, record_id(record, i))
        if record.get("properties") is not None:  # labels for the KFLM2 auxiliary head
            item["properties"] = dict(record["properties"])
            if i not in self.graphs:
                graph = record_graph(record, record_id(record, i), self.molecules.structure_folder)
                if graph is None:
                    raise RecordError(record_id(record, i), "has `properties` but no `smiles` or `structure` "
                                                            "to build the molecular graph the property head needs")
                self.graphs[i] = graph
            item["graph"] = self.graphs[i]
        processor = getattr(self.data_args, "image_processor", None)
        if "image" in record and getattr(processor, "mode", "base") == "tiles":
            path = os.path.join(self.data_args.image_folder, record["image"])
            with Image.open(path) as image:
                views = processor.preprocess(image.convert("RGB"), return_tensors="pt", mode="tiles")
            item["tile_images"] = views["tile_pixel_values"][0]  # (T, 3, 640, 640)
            item["tile_grid"] = views["tile_grids"][0]
        return item

    cls.__init__, cls.__getitem__ = __init__, __getitem__


def _patch_collator(cls) -> None:
    from deepmolm_plugin.molecule import collate_molecule_fp

    host_call = cls.__call__

    def __call__(self, instances):
        batch = host_call(self, instances)
        fps = [inst.get("molecule_fp") for inst in instances]
        if any(fp is not None for fp in fps):
            lacking = [i for i, fp in enumerate(fps) if fp is None]
            if lacking:
                raise ValueError(
                    f"batch positions {lacking} have no molecule while others do: every record "
                    "of a molecule-aware model needs a molecule field (molecule_fp, structure or smiles)"
                )
            batch["molecule_fp"] = collate_molecule_fp(fps)  # (B, max_atoms, levels), -1 padded
        if any("properties" in inst for inst in instances):
            # Raw labels and graphs: the model's auxiliary head knows its property names.
            batch["properties"] = [inst.get("properties") for inst in instances]
            batch["graphs"] = [inst.get("graph") for inst in instances]
        if any("tile_images" in inst for inst in instances):
            batch["tile_images"] = [inst.get("tile_images") for inst in instances]
            batch["tile_grids"] = [inst.get("tile_grid") for inst in instances]
        return batch

    cls.__call__ = __call__


def apply() -> None:
    _host.require_host("molecule_data")
    import llava.train.train as host_train

    def _apply():
        _patch_dataset(host_train.LazySupervisedDataset)
        _patch_collator(host_train.DataCollatorForSupervisedDataset)

    _host.apply_once(host_train, "molecule_data", _apply)
