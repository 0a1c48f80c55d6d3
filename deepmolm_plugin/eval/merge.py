"""Answer shards -> one answer per question, and the reference records they answer.

Answer lines are the host's model_vqa `{question_id, prompt, text, answer_id, model_id,
metadata}`, one file per chunk/rank. Reference lines (the question file
`deepmolm_plugin.eval.questions` writes) carry `question_id`, `task`, `answer` (the
reference answer text) and, for property tasks, `properties` ({name: value}); an optional
`metric` field overrides the kind of task the name implies. Without a references file,
each answer line must carry `task` and `answer` itself (top level or in `metadata`).

Every file named must exist (an empty file is an empty chunk) and a line without `text`
(or whose `text` is not a string: null is no answer, not the answer "None") is an error,
as are answer files that hold no answer at all (without references) and a references
file with no question. A question_id answered twice (in two shards or within
one), a reference question with no answer, and an answer to no reference question are
errors naming the ids and files, except a question that model_vqa's failures file beside
a shard lists (`read_failures`: it could not be asked, and the report counts it as not
asked; was: an error, no score at all); a failures entry for an answered question or for
none in the references is an error (failures files of another run); so are answers holding chat special tokens
(`<|im_end|>`: decoded without skip_special_tokens), answers from several different `model_id`s
(stale files of another run), and answers whose `prompt` (the question the host asked)
is not their reference record's `text` (answers to another question file whose ids
happen to match, such as the numbered ids of two splits), or which carry a `task` or
`answer` (top level or in `metadata`) other than their reference record's, or whose
question's image or molecule fields (`metadata.asked`, per field) differ from the
reference record's (two splits with one fixed prompt): `check_pairing`.
"""

from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from . import jsonl
from .resume import ASKED, asked_digests

MAX_IDS_SHOWN = 20  # an error names at most this many ids, then the count
SPECIAL_TOKEN = re.compile(r"<\|[A-Za-z_]+\|>|</s>")  # Qwen2's <|im_end|>, <|endoftext|>; Llama's </s>


class ReportError(ValueError):
    """Bad inputs to the report; printed without a traceback."""


class MergeError(ReportError):
    pass


def format_ids(ids: Iterable, limit: int = MAX_IDS_SHOWN) -> str:
    """'q1', 'q2', ... (N in all): ids for an error message, the first `limit` of them."""
    ids = list(ids)
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > limit else "")


def read_jsonl(path: os.PathLike) -> List[dict]:
    return jsonl.read_jsonl(path, required=("question_id",), error=ReportError)


def merge_answers(paths: Sequence[os.PathLike], expected: Optional[Sequence] = None,
                  not_asked: Optional[Dict[str, Tuple[str, str]]] = None) -> Tuple[Dict[str, dict], dict]:
    """{str(question_id): answer line} from all shards, and {path: line count}.

    MergeError (naming ids and files) for a missing file, an id answered more than once,
    and, when `expected` ids are given, an expected id with no answer or an answer to an
    unexpected id. An expected id that `not_asked` (`read_failures`) lists is no error: the
    report scores the others and lists it as not asked (was: the whole report refused, every
    answered question unscored). One it lists that has an answer, or that is not expected,
    is an error: failures files of another run."""
    if not paths:
        raise MergeError("no answer files given")
    folders = [str(p) for p in paths if Path(p).is_dir()]
    if folders:  # were "missing"
        raise MergeError(f"answer file(s) that are folders: {', '.join(folders)} (give the files, e.g. "
                         "answers/*.jsonl)")
    missing_files = [str(p) for p in paths if not Path(p).is_file()]
    if missing_files:
        raise MergeError(f"answer file(s) missing: {', '.join(missing_files)} (a chunk that did not run or "
                         "failed; an empty chunk still writes an empty file)")
    given: Dict[Path, str] = {}
    for path in paths:  # one file named twice: every id was "answered more than once"
        resolved = Path(path).resolve()
        if resolved in given:
            raise MergeError(f"answer file {path} is given twice (also as {given[resolved]})")
        given[resolved] = str(path)
    merged: Dict[str, dict] = {}
    where: Dict[str, List[str]] = {}
    counts = OrderedDict()
    for path in paths:
        rows = read_jsonl(path)
        counts[str(path)] = len(rows)
        for row in rows:
            if "text" not in row:
                raise MergeError(f"{path}: question {row['question_id']!r} has no `text`: not a model_vqa answer file")
            if not isinstance(row["text"], str):  # str(None) would be scored as the answer "None"
                raise MergeError(f"{path}: question {row['question_id']!r}: `text` is "
                                 f"{type(row['text']).__name__} {row['text']!r}, not a string")
            qid = str(row["question_id"])
            where.setdefault(qid, []).append(str(path))
            merged.setdefault(qid, row)
    problems = []
    duplicated = {qid: files for qid, files in where.items() if len(files) > 1}
    if duplicated:
        detail = "; ".join(f"{qid!r} in {', '.join(files)}" for qid, files in list(duplicated.items())[:MAX_IDS_SHOWN])
        more = f" ({len(duplicated)} ids in all)" if len(duplicated) > MAX_IDS_SHOWN else ""
        problems.append(f"question_id answered more than once: {detail}{more}")
    failed = not_asked or {}
    if expected is not None:
        expected_set = {str(q) for q in expected}
        missing = [str(q) for q in expected if str(q) not in merged and str(q) not in failed]
        unexpected = [qid for qid in merged if qid not in expected_set]
        if missing:
            problems.append(f"{len(missing)} question(s) have no answer in any shard and are in no failures file "
                            f"(a chunk that did not run, or was stopped?): {format_ids(missing)}"
                            if not_asked is not None else
                            f"{len(missing)} question(s) have no answer in any shard: {format_ids(missing)}"
                            + _failed_note(paths, missing))
        if unexpected:
            problems.append(f"{len(unexpected)} answer(s) to questions not in the references: {format_ids(unexpected)}")
        stale = [qid for qid in failed if qid not in expected_set]
        if stale:
            problems.append(f"{len(stale)} question(s) in the failures file(s) are not in the references "
                            f"({', '.join(sorted({failed[q][0] for q in stale}))}): {format_ids(stale)}")
    both = [qid for qid in failed if qid in merged]
    if both:  # model_vqa removes its failures file when a run starts: one of them is another run's
        problems.append(f"{len(both)} question(s) are answered and also listed as not asked "
                        f"({', '.join(sorted({failed[q][0] for q in both}))}): failures files of another run? "
                        f"{format_ids(both)}")
    if problems:
        raise MergeError("cannot merge the answer shards " + ", ".join(str(p) for p in paths) + ":\n  "
                         + "\n  ".join(problems))
    _check_special_tokens(merged)
    if not merged and expected is None:
        raise MergeError(f"the answer files hold no answers: {', '.join(str(p) for p in paths)}")
    models = sorted({str(row.get("model_id")) for row in merged.values() if row.get("model_id") is not None})
    if len(models) > 1:
        raise MergeError(f"answers come from {len(models)} models ({', '.join(models)}): stale shards of "
                         "another run among the files?")
    _check_one_run(merged, where)
    return merged, counts


def _check_one_run(merged: Dict[str, dict], where: Dict[str, List[str]]) -> None:
    """The model_vqa settings the answers carry (`metadata.settings`: model folder, template,
    decoding options, and `settings_digest`, which adds the model folder's files) must be one
    run's: the host's `model_id` is only the model folder's name, so exp1/checkpoint and
    exp2/checkpoint, a chunk run at another temperature, or one after the model was
    retrained in place, were scored as one run. Answers without them beside answers with
    them are refused too (a shard of an older run, or of another tool)."""
    from .resume import SETTINGS, SHOWN

    runs: Dict[str, Tuple[dict, set]] = OrderedDict()  # settings and digest as JSON -> (settings, files)
    bare: set = set()  # files of answers that carry no settings
    for qid, row in merged.items():
        made = row.get("metadata")
        shown = made.get(SHOWN) if isinstance(made, dict) else None
        if not isinstance(shown, dict):
            bare.update(where[qid])
            continue
        key = json.dumps([shown, made.get(SETTINGS)], sort_keys=True)
        runs.setdefault(key, (dict(shown, settings_digest=made.get(SETTINGS)), set()))[1].update(where[qid])
    if runs and bare:
        raise MergeError(f"answers in {', '.join(sorted(bare))} carry no model_vqa settings while those in "
                         f"{', '.join(sorted(set().union(*(files for _, files in runs.values()))))} do: a shard of "
                         "an older run or of another tool among the files?")
    if len(runs) < 2:
        return
    differ = _differing_keys([shown for shown, _ in runs.values()])
    if not differ:  # they differ only in what some did not record: one run, answered before and after
        return
    why = (" (the same options: the model folder's files changed between them, retrained in place?)"
           if differ == ["settings_digest"] else "")
    folders = [k for k in RECORDED_LATER if k in differ]  # two recorded digests that differ
    if folders:  # other bytes under the same file names
        why += (f" ({' and '.join(folders)}: the chunks' models saw other pictures or structure files under the "
                "same names: run with another --image-folder or --structure-folder?)")
    listed = "; ".join(", ".join(sorted(files)) + ": " + ", ".join(f"{k}={shown.get(k)!r}" for k in differ)
                       for shown, files in runs.values())
    raise MergeError(f"the answers come from model_vqa runs with different settings ({listed}){why}: stale "
                     "shards of another run, or chunks run with other options?")


# settings model_vqa began recording later (the digests of the image and structure files the
# questions name): a chunk answered before then has no such key, or null, and was refused
# beside a chunk of the same run re-run later ("image_files=None; image_files='0123...'")
RECORDED_LATER = ("image_files", "structure_files")


def _differing_keys(settings: List[dict]) -> List[str]:
    """The keys whose values differ among the runs' settings; a RECORDED_LATER key is
    compared only among the runs that recorded it (was: None against a digest was
    "different settings"), so two recorded digests that differ are still refused."""
    differ = []
    for key in sorted(set().union(*settings)):
        values = {json.dumps(s.get(key), sort_keys=True) for s in settings
                  if not (key in RECORDED_LATER and s.get(key) is None)}
        if len(values) > 1:
            differ.append(key)
    return differ


def read_failures(paths: Sequence[os.PathLike]) -> "OrderedDict[str, Tuple[str, str]]":
    """{str(question_id): (failures file, reason)}: the questions model_vqa could not ask, from
    the `<answers stem>.failures.jsonl` beside each answers file (`{question_id, reason}`)."""
    failed: "OrderedDict[str, Tuple[str, str]]" = OrderedDict()
    for path in paths:
        listed = jsonl.failures_path(path)
        if listed.is_file():
            for row in jsonl.read_jsonl(listed, required=("question_id", "reason"), error=ReportError):
                failed.setdefault(str(row["question_id"]), (str(listed), str(row["reason"])))
    return failed


def _failed_note(paths: Sequence[os.PathLike], missing: List[str]) -> str:
    """'; N of them could not be asked (FILE): ...' for missing ids that model_vqa's
    failures files beside the answer files list, with the first one's reason."""
    failed = read_failures(paths)
    named = [qid for qid in missing if qid in failed]
    if not named:
        return ""
    files = sorted({failed[qid][0] for qid in named})
    return (f"; {len(named)} of them could not be asked ({', '.join(files)}), e.g. {named[0]!r}: "
            f"{failed[named[0]][1]}")


# (answer line's field, reference record's field, what a mismatch means) that must agree
# when both are strings: the host writes the question's `text` as `prompt`; other
# producers may copy `task` / `answer` into the line or its `metadata`.
PAIRED_FIELDS = (("prompt", "text", "were asked another question than the references hold"),
                 ("task", "task", "carry another `task` than their references"),
                 ("answer", "answer", "carry another reference `answer` than their references"))


def _check_special_tokens(answers: Dict[str, dict]) -> None:
    """MergeError for answers holding chat-template special tokens (`<|im_end|>`,
    `<|endoftext|>`, `</s>`): the text was decoded without skip_special_tokens (the host's
    model_vqa skips them). Scored as they were, they cost text metrics their last n-grams
    and made a SMILES answer invalid ("CCO<|im_end|>")."""
    held = [qid for qid, row in answers.items() if SPECIAL_TOKEN.search(row["text"])]
    if held:
        first = SPECIAL_TOKEN.search(answers[held[0]]["text"]).group()
        raise MergeError(f"{len(held)} answer(s) hold chat special tokens such as {first!r}: decoded without "
                         f"skip_special_tokens? Remove them before scoring: {format_ids(held)}")


def check_pairing(answers: Dict[str, dict], refs: "OrderedDict[str, dict]") -> None:
    """MergeError when an answer line says it answers something else than its reference
    record: its `prompt` is not the record's `text` (answers to another question file whose
    ids happen to match), or the `task` or reference `answer` it carries (top level or in
    `metadata`) differ from the record's (the references file won silently)."""
    for mine, theirs, meaning in PAIRED_FIELDS:
        differ = []
        for qid, row in answers.items():
            got, want = _carried(row, mine), refs.get(qid, {}).get(theirs)
            if isinstance(got, str) and isinstance(want, str) and got != want:
                differ.append(qid)
        if differ:
            first = differ[0]
            raise MergeError(f"{len(differ)} answer(s) {meaning} (answers to another question file?): "
                             f"{format_ids(differ)}; first: {mine} {_carried(answers[first], mine)[:80]!r} "
                             f"in the answers, {theirs} {refs[first][theirs][:80]!r} in the references")
    # the same prompt for every record (one fixed question per task) and ids numbered alike:
    # what each answer was asked about, field by field, where the reference line has it too
    differ = {}
    for qid, row in answers.items():
        asked = _carried(row, ASKED)
        if isinstance(asked, dict) and qid in refs:
            theirs = asked_digests(refs[qid])
            fields = [name for name, digest in asked.items() if name in theirs and theirs[name] != digest]
            if fields:
                differ[qid] = fields
    if differ:
        first = next(iter(differ))
        raise MergeError(f"{len(differ)} answer(s) were asked about another molecule or image than their references "
                         f"hold (answers to another question file?): {format_ids(list(differ))}; first: question "
                         f"{first!r}, whose {', '.join(differ[first])} differ(s) from the references'")


def _carried(row: dict, field: str):
    """A field of an answer line, top level first, else in its `metadata`."""
    if field in row:
        return row[field]
    metadata = row.get("metadata")
    return metadata.get(field) if isinstance(metadata, dict) else None


def load_references(path: os.PathLike) -> "OrderedDict[str, dict]":
    """{str(question_id): reference record} of a question file, in file order."""
    refs: "OrderedDict[str, dict]" = OrderedDict()
    duplicated = []
    for row in read_jsonl(path):
        qid = str(row["question_id"])
        if qid in refs:
            duplicated.append(qid)
        _check_properties(row)
        refs[qid] = row
    if duplicated:
        raise ReportError(f"{path}: question_id listed more than once: {format_ids(duplicated)}")
    if not refs:
        raise ReportError(f"--references {path}: holds no questions")
    return refs


def _check_properties(record: dict) -> None:
    """`properties` as training and eval.questions take them ({name: finite number}): a NaN,
    inf, true or "2.5" was read as no entry (the question left out as "no properties
    entry") or as the number 2.5."""
    from ..data.records import properties_problem

    problem = properties_problem(record.get("properties"))
    if problem:
        raise ReportError(f"question {record['question_id']!r}: {problem}")


def references_from_answers(answers: Dict[str, dict]) -> "OrderedDict[str, dict]":
    """Reference records carried by the answer lines themselves (no references file):
    `task`, `answer`, `properties`, `metric` at top level win over the same keys in `metadata`."""
    refs: "OrderedDict[str, dict]" = OrderedDict()
    lacking = []
    for qid, row in answers.items():
        top = {k: v for k, v in row.items() if k in ("task", "answer", "properties", "metric")}
        metadata = row.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise ReportError(f"question {row['question_id']!r}: `metadata` is {type(metadata).__name__} "
                              f"{metadata!r}, not a JSON object")
        source = {**metadata, **top}
        if "answer" not in source:
            lacking.append(qid)
            continue
        refs[qid] = {"question_id": row["question_id"], **source}
        _check_properties(refs[qid])
    if lacking:
        raise ReportError(f"no --references given and {len(lacking)} answer(s) carry no reference `answer` "
                          f"(top level or metadata): {format_ids(lacking)}")
    return refs
