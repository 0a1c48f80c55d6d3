"""Answers + reference records -> per-task scores: the metrics.json document.

metrics.json:
    {"schema": "deepmolm-eval-metrics/1",
     "scales": "...",                      # every score in [0, 1] is x100; MAE/RMSE in the unit
     "tokenizer": {"name", "description"}, # the text metrics' tokenizer
     "settings": {...},                    # BLEU weights, ROUGE/METEOR/fingerprint settings
     "versions": {"nltk", "rouge-score", "rdkit", "deepmolm-plugin"},
     "inputs": {"answers": [paths], "references": path | null, "failures": [model_vqa's failures files]},
     "model_ids": [...],
     "complete": bool,                     # false when model_vqa could not ask some questions (counts.not_asked)
     "counts": {"questions", "answers", "not_asked", "shards": {path: lines}, "tasks": {task: n}},
     "tasks": {task: {"kind": "text" | "iupac" | "property" | "binary" | "smiles", "n": int,
                      "metrics": {...}, "not_scored"?: why}},
     "plots"?, "task_plots"?: {task: its figure}} # relative to the report folder (`outputs.plots`)
    text:     bleu2, bleu4, rouge1, rouge2, rougeL, meteor, n_undefined_rouge1/2/L/meteor, undefined,
              n_truncated (answers over metrics.text.MAX_TOKENS tokens, scored on their first ones;
              `"truncated": true` in their per_question.jsonl rows)
    iupac:    exact_match + the text metrics
    property: property, unit, range, note?, n, n_valid, valid_ratio, mae, rmse, n_without_reference,
              n_references_out_of_range (scored; named in the task's `references_out_of_range`:
              [{question_id, reference_value}], a line under the table and a note on stderr),
              n_cut_values (answers stopped at --max-new-tokens whose number, or the unit after
              it, runs to the end of the text, `value_may_be_cut`: scored invalid, the value may
              be cut short: "12" of 1234.5, "-0.19 Hart" of Hartree)
    every kind: n_not_asked (questions model_vqa could not ask, listed in a `<answers stem>.failures.jsonl`:
              no answer, left out of n and the scores; rows `"scored": false, "not_asked": true` with the
              reason and the kind's row keys, `value` null, `valid` false; a task none of whose questions
              was asked has its kind's metrics keys, scores None, counts 0), n_empty, n_capped (answers whose
              `metadata.capped` says generation stopped at --max-new-tokens; `"capped"` true / false /
              null in their rows: null for answers files that do not record it, which are scored as
              not capped), n_reasoning_removed (answers that opened with a reasoning model's
              `<think> ... </think>` block: scored on the text after it, `reasoning.visible_answer`;
              `"reasoning_removed": true` in their rows, whose `prediction` is that text),
              n_final_answer_marked (answers whose final answer is marked, `<answer>...</answer>` or
              `\\boxed{...}`, and read there: scored on what the markup marks, `scored_text`;
              `"final_answer_marked": true` in their rows, whose `prediction` is that text)
    binary:   label, n, n_valid, valid_ratio, n_positive_references, n_positive_answers, accuracy,
              balanced_accuracy, f1, mcc, auroc, undefined, n_without_reference (`metrics.classes`)
    means:    {"binary": ...} where 2 or more binary tasks are scored: the mean over them of accuracy,
              balanced_accuracy, f1, mcc, auroc (each over the tasks where it is defined; `left_out`
              names the others), n_tasks, n, tasks (`metrics.classes.mean_over_tasks`)
    smiles:   n, n_valid, n_invalid_references, validity, exact_match, bleu (characters, BLEU-4),
              levenshtein (mean edit distance, characters), maccs_fts, rdk_fts, morgan_fts,
              n_undefined_maccs_fts/rdk_fts/morgan_fts, undefined
    (`undefined`: {metric: why} for a metric that is None, 0/0, or that leaves pairs out)

A reference `answer` that is empty or only white space, an IUPAC reference that names no
name ("The IUPAC name is ."), or a list of several acceptable answers is an error (property
questions may take their value from `properties` instead); so are two task names that
differ only in case, spaces or punctuation (`LogP`, `logp`: they were two rows). A property
question without a reference value (`task_kinds.reference_value`) and a SMILES question
whose reference does not parse are left out of their task's scores and of its `n`, counted
(`n_without_reference`, `n_invalid_references`), named on stderr, and kept in
`per_question.jsonl` as rows with `"scored": false` and the reason (every scored row has
`"scored": true`). A task none of whose questions is left (every one without a reference
value, or with a reference SMILES that does not parse) is reported as not scored: n 0,
every score None, `not_scored` saying why, a warning on stderr, and the other tasks
scored (it stopped the whole report, every score lost after the model had run; the
report's exit status stays 0). When no task at all is left to score, that is an error:
a report of no score is none. `eval.questions` refuses such a task beforehand
(`task_references`, `not_scored`). Answers whose `prompt` is not their
reference's `text`, or whose own `task` / `answer` differ from their reference's, are
refused (`merge.check_pairing`).
"""

from __future__ import annotations

import collections
import os
import re
import sys
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

from .. import usage
from ..data.prompts import blank
from .merge import (ReportError, check_failures_pairing, check_pairing, format_ids, load_references, merge_answers,
                    read_failures, references_from_answers)
from .names import name_key
from .reasoning import AnswerPart, answer_part
from .task_kinds import VALUED_KINDS, reference_label, reference_value, task_kind

SCHEMA = "deepmolm-eval-metrics/1"


def _check_reference_text(record: dict, task: str, kind: str) -> None:
    """ReportError for a reference no answer can match: every answer would score 0 against
    it, and the task's means would drop without a word. An empty `answer` (a property
    question may take its value from `properties`), or an IUPAC reference naming nothing
    ("The IUPAC name is ."), which was only counted (`n_empty_references`) and scored 0."""
    from .metrics.molecules import extract_iupac

    if kind not in VALUED_KINDS and blank(record["answer"]):  # (also only invisible characters: "\u200b")
        raise ReportError(f"question {record['question_id']!r} ({task}): the reference `answer` is empty")
    if kind == "iupac" and not extract_iupac(record["answer"]):
        raise ReportError(f"question {record['question_id']!r} ({task}): the reference `answer` "
                          f"{record['answer']!r} holds no IUPAC name")


def _check_spelling(task: str, spellings: dict) -> None:
    """ReportError when `task` and an earlier task differ only in case, spaces or punctuation
    (`LogP` and `logp`): one task spelled two ways, which the report showed as two tasks,
    each with part of the questions. `spellings`: {name_key: task} of the earlier tasks, kept
    by the caller (each new task was compared with every earlier one: 4,000 tasks 18 s)."""
    other = spellings.setdefault(name_key(task), task)
    if other != task:
        raise ReportError(f"tasks {other!r} and {task!r} differ only in case, spaces or punctuation: one task "
                          "spelled two ways? Use one name in the question file (or two clearly different ones)")


def group_by_task(refs: "OrderedDict[str, dict]") -> "OrderedDict[str, Tuple[str, List[str]]]":
    """{task: (kind, [question ids])}, tasks in order of first appearance."""
    groups: "OrderedDict[str, Tuple[str, List[str]]]" = OrderedDict()
    spellings: dict = {}  # name_key -> task, for _check_spelling
    for qid, record in refs.items():
        task, kind = check_reference_record(record)
        _check_spelling(task, spellings)
        if task in groups and groups[task][0] != kind:
            raise ReportError(f"task {task!r}: question {record['question_id']!r} is scored as {kind}, "
                              f"earlier ones as {groups[task][0]} (check `metric` / `properties`)")
        groups.setdefault(task, (kind, []))[1].append(qid)
    return groups


def check_reference_record(record: dict) -> Tuple[str, str]:
    """(task, kind) of one reference record, or a ReportError naming its question for what
    makes it unscorable on its own: a `task` that is no name, no `answer` or one that is not
    one string, an empty one, a `metric` not known, a property reference that contradicts
    its `properties`. `merge.load_references` runs it on each line, so that its refusal
    names the references file and line too."""
    given = record.get("task")
    if isinstance(given, bool) or (isinstance(given, str) and blank(given)):
        # `true` was scored as a text task "True"; "" joined the questions without a task
        raise ReportError(f"question {record['question_id']!r}: `task` is {given!r}; give a task name, or "
                          "leave `task` out")
    if given is not None and not isinstance(given, str):  # as eval.questions: 7 or ["LogP"] became a task
        raise ReportError(f"question {record['question_id']!r}: `task` is {type(given).__name__} {given!r}, "
                          "not a task name (a string)")
    task = str(given if given is not None else "unspecified")
    if "answer" not in record:
        raise ReportError(f"question {record['question_id']!r}: the reference record has no `answer`")
    if isinstance(record["answer"], list):  # several acceptable answers: every metric takes one
        raise ReportError(f"question {record['question_id']!r}: the reference `answer` is a list of "
                          f"{len(record['answer'])}; one reference answer per question is scored (give "
                          "each acceptable answer its own question, or pick one)")
    if not isinstance(record["answer"], str):  # str(None) would be scored as the reference "None"
        raise ReportError(f"question {record['question_id']!r}: the reference `answer` is "
                          f"{type(record['answer']).__name__} {record['answer']!r}, not a string")
    kind = task_kind(task, record)
    _check_reference_text(record, task, kind)
    if kind in VALUED_KINDS:  # a reference answer against its `properties`: refused here with its line
        task_reference(task, kind, record)
    return task, kind


# kind -> (why one of its questions is left out: its row's `reason` and the warning; what
# every question of a task lacks when `not_scored` names it). A property question's reason
# says what its reference answer holds instead of one value (`unreferenced_reasons`).
UNREFERENCED = {
    "property": ("without a reference value ({}, no properties entry)",
                 "has no reference value ({}, no properties entry)"),
    "binary": ("without a reference class ({}, no yes / no, no properties entry)",
               "has no reference class ({}, no yes / no, no properties entry)"),
    "smiles": ("whose reference SMILES does not parse", "has no reference SMILES that parses"),
}


def unreferenced_reasons(task: str, kind: str, refs: "OrderedDict[str, dict]", qids: List[str],
                         references: list) -> Dict[int, Tuple[object, str]]:
    """{index: (what, reason)} of the questions without a reference (`references[i]` None):
    for a property question what its reference answer holds instead of one value, as the
    parser's code (`task_kinds.no_value_reason`: NoValue.NO_NUMBER, DECIMAL_COMMA, RANGE, ...) and its
    row's `reason`. Was: "no number in the reference answer" for all of them, also for
    "The LogP is 1,7." and "between 1.5 and 2.0"."""
    from .task_kinds import no_value_reason

    reasons = {}
    for i, reference in enumerate(references):
        if reference is None:
            if kind in VALUED_KINDS:
                what, why = no_value_reason(refs[qids[i]].get("answer", ""), task)
                reasons[i] = (what, UNREFERENCED[kind][0].format(why))
            else:
                reasons[i] = (UNREFERENCED[kind][0], UNREFERENCED[kind][0])
    return reasons


def task_references(task: str, kind: str, refs: "OrderedDict[str, dict]", qids: List[str]) -> Optional[list]:
    """What each question of a property or SMILES task is scored against: its reference
    value (`task_kinds.reference_value`, which raises ReportError for a reference that
    contradicts itself), or its reference answer's canonical SMILES; None for a question
    without one. None for the other kinds, whose reference is the answer text itself."""
    from .metrics import molecules

    if kind in VALUED_KINDS:
        return [task_reference(task, kind, refs[q]) for q in qids]
    if kind == "smiles":
        return [molecules.canonical_smiles(molecules.extract_smiles(str(refs[q].get("answer", "")))) for q in qids]
    return None


def task_reference(task: str, kind: str, record: dict) -> Optional[float]:
    """A property question's reference value, a binary one's reference class (0 or 1)."""
    return reference_label(task, record) if kind == "binary" else reference_value(task, record)


def not_scored(kind: str, references: Optional[list], reasons: Optional[Dict[int, Tuple[object, str]]] = None
               ) -> Optional[str]:
    """Why no question of a task can be scored (`task_references` found nothing to score
    any of them against), or None. `reasons` (`unreferenced_reasons`) say, for a property
    task, what its reference answers hold instead (without them: no number)."""
    if references is None or any(r is not None for r in references):
        return None
    if kind not in VALUED_KINDS:
        return f"every question {UNREFERENCED[kind][1]}"
    from .metrics.numbers import NoValue

    # `what`: the parser's code (`task_kinds.no_value_reason`), said in its words
    found = collections.Counter(what for what, _ in (reasons or {}).values()) or {NoValue.NO_NUMBER: len(references)}
    held = ("no number in the reference answer" if set(found) == {NoValue.NO_NUMBER} else
            "the reference answers state " + ", ".join(f"{what.value} ({n})" for what, n in found.items())
            + " instead of one value")
    return f"every question {UNREFERENCED[kind][1].format(held)}"


def _leave_out(task: str, refs: "OrderedDict[str, dict]", qids: List[str], reasons: Dict[int, Tuple[object, str]],
               ) -> None:
    """Name on stderr the questions without a reference (`unreferenced_reasons`), one line
    per reason: a data problem, not a model error. They are left out of the task's scores
    and given rows of their own; when none is kept, the task is reported as not scored
    (`score`), and the other tasks are still scored."""
    from .metrics.numbers import NoValue

    by_what: Dict[object, List[int]] = OrderedDict()  # a property's NoValue code, another kind's reason
    for i, (what, _) in reasons.items():
        by_what.setdefault(what, []).append(i)
    for what, dropped in by_what.items():
        why = reasons[dropped[0]][1]
        if len(dropped) > 1 and what is not NoValue.NO_NUMBER and what != why:  # a property reason quotes the first answer
            why += f" (quoted from question {refs[qids[dropped[0]]]['question_id']!r})"
        print(f"warning: {task}: {len(dropped)} question(s) {why}, left out: "
              f"{format_ids([refs[qids[i]]['question_id'] for i in dropped])}", file=sys.stderr)


def capped(answer: dict) -> Optional[bool]:
    """Whether generation of this answer stopped at --max-new-tokens (model_vqa's
    `metadata.capped`); None where the answer line does not say (answers files made before
    model_vqa recorded it, a killed run's answers kept by --resume, other tools): those are
    scored as not capped, their rows' `capped` null. A value of another type (`"true"`) is
    refused while the answers are read (`merge.metadata_problem`; was: read as not recorded,
    a capped answer scored as whole)."""
    from .resume import CAPPED

    metadata = answer.get("metadata")
    status = metadata.get(CAPPED) if isinstance(metadata, dict) else None
    return status if isinstance(status, bool) else None


def value_may_be_cut(text: str, spec=None) -> bool:
    """Whether the value an answer stopped at --max-new-tokens states could be cut short:

    - its number: the parser reads another value once one more digit follows the text (its
      trailing space dropped): "is 12" (of 1234.5), "is 12." (12.5), "is 1.5 × 10^3" (10^35),
      "is 1.5 ×". Only where no word follows the number: there the digit lands in the unit
      (was: a whole "180.16 g mol-1" became "mol-17", no value, and was called cut);
    - its unit, for a property with a convertible unit (`spec`): the text ends in the first
      word after the number, unfinished (`_unfinished`): "-0.19 Hart", "0.18 kilo", "-3.1
      kcal/" (was: read as the bare number, in the property's own unit; Qwen splits
      "Hartree" into several tokens). A whole unit that the cap happens to end on ("-5.2 eV",
      no full stop) is flagged too: a cut word cannot be told from a finished one ("m" may
      be "meV"), and a unit read wrong is scored 27x off.

    "12.13 g/mol." or "180; rounded 18" (a clause end after the number) is whole. The number
    is the one the score reads for `spec` (`numbers.parse_value`: "HOMO: -5.2 eV; LUMO: -0.04
    Hart" is cut for the LUMO; was: the first number, -5.2 eV, was checked while -0.04 was scored)."""
    from .metrics.numbers import converts_units, number_and_text_after

    reading = number_and_text_after(text, spec)
    if reading is None:  # no value: invalid whatever the cap cut
        return False
    # the text after the number and its uncertainty, where the parser's match ended (was: after
    # the shortest prefix that read the same value, inside the number for "-5.0 Hart": ".0
    # Hart", and a cut unit was not flagged)
    value, after = reading
    if not _holds_a_word(after) and (number_and_text_after(text.rstrip() + "7", spec) or (None,))[0] != value:
        return True
    return spec is not None and converts_units(spec) and _unfinished(after)


# where a clause ends: the unit before it is finished ("-5.2 eV, which", "(in Hartree)")
CLAUSE_END = re.compile(r"[.,;:!?](?=\s|$)|[)\]}\n]")
JOINERS = "/^*·⋅×_({[-"  # signs that units are joined or raised with: "kcal/", "Å^", "mol^-"


def _holds_a_word(text: str) -> bool:
    """Two letters in a row (str.isalpha: a regex `\\w` also takes "²" and "¹")."""
    return any(a.isalpha() and b.isalpha() for a, b in zip(text, text[1:]))


def _unfinished(after: str) -> bool:
    """Whether the text after an answer's number may stop inside its unit: no clause end in
    it, it ends in a letter or a sign units are joined with (`JOINERS`), and that last
    word is the first after the number (where the unit stands: "-0.19 Hart", "-3.1 kcal/")
    or inside a bracket left open ("(in Hart"). A word after another ("179.2 g/mol and")
    follows a finished unit. Not seen: the second word of a two-word unit ("atomic uni")."""
    after = after.rstrip()
    if CLAUSE_END.search(after) or not after or not (after[-1].isalpha() or after[-1] in JOINERS):
        return False
    return len(after.split()) == 1 or after.count("(") > after.count(")") or after.count("[") > after.count("]")


def references_out_of_range_note(outside: List[dict], spec) -> str:
    """'N reference value(s) outside the property's range [low, high] unit, scored: 'q6' (60), ...;
    check the ground truth': scored into MAE/RMSE, where one wrong value can outweigh the
    rest (was: only counted in metrics.json)."""
    shown = ", ".join(f"{o['question_id']!r} ({o['reference_value']:g} {spec.unit})" for o in outside[:5])
    more = f", ... ({len(outside)} in all)" if len(outside) > 5 else ""
    return (f"{len(outside)} reference value(s) outside the property's range [{spec.low:g}, {spec.high:g}] "
            f"{spec.unit}, scored: {shown}{more}; check the ground truth")


def _row(answer: dict, task: str, kind: str, prediction: str, reference: str, **fields) -> dict:
    """One line of per_question.jsonl."""
    return {"question_id": answer["question_id"], "task": task, "kind": kind, "prediction": prediction,
            "reference": reference, **fields}


def _naming_the_question(task: str, answers: Dict[str, dict], qids: List[str], metrics):
    """`metrics()`, with a reference over the token limit named by its question ("reference
    3 of 40" said only its place in the task), and a tokenizer whose tokens hold white space
    a ReportError naming the task (it was a ValueError traceback, after every file was read)."""
    from .metrics import text

    try:
        return metrics()
    except text.TextTooLong as e:
        raise text.TextTooLong(f"task {task!r}, question {answers[qids[e.index]]['question_id']!r}: {e}",
                               e.index) from e
    except text.UnusableTokenizer as e:
        raise ReportError(f"task {task!r}: {e}") from e


def unscored_fields(task: Optional[str], kind: Optional[str], record: Optional[dict],
                    prediction: Optional[str], answer: Optional[dict] = None) -> dict:
    """The fields a scored row of `kind` carries, for a row that is not scored: what the
    prediction holds (None where there is none: a question model_vqa could not ask), `valid`
    False, `empty`, `capped`, `reasoning_removed`, `final_answer_marked`, and what the reference
    gives (`reference_value`, `reference_name`, `reference_smiles`, ...; None without a
    reference record). Every row of a task has the same
    keys (was: not-asked rows and rows left out for want of a reference lacked `valid`,
    `value`, `reference_value`: a reader of per_question.jsonl stopped on KeyError 'valid')."""
    from .metrics import classes, molecules, numbers

    part = None if answer is None else answer_part(str(answer.get("text", "")))
    fields = {"empty": prediction is not None and blank(prediction),
              "capped": None if answer is None else capped(answer),
              "reasoning_removed": None if part is None else part.reasoning_removed,
              "final_answer_marked": None if part is None else scored_text(task, kind, part)[1]}
    reference = None if record is None else str(record.get("answer", ""))
    if kind == "property":
        spec = numbers.property_spec(task)
        ref_value = None if record is None else reference_value(task, record)
        fields.update(value=None if prediction is None else numbers.parse_value(prediction, spec), valid=False,
                      reference_value=ref_value, value_may_be_cut=False,
                      reference_out_of_range=ref_value is not None and not spec.in_range(ref_value))
    elif kind == "binary":
        fields.update(value=None if prediction is None else classes.stated_label(prediction, task), label=None,
                      valid=False, reference_value=None if record is None else reference_label(task, record))
    elif kind == "iupac":
        fields.update(name=None if prediction is None else molecules.extract_iupac(prediction),
                      reference_name=None if reference is None else molecules.extract_iupac(reference))
    elif kind == "smiles":
        smiles = None if prediction is None else molecules.extract_smiles(prediction)
        ref_smiles = None if reference is None else molecules.extract_smiles(reference)
        fields.update(smiles=smiles, reference_smiles=ref_smiles,
                      canonical=None if smiles is None else molecules.canonical_smiles(smiles),
                      reference_canonical=None if ref_smiles is None else molecules.canonical_smiles(ref_smiles))
    if kind in ("text", "iupac"):
        fields["truncated"] = False
    return fields


def scored_text(task: Optional[str], kind: Optional[str], part: AnswerPart) -> Tuple[str, bool]:
    """The text a reply to `task` of `kind` is scored on, and whether its final-answer markup
    marked it: the first of `part.marked` (`reasoning.marked_answers`) that holds the kind's
    answer, else the text after the thinking block, read as before. A property's box is read
    with the words leading to it and the rest of its sentence, and holds the answer unless it
    holds no number (`\\boxed{A}`, a formula) or only another property's (`the TPSA is
    \\boxed{25.4}` for a LogP question); a range or a bound there is the answer, invalid. A
    yes/no box holds one if the class reader reads one (`No, it does not cross. \\boxed{BBB-}`
    is read whole); a SMILES box if it parses or is written in SMILES's characters alone (an
    invalid SMILES is the answer, `\\boxed{propyne}` after `SMILES: C#CC` is not); any other
    kind's marked text is its answer."""
    from .metrics import classes, molecules, numbers

    for marked in part.marked:
        text = marked.text
        if kind == "property":
            text = f"{marked.lead}{text}{marked.rest}".strip()
            finding = numbers.no_value_finding(text, numbers.property_spec(task))
            found = finding is None or finding.kind not in (numbers.NoValue.NO_NUMBER, numbers.NoValue.OTHER_PROPERTY)
        elif kind == "binary":
            found = classes.stated_label(text, task) is not None
        elif kind == "smiles":
            smiles = molecules.extract_smiles(text)
            found = molecules.canonical_smiles(smiles) is not None or molecules.smiles_like(smiles)
        else:
            found = bool(text)
        if found:
            return text, True
    return part.text, False


def not_asked_rows(task: Optional[str], kind: Optional[str], qids: List[str], refs: "OrderedDict[str, dict]",
                   failed: Dict[str, Tuple[str, str]]) -> List[dict]:
    """per_question.jsonl rows of the questions model_vqa could not ask (`merge.read_failures`):
    no prediction (null, not an empty answer), `"scored": false`, `"not_asked": true`,
    model_vqa's reason with its failures file, and the keys a scored row of the kind has
    (`unscored_fields`: `value` null, `valid` false, `reference_value` the reference's)."""
    return [{"question_id": refs[q]["question_id"] if q in refs else q, "task": task, "kind": kind,
             "prediction": None, "reference": refs[q].get("answer") if q in refs else None, "scored": False,
             "not_asked": True, "reason": f"not asked: {failed[q][1]} ({failed[q][0]})",
             **unscored_fields(task, kind, refs.get(q), None)} for q in qids]


def empty_metrics(task: str, kind: str) -> dict:
    """A task's `metrics` when none of its questions is scored: every key its kind has, the
    scores None and the counts 0, as the metric functions give for no pair (the text ones
    refuse no pair, so their keys are listed here from the same constants)."""
    from .metrics import classes, molecules, numbers, text

    if kind == "property":
        return {**numbers.property_metrics([], [], task), "n_without_reference": 0, "n_cut_values": 0}
    if kind == "binary":
        return {**classes.binary_metrics([], [], task), "n_without_reference": 0}
    if kind == "smiles":
        return molecules.smiles_metrics([], [])
    scores = {**{key: None for key in text.BLEU_ORDERS}, **{key: None for key in text.ROUGE_ORDERS}, "meteor": None}
    metrics = {**({"exact_match": None, "n_empty_references": 0} if kind == "iupac" else {}), **scores, "n": 0,
               **{f"n_undefined_{key}": 0 for key in [*text.ROUGE_ORDERS, "meteor"]}, "n_truncated": 0,
               "undefined": {}}
    return metrics


def _nothing_asked(task: str, kind: str, qids: List[str], failed: Dict[str, Tuple[str, str]]) -> dict:
    """The result of a task none of whose questions model_vqa could ask: n 0, the kind's
    metrics keys with no score (`empty_metrics`; was: only `n_not_asked`, and readers of
    `mae`, `valid_ratio` stopped on a KeyError), and `not_scored` saying so."""
    files = ", ".join(sorted({failed[q][0] for q in qids}))
    metrics = {**empty_metrics(task, kind), "n_empty": 0, "n_capped": 0, "n_reasoning_removed": 0,
               "n_final_answer_marked": 0, "n_not_asked": len(qids)}
    return {"kind": kind, "n": 0, "metrics": metrics,
            "not_scored": f"no question could be asked by model_vqa ({len(qids)} in {files})"}


def score(answers: Dict[str, dict], refs: "OrderedDict[str, dict]", tokenizer=None, nltk_data=None,
          not_asked: Optional[Dict[str, Tuple[str, str]]] = None) -> Tuple["OrderedDict[str, dict]", List[dict]]:
    """Per-task results {task: {kind, n, metrics, not_scored?}} and per-question rows;
    ReportError when no task has a question left to score. The questions `not_asked` lists
    (model_vqa's failures files, `merge.read_failures`) have no answer: they are left out of
    their task's scores and n, counted (`n_not_asked`) and given rows of their own."""
    failed = not_asked or {}
    from .metrics import classes, molecules, numbers, text

    groups = group_by_task(refs)
    wordnet = None
    if any(kind in ("text", "iupac") for kind, _ in groups.values()):
        wordnet = text.load_wordnet(nltk_data)  # fails early, with the install command
    results: "OrderedDict[str, dict]" = OrderedDict()
    rows: List[dict] = []
    for task, (kind, qids) in groups.items():
        unasked = [q for q in qids if q not in answers]  # merge_answers let only `failed` ones through
        rows += not_asked_rows(task, kind, unasked, refs, failed)
        qids = [q for q in qids if q in answers]
        if not qids:
            results[task] = _nothing_asked(task, kind, unasked, failed)
            print(f"warning: task {task!r} is not scored (n=0): {results[task]['not_scored']}; the other tasks "
                  "are scored", file=sys.stderr)
            continue
        asked = len(qids)  # those left out below for want of a reference are counted against it
        # the answer after a reasoning model's thinking block, what its final-answer markup marks
        parts = {q: answer_part(str(answers[q].get("text", ""))) for q in qids}
        chosen = {q: scored_text(task, kind, parts[q]) for q in qids}
        preds = [chosen[q][0] for q in qids]
        ref_texts = [str(refs[q].get("answer", "")) for q in qids]
        references = task_references(task, kind, refs, qids)  # property values, canonical SMILES
        unscored, results_extra = None, {}
        if references is not None:
            reasons = unreferenced_reasons(task, kind, refs, qids, references)
            unscored = not_scored(kind, references, reasons)
            _leave_out(task, refs, qids, reasons)
            rows += [_row(answers[qids[i]], task, kind, preds[i], ref_texts[i], scored=False, reason=why,
                          **unscored_fields(task, kind, refs[qids[i]], preds[i], answers[qids[i]]))
                     for i, (_, why) in reasons.items()]
            kept = [i for i in range(len(qids)) if i not in reasons]
            qids, preds, ref_texts, references = ([x[i] for i in kept] for x in (qids, preds, ref_texts, references))
        if kind == "text":
            metrics = _naming_the_question(task, answers, qids, lambda: text.text_metrics(
                preds, ref_texts, tokenizer=tokenizer, wordnet=wordnet))
            extra = [{} for _ in qids]
        elif kind == "iupac":
            metrics = _naming_the_question(task, answers, qids, lambda: molecules.iupac_metrics(
                preds, ref_texts, tokenizer=tokenizer, wordnet=wordnet))
            extra = [{"name": molecules.extract_iupac(p), "reference_name": molecules.extract_iupac(r)}
                     for p, r in zip(preds, ref_texts)]
        elif kind == "property":
            # None: no value (`numbers.scored_value` reads none), for an answer cut off mid-number
            spec = numbers.property_spec(task)
            cut = [capped(answers[q]) is True and value_may_be_cut(p, spec) for q, p in zip(qids, preds)]
            metrics = numbers.property_metrics([None if c else p for p, c in zip(preds, cut)], references, task)
            metrics["n_without_reference"] = asked - len(qids)
            metrics["n_cut_values"] = sum(cut)
            extra = [{"value": numbers.parse_value(p, spec),
                      "valid": not c and numbers.scored_value(p, spec, v) is not None, "reference_value": v,
                      "value_may_be_cut": c, "reference_out_of_range": not spec.in_range(v)}
                     for p, v, c in zip(preds, references, cut)]
            outside = [(answers[q]["question_id"], v) for q, v in zip(qids, references) if not spec.in_range(v)]
            if outside:
                results_extra = {"references_out_of_range": [{"question_id": q, "reference_value": v}
                                                             for q, v in outside]}
                print(f"note: {task}: {references_out_of_range_note(results_extra['references_out_of_range'], spec)}",
                      file=sys.stderr)
        elif kind == "binary":
            scores = [classes.stated_label(p, task) for p in preds]
            metrics = classes.binary_metrics(scores, references, task)
            metrics["n_without_reference"] = asked - len(qids)
            extra = [{"value": v, "label": classes.class_of(v), "valid": v is not None, "reference_value": r}
                     for v, r in zip(scores, references)]
        else:
            metrics = molecules.smiles_metrics(preds, ref_texts)
            metrics["n_invalid_references"] = asked - len(qids)
            extra = []
            for p, r in zip(preds, ref_texts):
                ps, rs = molecules.extract_smiles(p), molecules.extract_smiles(r)
                extra.append({"smiles": ps, "reference_smiles": rs, "canonical": molecules.canonical_smiles(ps),
                              "reference_canonical": molecules.canonical_smiles(rs)})
        if kind in ("text", "iupac"):  # answers cut to text.MAX_TOKENS tokens: counted, and flagged in their rows
            cut = set(metrics.pop("truncated"))
            extra = [{**e, "truncated": i in cut} for i, e in enumerate(extra)]
        metrics = {k: v for k, v in metrics.items() if k != "tokenizer"}
        # scored as wrong, and counted apart: an empty reply is most often the pipeline's
        # (generation stopped at once), which a low score alone did not say
        metrics["n_empty"] = sum(blank(p) for p in preds)
        caps = [capped(answers[q]) for q in qids]
        metrics["n_capped"] = sum(c is True for c in caps)
        metrics["n_reasoning_removed"] = sum(parts[q].reasoning_removed for q in qids)
        metrics["n_final_answer_marked"] = sum(chosen[q][1] for q in qids)
        metrics["n_not_asked"] = len(unasked)
        extra = [{**e, "capped": c, "reasoning_removed": parts[q].reasoning_removed,
                  "final_answer_marked": chosen[q][1]} for e, c, q in zip(extra, caps, qids)]
        results[task] = {"kind": kind, "n": len(qids), "metrics": metrics}
        if results_extra:
            results[task].update(results_extra)
        if unscored:  # a row of n 0 and no scores that says why: it stopped the whole report, every task unscored
            results[task]["not_scored"] = unscored
            print(f"warning: task {task!r} is not scored (n=0): {unscored}; the other tasks are scored", file=sys.stderr)
        for q, p, r, e in zip(qids, preds, ref_texts, extra):
            rows.append(_row(answers[q], task, kind, p, r, scored=True, empty=blank(p), **e))
    if all("not_scored" in r for r in results.values()):  # a report of no score is none
        raise ReportError("; ".join(f"task {task!r}: no question is left to score: {r['not_scored']}"
                                    for task, r in results.items()) + "; no task is left to report")
    return results, rows


def _versions() -> Dict[str, Optional[str]]:
    from importlib import metadata

    out = {}
    for name in ("nltk", "rouge-score", "rdkit", "deepmolm-plugin"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


# Answers from which eval.report says its stages on stderr: a run of 16,000 was a minute without
# a line (100,000 about six), which reads as a hang; a small one's output stays the tables alone
SAY_STAGES_FROM = 2000


def build_report(answer_paths: Sequence[os.PathLike], references: Optional[os.PathLike] = None,
                 tokenizer=None, nltk_data=None, say=None) -> Tuple[dict, List[dict]]:
    """The metrics.json document and the per-question rows for answer shards scored against
    a references file (or, without one, the references the answer lines carry). `say`: called
    with a line before the scoring of SAY_STAGES_FROM answers or more."""
    from .metrics import classes, molecules, text

    tok = text.get_tokenizer(tokenizer)
    failed = read_failures(answer_paths)  # questions model_vqa could not ask: listed, not scored
    if references is not None:
        if any(usage.real_path(p) == usage.real_path(references) for p in answer_paths):
            raise ReportError(f"the references file {references} is also listed among the answer files")
        refs = load_references(references, check=check_reference_record)
        answers, counts = merge_answers(answer_paths, list(refs), not_asked=failed)
        check_pairing(answers, refs)
        check_failures_pairing(failed, refs)  # was: a failures entry was trusted whatever the question holds now
    else:
        answers, counts = merge_answers(answer_paths, not_asked=failed)
        refs = references_from_answers(answers)
    if say is not None and len(answers) >= SAY_STAGES_FROM:
        say(f"merged {len(answers)} answers from {len(answer_paths)} file(s); scoring them")
    results, rows = score(answers, refs, tokenizer=tok, nltk_data=nltk_data, not_asked=failed)
    if references is None:  # no reference record says their task: counted overall only
        rows += not_asked_rows(None, None, list(failed), refs, failed)
    report = {
        "schema": SCHEMA,
        "scales": "every score in [0, 1] (BLEU, ROUGE, METEOR, validity, exact match, valid ratio, "
                  "Tanimoto, SMILES BLEU, accuracy, balanced accuracy, F1, AUROC) is reported x100; MCC as it is, "
                  "in [-1, 1]; MAE and RMSE are in the property's unit, the SMILES Levenshtein distance in characters",
        "tokenizer": tok.declaration(),
        "settings": {
            "bleu": f"nltk corpus_bleu, one reference per answer, BLEU-2 weights {list(text.BLEU2_WEIGHTS)}, "
                    f"BLEU-4 weights {list(text.BLEU4_WEIGHTS)}, no smoothing",
            "rouge": "rouge_score RougeScorer F1 (rouge1, rouge2, rougeL), no stemming, on the declared tokens, "
                     "mean over answers",
            "meteor": "nltk meteor_score defaults (alpha 0.9, beta 3, gamma 0.5, WordNet 3.0), mean over answers",
            "smiles": f"RDKit canonical SMILES; MACCS keys, RDKFingerprint, Morgan radius {molecules.MORGAN_RADIUS} "
                      f"{molecules.MORGAN_BITS} bits; Tanimoto means over valid predictions; "
                      "as MolT5, character BLEU-4 and mean Levenshtein distance of the extracted SMILES strings over "
                      "all predictions",
            "property": "the number the property's name labels, else the first value in the answer, "
                        "in the property's unit (metrics.numbers.parse_value), "
                        "invalid outside the property's range; MAE over valid answers",
            "binary": "class 1 for an answer opening with yes / true, 0 for no / false, else the number after the "
                      "label's name (metrics.numbers.parse_value), else an answer that is only a number, as a score "
                      f"in [0, 1], class 1 from {classes.THRESHOLD} (metrics.classes.stated_value); accuracy and "
                      "balanced accuracy over every answer, an invalid one right in neither class; F1 (class 1 "
                      "positive), MCC and AUROC over the valid answers",
        },
        "versions": _versions(),
        "inputs": {"answers": [str(p) for p in answer_paths],
                   "references": None if references is None else str(references),
                   "failures": sorted({failure.file for failure in failed.values()})},
        # metrics.json is the mark of a finished report for callers that resume (experiment_fusion):
        # a report that scored only the questions asked is no finished evaluation, and a rerun
        # may ask the others (was: only counts.not_asked said it, and a rerun took it as done)
        "complete": not failed,
        "model_ids": sorted({str(a.get("model_id")) for a in answers.values() if a.get("model_id") is not None}),
        "counts": {"questions": len(refs) + (len(failed) if references is None else 0), "answers": len(answers),
                   "not_asked": len(failed), "shards": dict(counts),
                   "tasks": {task: r["n"] for task, r in results.items()}},
        "tasks": results,
    }
    binary_mean = classes.mean_over_tasks({t: r["metrics"] for t, r in results.items() if r["kind"] == "binary"})
    if binary_mean is not None:
        report["means"] = {"binary": binary_mean}
    return report, rows
