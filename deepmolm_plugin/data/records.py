"""Host training records: the names the data pipeline uses for them, and their checks.

A record is the host's JSON (`id`, `image`, `conversations`) plus one molecule field
(`molecule_fp` inline or as a sidecar reference, `structure`, `atoms` + `coordinates`, or
`smiles`), resolved into model inputs by the one input resolver,
`deepmolm_plugin.molecule.inputs.InputResolver`, which every other caller uses too.
A record that cannot be served is a `RecordError` naming it and the reason.

The host's dataset reads records as they are: a conversation value that is not a string,
a second `<image>` placeholder or a `properties` list crashed deep inside it without the
record's name, or trained on something else than what the record says (a placeholder
without an image became the literal text "<image>" next to a blank image; two placeholders
for one image took the next record's image for the second). `check_record` refuses them
when the dataset is built, before the first step.
"""

from __future__ import annotations

import math
import os

from ..molecule.inputs import InputError, has_molecule
from .prompts import (CONTROL_TOKENS, IMAGE_PLACEHOLDERS, IMAGE_TOKEN as IMAGE_PLACEHOLDER, blank, first_of,
                      reply_problem)

RecordError = InputError  # raised for records as "record '<id>': <reason>"

ROLES = ("human", "gpt")

__all__ = ["PreparedPictures", "RecordError", "check_plain_records", "check_record", "check_records", "has_molecule",
           "record_id"]


def record_id(record: dict, index: int) -> str:
    """A record's name in messages and file names: its `id`, else its position."""
    return str(record.get("id", f"#{index}"))


def check_records(records: list, data_path: str) -> None:
    """Every record's fields (data.records.check_record), its id unique, sidecar rows of
    different records apart; the first problem is an error naming the record."""
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise ValueError(f"{data_path}: item #{i} is a JSON {type(record).__name__}, not a record object")
        check_record(record, i)
    check_unique_ids(records, data_path)
    check_sidecar_overlaps(records, data_path)
    check_property_names(records, data_path)


class PreparedPictures:
    """Checks of the records' own pictures made by deepmolm-prepare, each file read once:

    - a content-addressed picture (`images/xx/<sha256>.png`) must still hash to its name
      (`prepare.output.stored_image_intact`); was: a depiction overwritten with another
      molecule's trained, and was asked, without a word;
    - a record's `depiction` ({image, molecule}: the picture deepmolm-prepare drew for it
      and the molecule it draws, as a sidecar reference's `molecule`) must name the
      record's `image` and a molecule its SMILES is: was: two records' `image` fields
      swapped (a script rebuilding the records) trained each on the other's picture;
      records of outputs older than the field are not compared;
    - the side of the depictions read (`sizes`): a record with `depiction`, or one of an
      older output whose square content-addressed picture has the manifest's image_size.
    """

    def __init__(self, image_size: "int | None" = None):
        self.image_size = image_size  # the manifest's --image-size, when there is one
        self.files: dict = {}  # path -> (intact, (width, height))
        self.identities: dict = {}  # SMILES text -> canonical SMILES (or None)
        self.sizes: dict = {}  # depiction side -> first record name with it

    def check(self, record: dict, path: str, rid: str) -> "int | None":
        """Check the record's picture at `path`; its side when it is a depiction, else None."""
        from ..molecule.canonical import smiles_identity
        from .prepare.output import is_stored_image, stored_image_intact

        made = record.get("depiction")
        stored = is_stored_image(path)
        if path not in self.files:  # a picture of the user's own is read when its record is (the host's errors)
            self.files[path] = (stored_image_intact(path), _image_size(path, rid) if stored or made else None)
        intact, size = self.files[path]
        if not intact:
            raise RecordError(rid, f"image {path}: its bytes do not hash to its name (deepmolm-prepare names each "
                                   "picture by its SHA-256): the file was replaced or damaged after preparing; rerun "
                                   "the deepmolm-prepare command on that output, which finds and redraws it")
        if made is not None:
            if not isinstance(made, dict) or not isinstance(made.get("image"), str):
                raise RecordError(rid, f"`depiction` must be deepmolm-prepare's {{\"image\": name, \"molecule\": "
                                       f"SMILES}}, got {_shown(made)}")
            if os.path.basename(made["image"]) != os.path.basename(record["image"]):
                raise RecordError(rid, f"its image {record['image']} is not the depiction deepmolm-prepare drew for it "
                                       f"({made['image']}, of {made.get('molecule')}): its `image` was changed after "
                                       "preparing (records rebuilt or reordered?); restore it, or remove `depiction` "
                                       "if this picture is meant")
            self._check_molecule(made.get("molecule"), record.get("smiles"), record["image"], rid, smiles_identity)
        if size is not None and size[0] == size[1] and (made is not None or size[0] == self.image_size):
            self.sizes.setdefault(size[0], rid)
            return size[0]
        return None

    def _check_molecule(self, molecule, smiles, image: str, rid: str, smiles_identity) -> None:
        """The molecule a depiction draws against the record's SMILES (compared as canonical
        SMILES, also as this RDKit writes `molecule`, as sidecar references' are)."""
        if not isinstance(molecule, str) or not isinstance(smiles, str) or smiles.strip() in ("", molecule):
            return
        for text in (smiles.strip(), molecule):
            if text not in self.identities:
                self.identities[text] = smiles_identity(text)
        identity = self.identities[smiles.strip()]
        if identity is not None and identity not in (molecule, self.identities[molecule]):
            raise RecordError(rid, f"its image {image} is deepmolm-prepare's depiction of {molecule}, but its SMILES "
                                   f"{smiles!r} is another molecule ({identity}): the record was changed after it was "
                                   "prepared; prepare it again")

    def render_size(self, manifest=None) -> "int | None":
        """The one side the depictions read have (None: none read), checked: records of two
        sizes, or of another size than the manifest's image_size, are a DataError naming a
        record of each (was: render_size was the manifest's, or 1024 without one, whatever
        the pictures trained on were; the model config then told chat and eval to draw at
        that size)."""
        from ..usage import DataError

        if len(self.sizes) > 1:
            (a, first), (b, second) = sorted(self.sizes.items())[:2]
            raise DataError(f"records {first!r} ({a} px) and {second!r} ({b} px) have depictions of different sizes "
                            "(deepmolm-prepare --image-size): the model learns one size, which chat and eval draw "
                            "at; prepare them with one --image-size")
        side, rid = next(iter(self.sizes.items()), (None, None))
        if side is not None and self.image_size is not None and side != self.image_size:
            raise DataError(f"{manifest}: the data was prepared at image_size {self.image_size}, but record {rid!r}'s "
                            f"depiction is {side} px: the records file and the manifest come from different outputs; "
                            "train on each output's own records file, or prepare them again together")
        return side


def _image_size(path: str, rid: str) -> tuple:
    """(width, height) from the file's header; an unreadable picture is the record's error."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise RecordError(rid, f"image {path}: {type(e).__name__}: {e}") from e


def check_plain_records(records: list) -> None:
    """The `plain` template (--version plain, stage-1 captions) trains one reply to the image:
    the host keeps only the image placeholder of the human turn and asserts two turns. A
    conversation, or a record without a picture, stopped the run at its first step with a
    bare AssertionError, after the model had loaded."""
    for i, record in enumerate(records):
        turns = record.get("conversations")
        if not isinstance(turns, list):
            continue  # check_record names it
        rid = record_id(record, i)
        if len(turns) != 2:
            raise RecordError(rid, f"has {len(turns)} turns, but the plain template (--version plain) trains one human "
                                   "turn and one reply: use --version qwen2 for conversations")
        first = turns[0].get("value") if isinstance(turns[0], dict) else None
        if not isinstance(first, str) or IMAGE_PLACEHOLDER not in first:
            raise RecordError(rid, f"has no {IMAGE_PLACEHOLDER} in its human turn, but the plain template (--version "
                                   "plain) trains a reply to the image alone: use --version qwen2 for text records")


def check_chat_records(records: list) -> None:
    """Replies under a chat template (qwen2; not `plain`, which puts the reply right after the
    image): one that starts with a line break (`prompts.reply_problem`) merges with the
    template's `assistant\n`, so the training prompt is not the inference prompt; the qwen2
    preprocess refused it only when the record was read, steps into the run."""
    for i, record in enumerate(records):
        for j, turn in enumerate(record.get("conversations") or ()):
            problem = reply_problem(turn["value"]) if turn.get("from") == "gpt" else None
            if problem:
                raise RecordError(record_id(record, i), f"conversation turn {j} (gpt) {problem}")


def check_unique_ids(records: list, data_path: str) -> None:
    """Ids are compared as the text that names records (1 and "1" are one name; so are a
    record without id at position 0 and the id "#0"), in Unicode NFC (`id_key`, as
    deepmolm-prepare: 'café' written two ways looks the same everywhere it is shown)."""
    from .sources.base import id_key

    seen, repeated = set(), []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            continue
        rid = record_id(record, i)
        if id_key(rid) in seen and rid not in repeated:
            repeated.append(rid)
        seen.add(id_key(rid))
    if repeated:
        shown = ", ".join(repr(r) for r in repeated[:20]) + (f" ({len(repeated)} ids in all)" if len(repeated) > 20 else "")
        raise ValueError(f"{data_path}: record id(s) used more than once: {shown}; every record needs its own id")


def check_property_names(records: list, data_path: str) -> None:
    """Property names are compared as written: `logP` in one record and `LogP` or ` logP` in
    another are two properties, so --aux_properties logP silently treated the second
    spelling's records as unmeasured. Names with one `eval.names.name_key` (equal but for
    case, spaces and punctuation: `logP`, `log_P`; evaluation refused such a split as one
    task spelled two ways, after training) are an error naming both spellings and a record
    of each."""
    from ..eval.names import name_key

    first = {}  # name_key -> (spelling, record name)
    for i, record in enumerate(records):
        props = record.get("properties")
        for name in props if isinstance(props, dict) else ():
            spelling, rid = first.setdefault(name_key(name), (name, record_id(record, i)))
            if spelling != name:
                raise ValueError(f"{data_path}: property names {spelling!r} (record {rid!r}) and {name!r} (record "
                                 f"{record_id(record, i)!r}) differ only in case or spaces, or in punctuation: they "
                                 "would be two properties; spell them alike")


def check_sidecar_overlaps(records: list, data_path: str) -> None:
    """Sidecar references of different records point at the same rows (deepmolm-prepare
    stores a molecule's tokens once) or at disjoint rows. Rows that only partly overlap mean
    an offset or atom count is off, and a record would read part of another's tokens."""
    from ..molecule.sidecar import SidecarFiles, is_reference

    spans = {}  # sidecar -> [(offset, atoms, record name)]
    for i, record in enumerate(records):
        ref = record.get("molecule_fp")
        if is_reference(ref) and isinstance(ref["sidecar"], str) and all(type(ref.get(k)) is int for k in ("offset", "atoms")):
            spans.setdefault(ref["sidecar"], []).append((ref["offset"], ref["atoms"], record_id(record, i), ref))
    for sidecar, refs in spans.items():
        refs.sort(key=lambda span: span[:3])
        end, last = -1, None  # the furthest row end so far, and whose it is
        for offset, atoms, rid, ref in refs:
            if offset < end and (offset, atoms) != last[:2]:
                # which of the two causes: the digests prepare wrote tell (`SidecarFiles.overlap_cause`)
                cause = SidecarFiles(os.path.dirname(os.path.abspath(data_path))).overlap_cause(
                    {last[2]: last[3], rid: ref}, records_file=data_path)
                raise ValueError(f"{data_path}: records {last[2]!r} and {rid!r} read partly the same rows of sidecar "
                                 f"{sidecar} (offset {last[0]} atoms {last[1]}, offset {offset} atoms {atoms}): "
                                 f"{cause}")
            if offset + atoms > end:
                end, last = offset + atoms, (offset, atoms, rid, ref)
    _check_shared_rows(records, data_path)


def _check_shared_rows(records: list, data_path: str) -> None:
    """Records reading the same sidecar rows must be one molecule: ethanol's and
    ethylamine's records pointing at one span (3 rows each) trained two molecules on one
    set of tokens. Their SMILES are compared as RDKit's canonical SMILES, only where the
    texts differ (deepmolm-prepare's records of one molecule share rows and text)."""
    from ..molecule.sidecar import is_reference

    shared: dict = {}  # (sidecar, offset, atoms) -> {smiles text: record name}
    for i, record in enumerate(records):
        ref, smiles = record.get("molecule_fp"), record.get("smiles")
        if is_reference(ref) and isinstance(smiles, str) and smiles.strip():
            key = (str(ref.get("sidecar")), str(ref.get("offset")), str(ref.get("atoms")))
            shared.setdefault(key, {}).setdefault(smiles.strip(), record_id(record, i))
    for (sidecar, offset, atoms), texts in shared.items():
        if len(texts) < 2:
            continue
        from ..molecule.canonical import smiles_identity

        canonical = {}  # canonical SMILES -> (text, record name)
        for text, rid in texts.items():
            identity = smiles_identity(text)
            if identity is not None:  # (an unparseable one is named by the record's own SMILES check)
                canonical.setdefault(identity, (text, rid))
        if len(canonical) > 1:
            (first_text, first_rid), (second_text, second_rid) = list(canonical.values())[:2]
            raise ValueError(f"{data_path}: records {first_rid!r} ({first_text}) and {second_rid!r} ({second_text}) "
                             f"read the same rows of sidecar {sidecar} (offset {offset} atoms {atoms}) but are "
                             "different molecules: an offset is wrong")


def check_record(record: dict, index: int) -> None:
    """What the host's dataset and the property head read, checked before training."""
    rid = record_id(record, index)
    check_id(record, index)
    smiles = record.get("smiles")
    if smiles is not None and not isinstance(smiles, str):  # was found when the record was read, after loading
        raise RecordError(rid, f"`smiles` must be a string, got {type(smiles).__name__} {smiles!r}")
    check_image_field(record, rid)
    check_conversations(record, rid)
    check_properties(record, rid)


def check_id(record: dict, index: int) -> None:
    """An id names depictions' records, answers and failures as text: a string or an integer,
    one line (`sources.base.id_problem`, the rule deepmolm-prepare's items follow)."""
    from .sources.base import id_problem

    value = record.get("id")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int))):
        raise RecordError(f"#{index}", f"id must be a string or an integer, got {type(value).__name__} {value!r}")
    # "" named the record as nothing; " r1" next to "r1" were two records shown alike
    problem = id_problem(value) if isinstance(value, str) else None
    if problem:
        raise RecordError(f"#{index}", problem)


def check_conversations(record: dict, rid: str) -> None:
    """A list of {from: human|gpt, value: text} turns, alternating from a human one, at
    least one reply, none blank, with one `<image>` placeholder, in a human turn, exactly when the record has an
    image (given, or drawn from its molecule)."""
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise RecordError(rid, f"`conversations` must be a non-empty list of turns, got {_shown(turns)}")
    placeholders = []
    for j, turn in enumerate(turns):
        if not isinstance(turn, dict) or turn.get("from") not in ROLES or not isinstance(turn.get("value"), str):
            raise RecordError(rid, f"conversation turn {j} must be {{\"from\": \"human\"|\"gpt\", \"value\": text}}, "
                                   f"got {_shown(turn)}")
        if turn["from"] != ROLES[j % 2]:
            # Every host template reads turns as human/gpt pairs: its v1 preprocess silently
            # dropped a leading gpt turn, the qwen2 one refused it only when read, hours in.
            raise RecordError(rid, f"conversation turn {j} is from {turn['from']!r}: turns must alternate human, gpt, "
                                   "human, ... starting with a human turn")
        if blank(turn["value"]):  # a reply of "\u00a0\u200b" trained the model on nothing
            # An empty reply trains the model to stop at once; qwen2's preprocess refused ""
            # only when read and trained on a reply of spaces.
            raise RecordError(rid, f"conversation turn {j} ({turn['from']}) is empty or only white space")
        control = first_of(CONTROL_TOKENS + IMAGE_PLACEHOLDERS[1:], turn["value"])
        if control:  # the tokenizer reads it as template structure: a turn ended early, another speaker's began
            raise RecordError(rid, f"conversation turn {j} ({turn['from']}) contains {control!r}, a control token of "
                                   "the chat or image template; write it another way")
        placeholders += [(j, turn["from"])] * turn["value"].count(IMAGE_PLACEHOLDER)
    if len(turns) < 2:  # a question alone: nothing to learn (the qwen2 preprocess refused it only when read)
        raise RecordError(rid, "conversation has no gpt reply to learn from")
    if len(turns) % 2:  # trained with a question left open at the end, which nothing answers
        raise RecordError(rid, f"conversation ends with a human turn (turn {len(turns) - 1}) that no gpt reply "
                               "answers: drop it, or add the reply")
    has_image = bool(record.get("image")) or has_molecule(record)
    if has_image and len(placeholders) != 1:
        raise RecordError(rid, f"has an image (given or drawn from its molecule) and {len(placeholders)} "
                               f"{IMAGE_PLACEHOLDER} placeholders in its conversation: it needs exactly one")
    if not has_image and placeholders:
        raise RecordError(rid, f"has an {IMAGE_PLACEHOLDER} placeholder but no image and no molecule to draw one "
                               "from (the placeholder would be plain text next to a blank image)")
    if placeholders and placeholders[0][1] != "human":
        raise RecordError(rid, f"the {IMAGE_PLACEHOLDER} placeholder is in a gpt reply (turn {placeholders[0][0]}); "
                               "the image belongs to a human turn")


def check_image_field(record: dict, rid: str) -> None:
    """`image`: a file name. Empty or null means none, which only a record with a molecule
    can do without (its depiction is drawn)."""
    if "image" not in record:
        return
    value = record["image"]
    if value in (None, "") and not has_molecule(record):
        raise RecordError(rid, f"`image` is {value!r} and there is no molecule to draw a depiction from")
    if value not in (None, "") and not isinstance(value, str):
        raise RecordError(rid, f"`image` must be a file name, got {type(value).__name__} {value!r}")


def check_properties(record: dict, rid: str) -> None:
    """`properties`: {name: finite JSON number} (see `properties_problem`)."""
    problem = properties_problem(record.get("properties"))
    if problem:
        raise RecordError(rid, problem)


def properties_problem(props) -> "str | None":
    """Why a record's `properties` cannot be labels, or None: {name: finite JSON number}; a
    property not measured is left out (or null). True would be the label 1.0 and the text
    "1_000" the label 1000 (Python's float()). Training, eval.questions and the report
    (its references) ask this one rule."""
    if props is None:
        return None
    if not isinstance(props, dict):
        return f"`properties` must be an object {{name: number}}, got {_shown(props)}"
    from . import labels  # the property head standardises them: squares must stay finite, nonzero

    for name, value in props.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            from .. import usage

            shown = usage.shortened(repr(value))
            return (f"property {name!r} is {shown}, not a finite number (leave it out of `properties` if it was "
                    "not measured)")
        if not labels.in_range(value):  # 1e200 made the head's std inf: every target 0, nothing learnt
            return (f"property {name!r} is {value:g}, {labels.RANGE} (no measured property is; the property "
                    "head's statistics would overflow or underflow: change the unit)")
    return None


def _finite(value) -> bool:
    """math.isfinite, also for a JSON integer too large for a float (OverflowError)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _shown(value) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:80]}{'...' if len(text) > 80 else ''}"
