"""How a question is scored: its kind of task, and (property, binary tasks) its reference value.

Kinds (`task_kind`): `property` when the task name is a known property
(`metrics.numbers.PROPERTY_RANGES`, aliases included) or a key of the record's
`properties`; `smiles` for SMILES_TASKS; `iupac` for IUPAC_TASKS (and names of their forms:
`named_output`); else `text`. A record's
optional `metric` field (one of KINDS) overrides the kind the task name implies: `binary`
(a yes/no label, `metrics.classes`) is only ever chosen so, as deepmolm-prepare's
`--binary-labels` writes it; no task name or value implies it (a count property whose few
questions all hold 0 or 1 is no classifier).

The reference value of a property question is the number parsed from the reference answer
by the same parser as the predictions (`metrics.numbers.parse_value`, so both sides read
"-2.3 × 10^4 eV" alike and convert a stated unit to the property's), else
`properties[<property>]`; when a record has both, they must agree within 5 % (or 0.05),
else the report stops naming the question (another unit or scale on one side). Two
`properties` keys that both name the task's property (`LogP` and `logp`) with different
values are an error too.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Optional, Tuple

from .merge import ReportError
from .names import name_key

if TYPE_CHECKING:  # imported where used: metrics.numbers loads its patterns on import
    from .metrics.numbers import NoValue

KINDS = ("text", "iupac", "property", "binary", "smiles")
# kinds scored against a reference value read from the reference answer or `properties`
VALUED_KINDS = ("property", "binary")
# task names compared by `name_key`: case-folded, letters and digits only
SMILES_TASKS = frozenset({"smiles", "transsmiles", "smilesgeneration", "text2smiles", "text2mol",
                          "moleculegeneration", "molgen", "descriptiontosmiles"})
IUPAC_TASKS = frozenset({"iupac", "iupacnaming", "transiupac", "iupacname", "smiles2iupac"})


def task_kind(task: str, record: dict) -> str:
    from .metrics.numbers import is_property

    metric = record.get("metric")
    if metric is not None:
        if metric not in KINDS:
            raise ReportError(f"question {record.get('question_id')!r}: metric {metric!r} is not one of "
                              f"{', '.join(KINDS)}")
        _check_metric(task, metric, record)
        return metric
    if is_property(task) or _property_value(task, record) is not None:
        return "property"
    return named_output(task) or "text"


# Task names whose answer is a SMILES or an IUPAC name beyond the two sets, by their form
# (compared by `name_key`): "<anything> to / 2 SMILES" ("text-to-SMILES", "description2smiles",
# "iupac2smiles", "caption2mol"), "SMILES generation / prediction (task)"; "<anything> to / 2
# IUPAC (name)", "IUPAC nomenclature". Were text tasks (BLEU on a SMILES), and took any
# `metric`, "binary" too.
_SMILES_NAME = re.compile(r"(?:\w+(?:2|to))?smiles(?:generation|prediction|design)?(?:task)?|"
                          r"\w+(?:2|to)(?:mol|molecule)(?:generation)?(?:task)?")
_IUPAC_NAME = re.compile(r"(?:\w+(?:2|to))?iupac(?:names?|naming|nomenclature)?(?:generation|prediction)?(?:task)?")


def named_output(task: str) -> Optional[str]:
    """"smiles" or "iupac" for a task whose name says its answer is a SMILES or an IUPAC
    name (SMILES_TASKS, IUPAC_TASKS, and the forms `_SMILES_NAME`, `_IUPAC_NAME`), else None."""
    key = name_key(task)
    if key in SMILES_TASKS or _SMILES_NAME.fullmatch(key):
        return "smiles"
    if key in IUPAC_TASKS or _IUPAC_NAME.fullmatch(key):
        return "iupac"
    return None


def _check_metric(task: str, metric: str, record: dict) -> None:
    """Refuse a `metric` the task's name contradicts: a value (property, binary) or the other
    kind of name for a task whose answers are a SMILES or an IUPAC name (`named_output`), a
    SMILES or a name for a known property. Was: taken as given, so a `"metric": "binary"` on a SMILES task read
    no class from any reference, and every question was left out as unreferenced, with a
    warning and no word on the metric."""
    from .metrics.numbers import is_property

    named = named_output(task)
    if named is not None and metric in (*VALUED_KINDS, "smiles", "iupac") and metric != named:
        clash = f"the task {task!r} asks for {'a SMILES' if named == 'smiles' else 'an IUPAC name'}"
    elif metric in ("smiles", "iupac") and is_property(task):
        clash = f"the task {task!r} is a property, answered by a number"
    else:
        return
    raise ReportError(f"question {record.get('question_id')!r}: metric {metric!r} does not fit: {clash}. "
                      f"Drop `metric` (the task name sets it), or rename the task")


# How far the number a reference answer states may be from its `properties` value: rounding
# in the answer text passes; another unit (eV and Hartree, kcal and kJ), another scale (a
# mantissa without its x 10^4), a lost sign or another property's value does not.
AGREE_REL, AGREE_ABS = 0.05, 0.05


def _property_value(task: str, record: dict):
    """`properties[<property>]` of a record for a task (name, alias or `property:<name>`):
    the key spelled as the task, else as the property, else alike but for case and
    punctuation, else an alias of it. Two keys of one kind with different values are an
    error (which one was used depended on their order in the file)."""
    from .metrics.numbers import property_name, property_spec

    props = record.get("properties") or {}
    if not isinstance(props, dict):
        return None
    name = property_name(task)
    wanted = name_key(property_spec(name).name)
    for same in (lambda k: k == task, lambda k: k == name, lambda k: name_key(k) == name_key(name),
                 lambda k: name_key(property_spec(k).name) == wanted):
        keys = [k for k in props if same(k)]
        if len({repr(props[k]) for k in keys}) > 1:
            raise ReportError(f"question {record.get('question_id')!r} ({task}): `properties` keys "
                              f"{', '.join(repr(k) for k in keys)} all name this property, with different values "
                              f"{[props[k] for k in keys]}; keep one")
        if keys:
            return props[keys[0]]
    return None


def reference_value(task: str, record: dict) -> Optional[float]:
    """The reference value: the number the reference answer states, read with the same
    parser as the predictions (so "-2.3 × 10^4 eV" means the same on both sides), else
    `properties[<property>]`, else None. When both exist they must agree (AGREE_REL,
    AGREE_ABS): a ReportError names the question otherwise (the answer's number won
    silently, "-0.25 Hartree" against `properties` -6.8 eV, before units were read). The
    answer's unit is converted to the property's as in the predictions
    (`metrics.numbers.parse_value`); a unit of another kind is an error naming the question."""
    from .metrics.numbers import property_spec, value_in_unit

    stated, problem = value_in_unit(record.get("answer", ""), property_spec(task))
    if problem is not None:
        raise ReportError(f"question {record.get('question_id')!r} ({task}): the reference answer {problem}")
    labelled = _finite(_property_value(task, record))
    if stated is not None and labelled is not None and not math.isclose(stated, labelled, rel_tol=AGREE_REL,
                                                                         abs_tol=AGREE_ABS):
        raise ReportError(f"question {record.get('question_id')!r} ({task}): the reference answer states "
                          f"{stated:g} ({record['answer'][:80]!r}) but `properties` holds {labelled:g}: another "
                          "unit, scale or property on one side? Fix the question file")
    return stated if stated is not None else labelled


def reference_label(task: str, record: dict) -> Optional[float]:
    """The reference class (0.0 or 1.0) of a binary question: what the reference answer
    states, read as the predictions are (`metrics.classes.stated_value`: an opening yes / no,
    the number after the label's name, or a bare number), else `properties[<label>]`, or None
    without either. Anything else is a ReportError naming the question: a value other than 0
    or 1, or an answer and `properties` that disagree."""
    from .metrics.classes import stated_value

    stated = stated_value(str(record.get("answer", "")), task)
    labelled = _finite(_property_value(task, record))
    if stated is not None and labelled is not None and stated != labelled:
        raise ReportError(f"question {record.get('question_id')!r} ({task}): the reference answer "
                          f"{_quoted(record.get('answer', ''))} states {stated:g} but `properties` holds "
                          f"{labelled:g}. Fix the question file")
    label = stated if stated is not None else labelled
    if label is not None and label not in (0.0, 1.0):
        raise ReportError(f"question {record.get('question_id')!r} ({task}): a binary (yes/no) task's reference "
                          f"is 0 or 1 (or yes / no), not {label:g}. Fix the question file, or drop its "
                          "`\"metric\": \"binary\"` to score it as a property")
    return label


def no_value_reason(answer: str, task: Optional[str] = None) -> Tuple[NoValue, str]:
    """(what, why) for a reference answer from which `metrics.numbers` reads no value: `what`
    is the parser's own finding as a code (`numbers.NoValue`: NO_NUMBER, DECIMAL_COMMA, RANGE,
    BOUND, SPACE_GROUP, ...: `numbers.no_value_finding`, from the pass that reads values;
    was: its words, which callers matched by their first words), `why` says it for a
    message, quoting the answer. Was: every such answer was "no number in the reference
    answer", also "The LogP is 1,7." and "between 1.5 and 2.0". Read for the property `task`
    asks, as `reference_value` reads it (was: without it, so an answer whose numbers are all
    another property's, `The LogP is 3.1.` for Log Solubility, was said to hold "a malformed
    number" or the like)."""
    from .metrics.numbers import NoValue, no_value_finding, property_spec

    finding = no_value_finding(answer, property_spec(task) if task is not None else None)
    if finding is None:  # a value read, but in a unit of another kind or out of the float range
        return NoValue.MALFORMED, f"the reference answer states no single value: {_quoted(answer)}"
    if finding.kind is NoValue.NO_NUMBER:
        return finding.kind, "no number in the reference answer"
    if finding.kind is NoValue.OTHER_PROPERTY:
        return finding.kind, (f"the reference answer states no number of {task}, {finding.text}: {_quoted(answer)}")
    hint = " (write decimals with a point)" if finding.kind is NoValue.DECIMAL_COMMA else ""
    return finding.kind, f"the reference answer states {finding.text}, not one value{hint}: {_quoted(answer)}"


def _quoted(answer) -> str:
    """The answer for a message, cut after 77 characters."""
    text = str(answer)
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _finite(value) -> Optional[float]:
    """`value` as a finite float, or None (also for true/false: float(True) is 1.0)."""
    if isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
