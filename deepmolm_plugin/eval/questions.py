"""`python -m deepmolm_plugin.eval.questions DATA QUESTIONS.jsonl`: a prepared split (host
records) -> the question file of `deepmolm_plugin.eval.model_vqa`, which is also the
reference file of `deepmolm_plugin.eval.report`.

DATA is a JSON list of host records `{id, image?, conversations: [{from: human, value:
"<image>\\n<instruction>"}, {from: gpt, value: <answer>}], task?, properties?, smiles?,
structure?, molecule_fp?}`. Each record gives one line:

- `question_id`: the record's `id` (required, unique);
- `text`: the human turn without the image token (`<image>` and the newline next to it):
  the host's model_vqa puts `<image>\\n` (or the start/end-wrapped form) in front itself;
- `image`: copied when present (relative to the image folder given to model_vqa; without
  one, model_vqa draws the molecule's depiction);
- molecule fields copied: `smiles`, `structure`, and `molecule_fp` as an inline
  `[atoms][levels]` list. A sidecar reference `{"sidecar": path, "offset": n, "atoms":
  n}` is resolved to the inline list through `deepmolm_plugin.molecule.inputs.InputResolver`
  (sidecar paths relative to DATA's folder); a line with `molecule_fp` also gets the
  `fp_bits` and `fp_levels` its tokens were made with (a prepared split's manifest.json
  settings, else --fp-bits / --fp-levels, else DeepMoLM's), which model_vqa checks against
  the model's (tokens of 4096 bits went into an 8192-bit model without a word); its rows
  are checked against the record's atom list or SMILES up to PARSE_BOUND heavy atoms, and
  held to no atom cap: that is the model's, which model_vqa applies;
- `answer`: the gpt turn (the reference answer), `task` (default "unspecified"),
  `properties` (a dict of reference values) and `metric` when present;
- `depiction_size`: the side of a picture of DATA's folder that deepmolm-prepare drew
  (checked as training checks it: `data.records.PreparedPictures`), which model_vqa
  compares with the model's render_size.

Only single-turn records (one human turn, one gpt turn) can be asked by model_vqa; any
other record is an error naming it, as is a missing or duplicated id, or a gpt turn
(the reference answer) that is empty or only white space. So is a property record whose
reference answer states a value the report cannot read (a decimal comma `1,7`, a range
`1.5-2.0`, a bound `less than 5`, digits split by a space `12 345.6`, a malformed number
`1.234.5`, a fraction `3/4`, ...) and that has no `properties` entry: the report left such
questions out only after the model had answered them (`scoring.unreferenced_reasons`); one
whose reference answer states no number at all ("not measured"; a method such as
"B3LYP/6-31G*" is words) is named in a warning, and left out by the report.
QUESTIONS may not be DATA itself (the prepared split was replaced by its questions).
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: a Ctrl-C while they load is one line too
    from deepmolm_plugin.entry_points import run_module

    run_module("deepmolm_plugin.eval.questions", "python -m deepmolm_plugin.eval.questions")

import argparse
import json
import sys
import functools
from pathlib import Path
from typing import Iterable, List, Optional

from .. import usage
from ..result_files import write_atomic
from ..data.prompts import blank, trained_question_text
from ..molecule.inputs import MOLECULE_KEYS
from .jsonl import question_id_problem

# molecule_fp is converted (a sidecar reference becomes inline tokens); the other molecule
# fields are copied as they are: `atoms` without `coordinates` was "no molecule field", and
# `structure` without `structure_index` "holds 2 molecules"
COPIED = ("image", "properties", "metric") + tuple(k for k in MOLECULE_KEYS if k != "molecule_fp")


class QuestionFileError(ValueError):
    pass


@functools.lru_cache(maxsize=8)
def _resolver(data_dir: str, fp, bounded: bool = True):
    """One resolver per data folder: sidecar files are opened once, not once per record.
    `bounded`: it builds molecules of at most PARSE_BOUND heavy atoms (past that, an
    InputError caused by MoleculeTooLarge) and compares given token rows with them, however
    many (capped, rows past the bound would skip that comparison in `_checked_fp`'s
    tokens-alone reading); else it builds none, for reading given tokens alone."""
    from ..molecule.inputs import InputResolver
    from ..molecule_fp import DEEPMOLM

    limits = {"max_atoms": PARSE_BOUND} if bounded else None
    return InputResolver(fp or DEEPMOLM, record_folder=data_dir, limits=limits, cap_given_tokens=False)


def _checked_fp(record: dict, rid: str, data_dir: Path, fp) -> list:
    """The record's tokens as an inline list, read and checked by the input resolver (the
    reader of data preparation's sidecars; paths relative to the data file's folder), as
    training and model_vqa check them: valid tokens (shape, hash range), and as many rows
    as its SMILES or atom list has heavy atoms. (A `structure` is checked by model_vqa,
    which knows the --structure-folder it is relative to.) Sidecar rows of another
    molecule, and inline text or out-of-range hashes, went into the question file.
    A molecule past PARSE_BOUND heavy atoms is not built here, as such a SMILES is not
    parsed (`_check_smiles`): its tokens are read alone, and model_vqa compares them with
    it under the model's own cap. Was: an atom list was built under the builders' default
    cap, so a record of 300 heavy atoms was refused, with advice to raise --max-atoms, an
    option this tool does not have (and a cap that is the model's, not the question
    file's)."""
    from ..molecule.errors import MoleculeTooLarge
    from ..molecule.inputs import InputError

    fields = {k: record[k] for k in MOLECULE_KEYS if k not in ("structure", "structure_index") and k in record}
    try:
        return _read_fp(fields, rid, data_dir, fp, bounded=True)
    except InputError as e:
        if not isinstance(e.__cause__, MoleculeTooLarge):
            raise _fp_error(record, rid, e) from e
    try:
        return _read_fp({"molecule_fp": record["molecule_fp"]}, rid, data_dir, fp, bounded=False)
    except InputError as e:
        raise _fp_error(record, rid, e) from e


def _read_fp(fields: dict, rid: str, data_dir: Path, fp, bounded: bool) -> list:
    return _resolver(str(data_dir), fp, bounded).molecule_fp(fields, rid).tolist()


def _fp_error(record: dict, rid: str, error) -> QuestionFileError:
    value = record["molecule_fp"]
    what = f"its molecule_fp sidecar reference {value!r}" if isinstance(value, dict) else "its molecule_fp"
    return QuestionFileError(f"record {rid!r}: cannot use {what}: {error.reason}")


def record_to_question(record: dict, index: int, data_dir: Path, fp=None, molecules=None) -> dict:
    """One host record -> one question line; `fp`: the FingerprintSettings sidecar rows are
    checked against (default DeepMoLM's); `molecules`: the InputResolver its SMILES is
    checked with (`smiles_checker`)."""
    rid = record.get("id")
    if rid is None or rid == "":
        raise QuestionFileError(f"record #{index} has no id")
    problem = question_id_problem(rid)
    if problem:  # 1.0, true or an object was written as is, and the report refused the file later
        raise QuestionFileError(f"record #{index}: its id becomes the question_id: {problem}")
    task = record.get("task")
    if task not in (None, "") and not isinstance(task, str):  # 0 or false became "unspecified"
        raise QuestionFileError(f"record {rid!r}: task {json.dumps(task)} is not a string")
    if isinstance(task, str) and task and blank(task):  # the report refused it, after the model had run
        raise QuestionFileError(f"record {rid!r}: task {task!r} is blank; give a task name, or leave `task` out")
    turns = record.get("conversations")
    shape = [t.get("from") if isinstance(t, dict) else t for t in turns] if isinstance(turns, list) else turns
    if shape != ["human", "gpt"]:
        raise QuestionFileError(f"record {rid!r}: needs exactly one human turn then one gpt turn, got {shape!r}")
    for turn in turns:  # str(None) would become the question or the reference answer "None"
        if not isinstance(turn.get("value"), str):
            raise QuestionFileError(f"record {rid!r}: the {turn['from']} turn's value is "
                                    f"{turn.get('value')!r}, not a string")
    if blank(turns[1]["value"]):  # a reference no answer can match: the task's scores drop silently
        raise QuestionFileError(f"record {rid!r}: the gpt turn (the reference answer) is empty")
    question = {"question_id": rid, "text": trained_question_text(turns[0]["value"]),
                "answer": turns[1]["value"], "task": task or "unspecified"}
    if not question["text"]:
        raise QuestionFileError(f"record {rid!r}: the human turn holds no instruction")
    for name in COPIED:
        if record.get(name) not in (None, ""):
            question[name] = record[name]
    _check_properties(record, rid)
    _check_smiles(record, rid, molecules or smiles_checker())
    settings = fp
    if record.get("molecule_fp") is not None:
        question["molecule_fp"] = _checked_fp(record, str(rid), data_dir, settings)
    if "molecule_fp" in question:
        from ..molecule_fp import DEEPMOLM

        question["fp_bits"], question["fp_levels"] = (settings or DEEPMOLM).bits, (settings or DEEPMOLM).levels
    return question


def _check_properties(record: dict, rid) -> None:
    """`properties` as training takes them (finite numbers): a NaN went into the question
    file as a bare NaN, and the report then said the question had no properties entry."""
    from ..data.records import properties_problem

    problem = properties_problem(record.get("properties"))
    if problem:
        raise QuestionFileError(f"record {rid!r}: {problem}")


# SMILES and atom lists of more heavy atoms than this are not parsed here (sanitising grows
# quadratically: a 12,000-atom ring took 6 s); the model's own atom cap (its config's
# max_atoms) is model_vqa's
PARSE_BOUND = 16 * 256


def smiles_checker():
    """The resolver records' SMILES are parsed with (no 3D work; bounded by PARSE_BOUND)."""
    from ..molecule.inputs import InputResolver

    return InputResolver(limits={"max_atoms": PARSE_BOUND})


def _check_smiles(record: dict, rid, molecules) -> None:
    """A record's SMILES parses: one that did not failed its question only in model_vqa,
    after every other question was answered, and the report then refused the run for the
    missing answer. One past PARSE_BOUND is left to model_vqa (which answers it under a
    model trained with `--max-atoms none`)."""
    from ..molecule.errors import MoleculeTooLarge
    from ..molecule.inputs import InputError

    if record.get("smiles") in (None, ""):
        return
    try:
        molecules.check_sources({"smiles": record["smiles"]}, str(rid))
    except InputError as e:
        if not isinstance(e.__cause__, MoleculeTooLarge):
            raise QuestionFileError(str(e)) from e


def _fp_settings(args):
    """The settings DATA's tokens were made with: its prepared split's manifest.json (next
    to it) when there is one (--fp-bits / --fp-levels must then agree), else the options,
    else DeepMoLM's."""
    from ..molecule.sidecar import manifest_settings
    from ..molecule_fp import DEEPMOLM, FingerprintSettings

    try:
        made, manifest = manifest_settings(usage.real_path(args.data).parent)
    except ValueError as e:
        raise usage.UsageError(f"DATA {args.data}: its {e}") from e
    chosen = {}
    for name, given in (("fp_bits", args.fp_bits), ("fp_levels", args.fp_levels)):
        if given is not None and made.get(name) not in (None, given):
            raise usage.UsageError(f"--{name.replace('_', '-')} {given}: DATA was prepared with {name}={made[name]} "
                                   f"({manifest})")
        chosen[name] = given if given is not None else made.get(name, getattr(DEEPMOLM, name[3:]))
    try:
        return FingerprintSettings(chosen["fp_bits"], chosen["fp_levels"])
    except ValueError as e:  # the settings' bounds, naming the setting
        raise usage.UsageError(f"--fp-bits / --fp-levels: {e}") from e


def convert(records: Iterable[dict], data_dir: Path, fp=None) -> List[dict]:
    from ..data.records import PreparedPictures
    from ..molecule.sidecar import manifest_settings
    from ..usage import DataError

    questions, seen, molecules = [], set(), smiles_checker()
    made, manifest = manifest_settings(data_dir)
    pictures = PreparedPictures(made.get("image_size"))
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise QuestionFileError(f"record #{index} is not a JSON object")
        question = record_to_question(record, index, data_dir, fp, molecules)
        _check_picture(record, question, data_dir, pictures)
        key = str(question["question_id"])
        if key in seen:
            raise QuestionFileError(f"record id {question['question_id']!r} appears more than once")
        seen.add(key)
        questions.append(question)
    if not questions:
        raise QuestionFileError("the data file holds no records")
    try:  # one depiction size per split, the manifest's (as training requires of its records)
        pictures.render_size(manifest)
    except DataError as e:
        raise QuestionFileError(str(e)) from e
    _check_as_the_report_does(questions)
    return questions


def _check_picture(record: dict, question: dict, data_dir: Path, pictures) -> None:
    """A picture of DATA's folder checked as training checks it (`data.records.PreparedPictures`:
    a content-addressed file still hashing to its name, the record's `depiction`), and a
    depiction's side stamped on the line as `depiction_size`, which model_vqa compares with
    the model's render_size (was: a split prepared at 1024 px was asked of a model trained
    at 256 px without a word). A picture not there is model_vqa's (its --image-folder)."""
    from ..data.records import RecordError

    image = record.get("image")
    if not isinstance(image, str) or not image:
        return
    try:
        usage.name_length(data_dir / image, "image")
    except usage.UsageError as e:  # (is_file raised ENAMETOOLONG as a traceback)
        raise QuestionFileError(f"question {question['question_id']!r}: its image {usage.shortened(image)!r}: "
                                f"{usage.NAME_TOO_LONG}") from e
    if not (data_dir / image).is_file():
        return
    try:
        side = pictures.check(record, str(data_dir / image), str(question["question_id"]))
    except RecordError as e:
        raise QuestionFileError(str(e)) from e
    if side is not None:
        question["depiction_size"] = side


def _refused(kind: str, what) -> bool:
    """Whether a property (or binary) question without a reference value refuses the question file:
    unless its reference answer states no value at all (`numbers.NO_VALUE_STATED`: no number,
    "not measured"), a value was meant but written so that the report cannot read it (a
    decimal comma, a range, a bound, `12 345.6`, `1.234.5`, `1'23`, ...). `what` is the
    parser's code (`task_kinds.no_value_reason`). Was: only a decimal comma, a range, a bound
    and a choice refused it, matched by their English words; the others only warned, and the
    report left those questions out."""
    from .metrics.numbers import NO_VALUE_STATED
    from .task_kinds import VALUED_KINDS

    return kind in VALUED_KINDS and what not in NO_VALUE_STATED


def _check_as_the_report_does(questions: List[dict]) -> None:
    """The report's own checks of its references, run now: it refused them only after the
    model had answered every question. scoring.group_by_task (a `metric` it does not know,
    an empty or nameless IUPAC reference, one task spelled two ways, two kinds in one task),
    scoring.task_references (property tasks: task_kinds.reference_value, a reference answer
    stating 2.0 with `properties` holding 9.0, a unit of another kind) and
    scoring.not_scored: a task none of whose questions has a reference to score against
    (no reference value; no reference SMILES that parses), which the report leaves unscored."""
    from collections import OrderedDict

    from .merge import MAX_IDS_SHOWN, ReportError
    from .scoring import group_by_task, not_scored, task_references, unreferenced_reasons

    refs = OrderedDict((str(q["question_id"]), q) for q in questions)
    unscored, unread, left_out = [], [], []
    try:
        for task, (kind, qids) in group_by_task(refs).items():
            references = task_references(task, kind, refs, qids)
            reasons = unreferenced_reasons(task, kind, refs, qids, references) if references is not None else {}
            why = not_scored(kind, references, reasons)
            if why:
                unscored.append(f"task {task!r}: {why} ({len(qids)} question(s))")
            for i, (what, reason) in reasons.items():
                named = f"record {refs[qids[i]]['question_id']!r} ({task}): {reason}"
                (unread if _refused(kind, what) else left_out).append(named)
    except ReportError as e:  # worded for DATA, a records file (was: "Fix the question file")
        from .record_labels import for_records_file

        raise QuestionFileError(f"the report would refuse it: {for_records_file(str(e))}") from e
    if unscored:  # all of them at once: each was a rerun
        raise QuestionFileError(f"the report could score no question of {'; '.join(unscored)}; fix those records' "
                                "gpt turn or `properties`, or leave the task out")
    if unread:  # a value meant (`1,7`, `1.5-2.0`, `12 345.6`), which the report would leave out after the run
        raise QuestionFileError(f"{len(unread)} record(s) state a reference value the report cannot read: "
                                + "; ".join(unread[:MAX_IDS_SHOWN]) + ("; ..." if len(unread) > MAX_IDS_SHOWN else "")
                                + "; write one number (a decimal point, one value) in the gpt turn, or give "
                                "`properties`")
    for named in left_out:  # no value stated ("not measured"): left out by the report, said now
        print(f"warning: {named}: the report will leave it out", file=sys.stderr)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deepmolm_plugin.eval.questions",
                                     description="Host records (a prepared split) -> model_vqa question file.")
    parser.add_argument("data", type=usage.user_path, help="JSON list of host records")
    parser.add_argument("out", type=usage.user_path, help="question file to write (JSONL)")
    parser.add_argument("--fp-bits", type=int, default=None,
                        help="what DATA's molecule_fp were made with (default: its manifest.json's, else 4096)")
    parser.add_argument("--fp-levels", type=int, default=None,
                        help="what DATA's molecule_fp were made with (default: its manifest.json's, else 4)")
    args = parser.parse_args(argv)
    try:
        usage.existing_file(args.data, "DATA", allow_empty=False)
        usage.name_length(args.out, "QUESTIONS")  # (is_dir below raised ENAMETOOLONG as a traceback)
        if Path(args.out).is_dir():
            raise usage.UsageError(f"QUESTIONS {args.out}: is a folder, not a file")
        if usage.real_path(args.out) == usage.real_path(args.data):  # it was replaced by the questions
            raise usage.UsageError(f"QUESTIONS {args.out}: is the DATA file; it would be overwritten")
        usage.output_folder(Path(args.out).parent, "QUESTIONS's folder")  # a file there was a FileExistsError
        fp = _fp_settings(args)
    except usage.UsageError as e:
        usage.fail(parser.prog, e)
    data = Path(args.data)
    try:  # the training launcher's reader: not JSON, no list, no objects, half a surrogate pair
        records = usage.json_list_file(data, "DATA")
    except usage.UsageError as e:
        usage.fail(parser.prog, e)
    try:
        # training's check of the sidecar references, and its cause analysis (an edited offset
        # or records of several outputs; was: the "several outputs" guess for either)
        from ..data.records import check_sidecar_overlaps

        check_sidecar_overlaps(records, str(data))
    except ValueError as e:
        raise SystemExit(f"error: {e}") from e
    try:
        questions = convert(records, usage.real_path(data).parent, fp)
    except QuestionFileError as e:
        raise SystemExit(f"error: {data}: {e}") from e
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:  # whole or not at all; a pipe or device path is refused (its own .tmp replaced /dev/full)
        write_atomic(out, "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in questions))
    except OSError as e:
        usage.fail(parser.prog, f"OUT {out}: {e}")
    print(f"{len(questions)} questions -> {out}")

