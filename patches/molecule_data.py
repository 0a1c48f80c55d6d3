"""molecule_fp through the host's data pipeline.

The host's `LazySupervisedDataset` yields input_ids, labels and image; its collator keeps
input_ids, labels, attention_mask and images. Their methods are wrapped to add:

- per record, `molecule_fp` from its molecule field, by the one input resolver
  (`deepmolm_plugin.molecule.inputs.InputResolver`); records with a molecule but no image
  get their depiction drawn once at start-up, into `--render_folder` (default
  `<data_path>.renders/`);
- in `--image_mode tiles`, the record's 640 px tiles and their grid;
- for records with `properties`, those labels and the molecule's 2D graph (the KFLM2
  auxiliary head's inputs; the head masks properties a record lacks);
- in the batch, `molecule_fp` (B, max_atoms, levels) padded with -1, next to `images`,
  which the Trainer hands to the model's forward as a keyword.
A record the projector cannot serve is an error naming the record; two records with one
`id` are an error naming the id (ids name depictions' records, answers and failures).
Every record's fields are checked when the dataset is built (`data.records.check_records`);
an image the host cannot open or would read as another picture than the image processor
(`check_host_conversion`: transparency, 16-bit grey, animations), a conversation its
preprocess refuses, a prompt that leaves no answer token within --model_max_length
(`check_answer_fits`), an image cut by it (`check_image_fits`), or molecule sources that
disagree (the input resolver's `check_one_molecule`) are an error naming the record when
it is read.

The fingerprint settings (`fp_bits`, `fp_levels`) have one source: the model config, which
chat and eval read too. The dataset is built before the trainer, without the model, so
when the host's trainer starts (`LLaVATrainer.train`) the dataset takes them from
`trainer.model.config`; a prepared dataset (deepmolm-prepare's `manifest.json` next to the
data file) made with other settings is an error then, before any step, never a re-hash.
A prepared dataset made with another conformer policy than --conformer_policy is an error
when the dataset is built; its depiction size is the one records without an image are
drawn at. Both go into the model config (`conformer_policy`, `render_size`) for the chat,
eval and the GUI (`use_model_molecule_settings`).
"""

from __future__ import annotations

import logging
import os

from . import _host

logger = logging.getLogger(__name__)


def _patch_dataset(cls) -> None:
    """Wrap the host's dataset methods in place: its __init__ calls
    `super(LazySupervisedDataset, self)` through the module global, so a subclass bound
    to that name would recurse."""
    from PIL import Image
    from tqdm import tqdm

    from deepmolm_plugin.data.graphs import graph_resolver, record_graph
    from deepmolm_plugin.data.records import PreparedPictures, RecordError, check_records, has_molecule, record_id
    from deepmolm_plugin.encoder.image_processor import check_host_conversion
    from deepmolm_plugin.eval.record_labels import check_answer_labels
    from deepmolm_plugin.molecule.sidecar import manifest_settings
    from deepmolm_plugin.molecule.inputs import RENDER_SIZE, InputResolver, model_limits
    from deepmolm_plugin.patches.arguments import render_folder_for

    host_init, host_getitem = cls.__init__, cls.__getitem__

    def __init__(self, data_path, tokenizer, data_args):
        host_init(self, data_path, tokenizer, data_args)
        check_records(self.list_data_dict, data_path)
        check_answer_labels(self.list_data_dict, data_path)
        if data_args.image_folder is None:
            # The host joins it with every image path; prepared data (deepmolm-prepare) keeps
            # image paths relative to the data file, as it does sidecar paths.
            data_args.image_folder = os.path.dirname(os.path.abspath(data_path))
        render_folder = render_folder_for(data_path, getattr(data_args, "render_folder", None))
        structure_folder = getattr(data_args, "structure_folder", None)
        # The fingerprint settings are the model's: use_model_molecule_settings sets them when
        # the trainer starts. A prepared dataset's policy and depiction size are its manifest's.
        record_folder = os.path.dirname(os.path.abspath(data_path))  # sidecar paths are relative to it
        self.prepared = manifest_settings(record_folder)  # (settings, manifest): read once, checked again at start
        prepared, manifest = self.prepared
        policy = getattr(data_args, "conformer_policy", "auto")
        if prepared.get("conformer_policy") not in (None, policy):
            _refuse(manifest, f"conformer_policy={prepared['conformer_policy']}",
                    f"this run uses --conformer_policy {policy}")
        # the data's atom cap (--max-atoms none too: its large molecules were refused here,
        # "raise it with --max-atoms", an option training does not have)
        try:
            # the data's cap, set by deepmolm-prepare; records it never made have the default one
            limits = model_limits(prepared, cap_from="deepmolm-prepare --max-atoms" if manifest is not None else None)
        except ValueError as e:
            from deepmolm_plugin.usage import DataError

            raise DataError(f"{manifest}: {e}") from e
        # The records' own pictures (deepmolm-prepare's: their hashes and `depiction`, each
        # file read once), and the side of the depictions among them: records without an
        # image are drawn at it, and it becomes the model's render_size (was: the manifest's
        # image_size, or RENDER_SIZE without one, whatever the pictures read were)
        pictures = PreparedPictures(prepared.get("image_size"))
        pictured = [i for i, r in enumerate(self.list_data_dict) if r.get("image")]
        for i in tqdm(pictured, desc="checking records' pictures", disable=len(pictured) < 10000):
            record, rid = self.list_data_dict[i], record_id(self.list_data_dict[i], i)
            pictures.check(record, image_path(record, data_args.image_folder, rid), rid)
        self.molecules = InputResolver(
            structure_folder=structure_folder,
            policy=policy,
            render_folder=render_folder,
            record_folder=record_folder,
            render_size=int(pictures.render_size(manifest) or prepared.get("image_size") or RENDER_SIZE),
            limits=limits,
        )
        self.graph_molecules = graph_resolver(structure_folder, limits=limits)
        # Whether items carry `properties` and molecular graphs: only a model with the
        # property head reads them (set when training starts, `require_graphs`); without
        # one, a record whose properties have no graph source stopped the run at its step.
        self.needs_graphs = True
        # Whether items carry `molecule_fp` (set when training starts, `require_molecules`):
        # a projector that reads no molecules, on data where only some records have one,
        # gets none at all; a batch mixing the two cannot be collated, and stopped the run
        # at a random step (the host's modality grouping still mixes its leftovers).
        self.carries_molecule_fp = True
        self.graphs = {}  # index -> MolGraph, for records with `properties`
        todo = [i for i, r in enumerate(self.list_data_dict) if not r.get("image") and has_molecule(r)]
        drawn = set(todo)
        for i in tqdm(todo, desc="rendering depictions", disable=not todo):
            record = self.list_data_dict[i]
            record["image"] = self.molecules.draw(record, record_id(record, i))
        if self.molecules.redrawn:  # damaged files of ours (a crash while writing): drawn again, said once
            shown = ", ".join(str(p) for p in self.molecules.redrawn[:3])
            logger.warning("%d depiction(s) in %s were damaged (not a whole PNG: a crash or a full disk while they "
                           "were written) and were drawn again: %s%s", len(self.molecules.redrawn), render_folder,
                           shown, " ..." if len(self.molecules.redrawn) > 3 else "")
        # Records with their own image: the file and the molecule fields checked now, as the
        # drawn ones just were (a missing file, a SMILES that does not parse or a structure
        # file that is gone stopped the run at the record's step, hours in)
        own = [i for i, r in enumerate(self.list_data_dict) if i not in drawn and r.get("image")]
        for i in tqdm(own, desc="checking records' images and molecules", disable=len(own) < 10000):
            record = self.list_data_dict[i]
            image_path(record, data_args.image_folder, record_id(record, i))
            if has_molecule(record):
                self.molecules.check_sources(record, record_id(record, i))

    def __getitem__(self, i):
        record = self.list_data_dict[i]
        rid = record_id(record, i)
        image = image_path(record, self.data_args.image_folder, rid)
        try:
            if image is not None:  # the host's own loading would silently see another picture
                check_host_conversion(image)
            item = host_getitem(self, i)
        except RecordError:  # names the record already
            raise
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            # The host's image loading and preprocess say neither which record nor, for a
            # conversation, which file ("conversation 0 has no gpt reply"); an OSError is the
            # image file's (was: the record alone, "OSError: image file is truncated")
            subject = image_error_subject(image, self.molecules) if isinstance(e, OSError) and image else ""
            raise RecordError(rid, f"{subject}{type(e).__name__}: {e}") from e
        item["record_id"] = rid  # for the collator's messages; the batch does not carry it
        if has_molecule(record):
            # (the resolver also checks that the record's SMILES, structure and tokens are one molecule)
            fp = self.molecules.molecule_fp(record, rid)  # resolved (and checked) either way
            if self.carries_molecule_fp:
                item["molecule_fp"] = fp
        if record.get("properties") is not None and self.needs_graphs:  # labels for the KFLM2 auxiliary head
            item["properties"] = dict(record["properties"])
            if i not in self.graphs:
                graph = record_graph(record, record_id(record, i), self.graph_molecules)
                if graph is None:
                    raise RecordError(record_id(record, i), "has `properties` but no `smiles` or `structure` "
                                                            "to build the molecular graph the property head needs")
                self.graphs[i] = graph
            item["graph"] = self.graphs[i]
        processor = getattr(self.data_args, "image_processor", None)
        if image is not None and getattr(processor, "mode", "base") == "tiles":
            try:  # the path, read by our loader (was a bare Image.open: any format, a damaged file's raw
                # TypeError); check_host_conversion above made sure it gives the host's pixels
                item["tile_images"], item["tile_grid"] = processor.tile_inputs(image)  # (T, 3, 640, 640)
            except (OSError, ValueError, Image.DecompressionBombError) as e:
                raise RecordError(rid, f"image {image}: {type(e).__name__}: {e}") from e
        positions = image_positions(processor, item)
        check_answer_fits(item, rid, self.tokenizer.model_max_length, positions)
        if image is not None:  # (a text-only record gets the host's zero image: nothing to cut)
            check_image_fits(item, rid, self.tokenizer.model_max_length, positions)
        return item

    cls.__init__, cls.__getitem__ = __init__, __getitem__


def image_error_subject(image, molecules) -> str:
    """How an image error names the file: its path, and for a depiction in the render folder
    that it is one of ours, which the next run draws again if deleted."""
    folder = getattr(molecules, "render_folder", None)
    if folder and os.path.dirname(os.path.abspath(image)) == os.path.abspath(folder):
        return f"image {image} (a depiction drawn by training: delete it and the next run draws it again): "
    return f"image {image}: "


def image_path(record: dict, image_folder: str, rid: str):
    """The file the host will open for the record's image (None: no image), checked first:
    the host's own error names the path only, or for an empty name opens the folder."""
    from deepmolm_plugin.data.records import RecordError

    if "image" not in record:
        return None
    path = os.path.join(image_folder, record["image"])
    if os.path.isdir(path):
        raise RecordError(rid, f"image {path} is a folder, not an image file")
    if os.path.islink(path) and not os.path.exists(path):  # isfile() says no to both alike
        raise RecordError(rid, f"image {path} is a symbolic link to nothing (broken, or a loop)")
    if not os.path.isfile(path):
        raise RecordError(rid, f"image file {path} does not exist")
    return path


def image_positions(processor, item: dict):
    """LLM positions the model gives the record's image (its grid in tiles mode); None for
    another tower's processor, whose layout is not ours to know."""
    from deepmolm_plugin.encoder.image_processor import DeepEncoderImageProcessor, num_llm_positions_for_grid

    if not isinstance(processor, DeepEncoderImageProcessor):
        return None
    return num_llm_positions_for_grid(processor.image_size, processor.tile_size, item.get("tile_grid"),
                                      processor.token_stride)


def check_answer_fits(item: dict, rid: str, max_length: int, image_positions) -> None:
    """The host cuts a record to --model_max_length twice: its tokens (preprocess), then the
    model's inputs once each image placeholder has become the image's positions. A record
    whose first answer token lies past the cut has every label masked: it trains nothing
    (adds 0 to the loss; a batch of such records makes it NaN), silently. Refused, with the
    numbers. A cut inside the answer is the host's ordinary truncation and is left alone."""
    from llava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX

    from deepmolm_plugin.data.records import RecordError

    ids, labels = item["input_ids"], item["labels"]
    answer = (labels != IGNORE_INDEX).nonzero()
    if not len(answer) and len(ids) >= max_length:
        raise RecordError(rid, f"no answer token is left within --model_max_length {max_length}: the prompt before "
                               "the first reply is longer, so the record would train nothing; shorten the prompt or "
                               "raise --model_max_length")
    if not len(answer):  # nothing cut: a template that does not fit the tokenizer (training.inputs.check_template)
        return
    first = int(answer[0])
    images = int((ids[:first] == IMAGE_TOKEN_INDEX).sum())
    if images and image_positions is not None and first + images * (image_positions - 1) >= max_length:
        raise RecordError(rid, f"its first answer token comes after {first - images} text tokens and {image_positions} "
                               f"image positions, past --model_max_length {max_length}: the model's inputs are cut "
                               "there, so the record would train nothing; shorten the prompt or raise "
                               "--model_max_length")


def check_image_fits(item: dict, rid: str, max_length: int, image_positions) -> None:
    """A record's image placeholder in a later turn of a long conversation was cut with the
    text (or its positions partly by the model), and the record trained on text alone,
    without a word. Refused, with the numbers."""
    from llava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX

    from deepmolm_plugin.data.records import RecordError

    at = (item["input_ids"] == IMAGE_TOKEN_INDEX).nonzero()
    end = int(at[0]) + (image_positions or 1) if len(at) else None
    if end is None or end > max_length:
        where = "its <image> placeholder lies" if end is None else f"its image takes positions {int(at[0])}-{end - 1},"
        raise RecordError(rid, f"{where} past --model_max_length {max_length}: the record would train without (all "
                               "of) its image and molecule, silently; shorten the turns before it or raise "
                               "--model_max_length")
    # Only answer tokens after the image learn from it (causal attention). Every turn with an
    # image has a reply after it, so none within the cut means the cut took them all: the
    # record trained on its earlier replies alone, without a word (an image in a later turn).
    supervised = item["labels"] != IGNORE_INDEX
    if not supervised.any():  # no label at all: check_answer_fits (a cut) or the template (training.inputs.check_template)
        return
    answer = supervised[int(at[0]):].nonzero()
    first = end + int(answer[0]) - 1 if len(answer) else None  # its model position, the image expanded
    if first is None or first >= max_length:
        raise RecordError(rid, f"no answer token after its image is left within --model_max_length {max_length} (the "
                               f"image ends at position {end - 1}): nothing would learn from the image and molecule, "
                               "silently; shorten the turns before it or raise --model_max_length")


def use_model_molecule_settings(dataset, config) -> None:
    """One source for the molecule settings of training and inference, set when the trainer
    starts:

    - the dataset fingerprints with the model config's settings (--fp_bits, --fp_levels);
    - a prepared dataset's manifest records what its tokens and images were made with:
      other fingerprint settings than the model's are an error naming both (its conformer
      policy and depiction size were taken when the dataset was built);
    - the conformer policy, the depiction size and the atom cap go into the config
      (`conformer_policy`, `render_size`, `max_atoms`), so the saved model says how its
      molecules were made: the chat, eval and the GUI use them (they used `auto`, 1024 and
      256 whatever training saw).
    """
    from deepmolm_plugin.molecule.policy import MAX_ATOMS
    from deepmolm_plugin.molecule_fp import FingerprintSettings
    from deepmolm_plugin.molecule.standard import STANDARD_RULES
    from deepmolm_plugin.property.features import GRAPH_FEATURES

    molecules = getattr(dataset, "molecules", None)
    if molecules is None:  # not the host's dataset: nothing of ours to configure
        return
    settings = FingerprintSettings.from_config(config)
    prepared, manifest = dataset.prepared
    made = (prepared.get("fp_bits"), prepared.get("fp_levels"))
    if None not in made and made != (settings.bits, settings.levels):
        _refuse(manifest, f"fp_bits={made[0]}, fp_levels={made[1]}",
                f"the model uses fp_bits={settings.bits}, fp_levels={settings.levels} (--fp_bits/--fp_levels)")
    molecules.fp = settings
    config.conformer_policy, config.render_size = molecules.policy, molecules.render_size
    config.max_atoms = molecules.limits.get("max_atoms", MAX_ATOMS)
    config.graph_features = GRAPH_FEATURES  # what the property head's graph slots mean
    config.standard_molecule = STANDARD_RULES  # and which molecule its graphs were made of


def _refuse(manifest: str, made: str, used: str) -> None:
    from deepmolm_plugin.usage import DataError

    raise DataError(f"{manifest}: the data was prepared with {made} but {used}: prepare the data again with this "
                    "run's settings or train with the data's")


def _listed(ids: list) -> str:
    """The first 20 record names, and how many there are when more."""
    return ", ".join(repr(r) for r in ids[:20]) + (f" ({len(ids)} in all)" if len(ids) > 20 else "")


def require_molecules(dataset, model) -> None:
    """A projector that fuses molecules (fusion) needs one for every record: the host gives a
    record without an image a blank one, and a record without a molecule (text-only or
    image-only) failed at its step, possibly hours in, with "the 'fusion' projector needs
    molecule_fp" and no record named. Refused before the first step instead."""
    from deepmolm_plugin.data.records import has_molecule, record_id

    records = getattr(dataset, "list_data_dict", None)
    get_model = getattr(model, "get_model", None)
    projector = getattr(get_model(), "mm_projector", None) if callable(get_model) else None
    if records is None:
        return
    lacking = [record_id(r, i) for i, r in enumerate(records) if not has_molecule(r)]
    if not getattr(projector, "uses_molecule", False):
        mixed = 0 < len(lacking) < len(records)
        if hasattr(dataset, "carries_molecule_fp"):
            dataset.carries_molecule_fp = not mixed
        if mixed:
            logger.warning("%d of %d records have no molecule and the projector reads none: batches carry no "
                           "molecule_fp in this run (records with and without one would not collate)",
                           len(lacking), len(records))
        return
    if lacking:
        from deepmolm_plugin.usage import DataError

        shown = _listed(lacking)
        raise DataError(f"records {shown} have no molecule (molecule_fp, structure, atoms or smiles), but the "
                         f"{getattr(projector, 'projector_type', type(projector).__name__)!r} projector fuses every "
                         "image with its molecule: give them one, or leave them out")


def require_graphs(dataset, model) -> None:
    """Records' `properties` are labels for the property head, which reads each molecule's
    graph: with the head, every record with properties needs a `smiles`, `structure` or
    `atoms` to build it from (it failed at the record's step, hours in); without it,
    properties are not read at all (a record without a graph source stopped the run)."""
    records = getattr(dataset, "list_data_dict", None)
    get_model = getattr(model, "get_model", None)
    if records is None or not hasattr(dataset, "needs_graphs"):
        return
    dataset.needs_graphs = callable(get_model) and getattr(get_model(), "optional_head", None) is not None
    if not dataset.needs_graphs:
        return
    problem = property_records_problem(records)
    if problem:
        from deepmolm_plugin.usage import DataError

        raise DataError(problem)


def property_records_problem(records: list) -> "str | None":
    """What keeps the records' `properties` from training the property head, or None: it
    depends on the records alone, so the launcher asks it before the model loads when
    --aux_property_task is given (training.inputs.check_property_records; was: only here, when the
    trainer started, exit 1 after the model had loaded), and require_graphs again."""
    from deepmolm_plugin.data.records import record_id

    lacking = [record_id(r, i) for i, r in enumerate(records) if r.get("properties") is not None
               and not any(r.get(name) for name in ("smiles", "structure", "atoms"))]
    if lacking:
        return (f"records {_listed(lacking)} have `properties` but no `smiles`, `structure` or `atoms` to build the "
                "molecular graph the property head reads: give them one, or leave their properties out")
    # The head reads the prompt before the first answer (aux_head.pool_unsupervised: later
    # positions have seen an answer), as evaluation gives it the question with the image. An
    # image in a later turn lies beyond it: was trained without the picture or the molecule.
    from deepmolm_plugin.data.prompts import IMAGE_TOKEN

    later = [record_id(r, i) for i, r in enumerate(records) if r.get("properties") is not None
             and IMAGE_TOKEN not in r["conversations"][0]["value"]]
    if later:
        return (f"records {_listed(later)} have `properties` but their {IMAGE_TOKEN} is not in the first "
                "question: the property head reads the prompt up to the first answer, which would not hold "
                f"the picture or the molecule; move {IMAGE_TOKEN} into the first question, or leave their "
                "properties out")
    return None


def _patch_trainer_start(cls) -> None:
    host_train = cls.train

    def train(self, *args, **kwargs):
        use_model_molecule_settings(self.train_dataset, self.model.config)
        require_molecules(self.train_dataset, self.model)
        require_graphs(self.train_dataset, self.model)
        return host_train(self, *args, **kwargs)

    cls.train = train


def _patch_collator(cls) -> None:
    from deepmolm_plugin.molecule_fp import collate

    host_call = cls.__call__

    def __call__(self, instances):
        batch = host_call(self, instances)
        fps = [inst.get("molecule_fp") for inst in instances]
        if any(fp is not None for fp in fps):
            lacking = [inst.get("record_id", f"batch position {i}") for i, inst in enumerate(instances)
                       if inst.get("molecule_fp") is None]
            if lacking:
                from deepmolm_plugin.usage import DataError

                raise DataError(
                    f"records {lacking} have no molecule while others in their batch do: every record "
                    "of a molecule-aware model needs a molecule field (molecule_fp, structure or smiles)"
                )
            batch["molecule_fp"] = collate(fps)  # (B, max_atoms, levels), -1 padded
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
    from llava.train import llava_trainer

    def _apply():
        _patch_dataset(host_train.LazySupervisedDataset)
        _patch_collator(host_train.DataCollatorForSupervisedDataset)
        _patch_trainer_start(llava_trainer.LLaVATrainer)

    _host.apply_once(host_train, "molecule_data", _apply)
