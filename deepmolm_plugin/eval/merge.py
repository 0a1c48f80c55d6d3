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

Answer lines changed after model_vqa wrote them (their `metadata.content_digest` is not the
line's: `was_edited`), and `metadata` fields of another type than model_vqa writes
(`metadata_problem`: `"capped": "true"`) are refused naming file, line and id (was: scored
as the model's; read as not recorded). Failures entries are held against the references as
answers are (`check_failures_pairing`), and a question listed twice in them is refused
(`read_failures`).
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from .. import usage
from . import jsonl
from .resume import ASKED, CAPPED, CONTENT, QUESTION, SETTINGS, SHOWN, asked_digests, content_digest

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
    found = {}
    for p in paths:
        try:  # a name too long was an OSError traceback (Path.is_dir raises it)
            found[str(p)] = usage.path_stat(p, "answer file")
        except usage.UsageError as e:
            raise MergeError(str(e)) from None
    folders = [p for p, st in found.items() if st is not None and stat.S_ISDIR(st.st_mode)]
    if folders:  # were "missing"
        raise MergeError(f"answer file(s) that are folders: {', '.join(folders)} (give the files, e.g. "
                         "answers/*.jsonl)")
    # a pipe (`<(...)`) was "missing (a chunk that did not run...)"
    pipes = [p for p, st in found.items() if st is not None and not stat.S_ISREG(st.st_mode)]
    if pipes:
        raise MergeError(f"answer file(s) {', '.join(pipes)}: {usage.NOT_A_REGULAR_FILE}")
    missing_files = [p for p, st in found.items() if st is None]
    if missing_files:
        raise MergeError(f"answer file(s) missing: {', '.join(missing_files)} (a chunk that did not run or "
                         "failed; an empty chunk still writes an empty file)")
    given: Dict[Path, str] = {}
    for path in paths:  # one file named twice: every id was "answered more than once"
        resolved = usage.real_path(path)
        if resolved in given:
            raise MergeError(f"answer file {path} is given twice (also as {given[resolved]})")
        given[resolved] = str(path)
    merged: Dict[str, dict] = {}
    where: Dict[str, List[str]] = {}
    located: Dict[str, str] = {}  # {question_id: "file, line N"} of the line kept, for messages
    edited: List[str] = []  # "file, line N (question 'x')" of lines changed after model_vqa wrote them
    counts = OrderedDict()
    for path in paths:
        rows = jsonl.numbered_jsonl(path, required=("question_id",), error=ReportError)
        counts[str(path)] = len(rows)
        for number, row in rows:
            if "text" not in row:
                raise MergeError(f"{path}: question {row['question_id']!r} has no `text`: not a model_vqa answer file")
            if not isinstance(row["text"], str):  # str(None) would be scored as the answer "None"
                raise MergeError(f"{path}: question {row['question_id']!r}: `text` is "
                                 f"{type(row['text']).__name__} {row['text']!r}, not a string")
            # without references a `metadata` that is no object is refused by `references_from_answers`,
            # which reads the reference from it; with them nothing else would say it (read as none)
            check_metadata_types(row, f"{path}, line {number}", whole=expected is not None)
            if was_edited(row):
                edited.append(f"{path}, line {number} (question {row['question_id']!r})")
            qid = str(row["question_id"])
            where.setdefault(qid, []).append(str(path))
            merged.setdefault(qid, row)
            located.setdefault(qid, f"{path}, line {number}")
    problems = []
    if edited:  # was: scored as the model's (a reference value typed in scored 0 error); --resume already re-asks them
        problems.append(f"{len(edited)} answer line(s) were changed after model_vqa wrote them (their "
                        f"`metadata.content_digest` no longer matches the line: edited by hand or by another tool?): "
                        f"{'; '.join(edited[:MAX_IDS_SHOWN])}{f' ({len(edited)} in all)' if len(edited) > MAX_IDS_SHOWN else ''}"
                        "; score the model's own answers (model_vqa --resume asks these questions again)")
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
    _check_one_run(merged, where, located)
    return merged, counts


# The types of the `metadata` fields the report reads (model_vqa writes them; null: not
# recorded). Was: a value of another type was read as not recorded (`"capped": "true"`, a
# capped answer scored as whole) or compared as is.
METADATA_TYPES = {CAPPED: (bool, "true, false or null"), SHOWN: (dict, "a JSON object"),
                  SETTINGS: (str, "a string"), QUESTION: (str, "a string"), CONTENT: (str, "a string"),
                  ASKED: (dict, "a JSON object of strings")}


def metadata_problem(row: dict, whole: bool = True) -> Optional[str]:
    """Why an answer (or failures) line's `metadata` cannot be read, or None: not a JSON
    object (when `whole`), or a field the report reads (METADATA_TYPES) of another type."""
    made = row.get("metadata")
    if made is None or (not whole and not isinstance(made, dict)):
        return None
    if not isinstance(made, dict):
        return f"`metadata` is a JSON {jsonl.json_kind(made)} {json.dumps(made)[:60]}, not a JSON object"
    for field, (kind, wanted) in METADATA_TYPES.items():
        value = made.get(field)
        if value is None:
            continue
        if field == ASKED and isinstance(value, dict) and not all(isinstance(v, str) for v in value.values()):
            return f"`metadata.{field}` holds a value that is not a string; {wanted} is needed"
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            return (f"`metadata.{field}` is a JSON {jsonl.json_kind(value)} {json.dumps(value)[:60]}; "
                    f"{wanted} is needed")
    return None


def check_metadata_types(row: dict, where: str, whole: bool = True) -> None:
    """ReportError naming `where` ("file, line N") and the question for `metadata_problem`."""
    problem = metadata_problem(row, whole)
    if problem:
        raise ReportError(f"{where} (question {row['question_id']!r}): {problem}")


def was_edited(row: dict) -> bool:
    """Whether an answer line was changed after model_vqa wrote it: the `metadata.content_digest`
    it carries is not the line's (`resume.content_digest`, which --resume checks too). A line
    without one (older files, other tools) is not known to be edited."""
    made = row.get("metadata")
    recorded = made.get(CONTENT) if isinstance(made, dict) else None
    return recorded is not None and recorded != content_digest(row)


def _check_one_run(merged: Dict[str, dict], where: Dict[str, List[str]], located: Dict[str, str]) -> None:
    """The model_vqa settings the answers carry (`metadata.settings`: model folder, template,
    decoding options, and `settings_digest`, which adds the model folder's files) must be one
    run's: the host's `model_id` is only the model folder's name, so exp1/checkpoint and
    exp2/checkpoint, a chunk run at another temperature, or one after the model was
    retrained in place, were scored as one run. Answers without them beside answers with
    them are refused too (a shard of an older run, or of another tool)."""
    from .resume import SETTINGS, SHOWN

    runs: Dict[str, Tuple[dict, set]] = OrderedDict()  # settings and digest as JSON -> (settings, files)
    bare: List[str] = []  # ids of answers that carry no settings
    for qid, row in merged.items():
        made = row.get("metadata")
        shown = made.get(SHOWN) if isinstance(made, dict) else None
        if not isinstance(shown, dict):
            bare.append(qid)
            continue
        key = json.dumps([shown, made.get(SETTINGS)], sort_keys=True)
        runs.setdefault(key, (dict(shown, settings_digest=made.get(SETTINGS)), set()))[1].update(where[qid])
    if runs and bare:
        raise MergeError(_bare_message(merged, bare, located, set().union(*(files for _, files in runs.values()))))
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


def _bare_message(merged: Dict[str, dict], bare: List[str], located: Dict[str, str], with_settings: set) -> str:
    """The refusal of answer lines without model_vqa settings beside lines with them, naming
    the first such line by file, line and id (was: "answers in X carry no model_vqa settings
    while those in X do", one file named twice when a single line of it lost its metadata)."""
    first = bare[0]
    more = f" (and {len(bare) - 1} more: {format_ids(bare[1:])})" if len(bare) > 1 else ""
    return (f"{len(bare)} answer line(s) carry no model_vqa settings while those in {', '.join(sorted(with_settings))} "
            f"do: {located[first]} (question {merged[first]['question_id']!r}){more} has no `metadata.{SHOWN}` (or "
            "no `metadata`): a line of an older run or of another tool, or edited by hand?")


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


class Failure(NamedTuple):
    """One failures-file entry: `failure[0]` the file and `failure[1]` the reason, as before."""

    file: str
    reason: str
    line: int
    row: dict  # the whole line: model_vqa writes what the question asked (`prompt`, `metadata.asked`)


def read_failures(paths: Sequence[os.PathLike]) -> "OrderedDict[str, Failure]":
    """{str(question_id): Failure}: the questions model_vqa could not ask, from the
    `<answers stem>.failures.jsonl` beside each answers file (`{question_id, reason, prompt,
    metadata: {asked}}`; files written before `prompt` and `asked` hold the first two only).
    A `reason` that is not a string (null was the reason "None") and a question listed more
    than once, in one file or in two, are errors (was: the first entry won without a word:
    a question belongs to one chunk, so two entries are failures files of two runs)."""
    failed: "OrderedDict[str, Failure]" = OrderedDict()
    where: Dict[str, List[str]] = {}
    for path in paths:
        listed = jsonl.failures_path(path)
        if not listed.is_file():
            continue
        for number, row in jsonl.numbered_jsonl(listed, required=("question_id", "reason"), error=ReportError):
            if not isinstance(row["reason"], str) or not row["reason"].strip():
                raise ReportError(f"{listed}, line {number} (question {row['question_id']!r}): `reason` is "
                                  f"{json.dumps(row['reason'])}; model_vqa writes why the question failed, a text")
            check_metadata_types(row, f"{listed}, line {number}")
            qid = str(row["question_id"])
            where.setdefault(qid, []).append(f"{listed}, line {number}")
            failed.setdefault(qid, Failure(str(listed), row["reason"], number, row))
    twice = {qid: places for qid, places in where.items() if len(places) > 1}
    if twice:
        detail = "; ".join(f"{qid!r} in {', '.join(places)}" for qid, places in list(twice.items())[:MAX_IDS_SHOWN])
        more = f" ({len(twice)} ids in all)" if len(twice) > MAX_IDS_SHOWN else ""
        raise MergeError(f"question listed more than once in the failures files: {detail}{more} (failures files of "
                         "different runs? model_vqa asks each question in one chunk; keep the current run's)")
    return failed


def check_failures_pairing(failed: Dict[str, Failure], refs: "OrderedDict[str, dict]") -> None:
    """The failures entries held against their references as answers are (`check_pairing`):
    an entry whose question was asked with another prompt, molecule or image than the
    references now hold is refused, naming it (was: a question whose SMILES was fixed since
    stayed "not asked" with the old error). Entries written before model_vqa recorded what
    was asked (no `prompt`, no `metadata.asked`) cannot be checked: a note names them."""
    check_pairing({qid: f.row for qid, f in failed.items()}, refs, what="failures entr(ies)",
                  located={qid: f"{f.file}, line {f.line}" for qid, f in failed.items()},
                  hint="the question changed since model_vqa failed on it? ask it again")
    gained = {qid: _molecule_fields_added(f.row, refs[qid]) for qid, f in failed.items() if qid in refs}
    gained = {qid: fields for qid, fields in gained.items() if fields}
    if gained:  # a question that failed for want of a molecule ("has no molecule") has one now
        first = next(iter(gained))
        raise MergeError(f"{len(gained)} failures entr(ies) were written for a question without the molecule field(s) "
                         f"their references hold now (a molecule added since? ask them again): {format_ids(list(gained))}"
                         f"; first ({failed[first].file}, line {failed[first].line}): question {first!r}, "
                         f"{', '.join(gained[first])}")
    unchecked = [qid for qid, f in failed.items() if _carried(f.row, ASKED) is None and _carried(f.row, "prompt") is None]
    if unchecked:
        files = sorted({failed[qid].file for qid in unchecked})
        print(f"note: {len(unchecked)} failures entr(ies) in {', '.join(files)} do not record what their question asked "
              f"(written before model_vqa recorded it, or by another tool): counted as not asked without checking "
              f"them against the references: {format_ids(unchecked)}", file=sys.stderr)


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


def check_pairing(answers: Dict[str, dict], refs: "OrderedDict[str, dict]", what: str = "answer(s)",
                  located: Optional[Dict[str, str]] = None, hint: str = "answers to another question file?") -> None:
    """MergeError when an answer line says it answers something else than its reference
    record: its `prompt` is not the record's `text` (answers to another question file whose
    ids happen to match), or the `task` or reference `answer` it carries (top level or in
    `metadata`) differ from the record's (the references file won silently). `what` names
    the lines ("answer(s)", "failures entr(ies)"), `located` ({id: "file, line N"}) where the
    first one is, `hint` the likely cause."""
    where = (lambda qid: f" ({located[qid]})" if located and qid in located else "")
    for mine, theirs, meaning in PAIRED_FIELDS:
        differ = []
        for qid, row in answers.items():
            got, want = _carried(row, mine), refs.get(qid, {}).get(theirs)
            if isinstance(got, str) and isinstance(want, str) and got != want:
                differ.append(qid)
        if differ:
            first = differ[0]
            raise MergeError(f"{len(differ)} {what} {meaning} ({hint}): "
                             f"{format_ids(differ)}; first{where(first)}: {mine} {_carried(answers[first], mine)[:80]!r} "
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
        raise MergeError(f"{len(differ)} {what} were asked about another molecule or image than their references "
                         f"hold ({hint}): "
                         f"{format_ids(list(differ))}; first{where(first)}: question {first!r}, whose "
                         f"{', '.join(differ[first])} differ(s) from the references'")


def _molecule_fields_added(failure: dict, record: dict) -> List[str]:
    """The molecule fields a reference record holds that the failed question did not (its
    `metadata.asked` lacks them): `check_pairing` compares only the fields both sides hold,
    as a references file may hold fewer than the question file. [] for an entry that does not
    record what was asked."""
    from ..molecule.inputs import MOLECULE_KEYS

    asked = _carried(failure, ASKED)
    if not isinstance(asked, dict):
        return []
    return [name for name in asked_digests(record) if name in MOLECULE_KEYS and name not in asked]


def _carried(row: dict, field: str):
    """A field of an answer line, top level first, else in its `metadata`."""
    if field in row:
        return row[field]
    metadata = row.get("metadata")
    return metadata.get(field) if isinstance(metadata, dict) else None


def load_references(path: os.PathLike, check: Optional[Callable[[dict], object]] = None
                    ) -> "OrderedDict[str, dict]":
    """{str(question_id): reference record} of a question file, in file order. `check`
    (`scoring.check_reference_record`) refuses a record on its own: its ReportError is
    given the file and line (was: "question 'q2': the reference `answer` is a list", naming
    neither)."""
    refs: "OrderedDict[str, dict]" = OrderedDict()
    duplicated = []
    for number, row in jsonl.numbered_jsonl(path, required=("question_id",), error=ReportError):
        qid = str(row["question_id"])
        if qid in refs:
            duplicated.append(qid)
        try:
            _check_properties(row)
            if check is not None:
                check(row)
        except ReportError as e:
            raise ReportError(f"{path}, line {number}: {e}") from e
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
