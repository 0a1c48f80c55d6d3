"""`python -m deepmolm_plugin.eval.model_vqa`: the host's VQA eval (llava/eval/model_vqa.py)
with DeepMoLM, on GPU or CPU.

    python -m deepmolm_plugin.eval.model_vqa --model-path CKPT --question-file q.jsonl \\
        --image-folder images/ --answers-file answers/chunk0.jsonl --conv-mode auto \\
        --num-chunks 4 --chunk-idx 0 --structure-folder structures/

Question lines are the host's `{question_id, image, text}` plus, as in training records,
one molecule field: `molecule_fp` (inline [[4 ints] per atom]), `structure` (a file under
`--structure-folder`, 3D policy `--conformer-policy`) or `smiles`. A model whose projector
uses molecules (fusion, concat) needs one on every line; for other models the fields only
serve to draw missing images. Lines are resolved by the input resolver that training,
the chat CLI and the GUI use (`deepmolm_plugin.molecule.inputs`): a line without `image`
gets its molecule's depiction, written once to `renders/` next to the answers file under
the resolver's name for it (a digest of what is drawn). A line with its own `image` and a
molecule gets that image as its picture and the molecule's tokens, which are not checked
against each other: one `note:` line says so, naming the first such question.

A question that cannot be asked is reported and left out, and the others are answered:
its molecule or image is bad (found before the model loads), or its prompt is longer than
the model's context (found while generating; one whose text alone is, from its length,
before the host tokenises it: a 50 MB question was tokenised whole first, for minutes).
Each is printed as `error: question ID: reason`, listed in `<answers stem>.failures.jsonl`
as `{question_id, reason}` (an earlier run's file is removed when a run starts), and the run
exits with status 1; the report scores the others and counts these as not asked. A second
run on the same --answers-file is refused in one line while the first holds
`<answers-file>.lock` (exit 2). Problems with the file itself stop the run before the
model loads, naming the line or the id: a question_id that is not a string or integer or
appears twice (as text: `1` and `"1"` are one id to the report), a `text` that is not a
string or holds the image placeholder. So is bad input on the command line: no such
--model-path folder, --question-file, --image-folder or --structure-folder, a question file
with no questions, an --answers-file that is the --question-file (the host would overwrite
it), nonsense chunk or token numbers (one line on stderr, exit status 2 for options, 1 for
the question file's content).

The host's `eval_model(args)` runs unchanged on this chunk's lines (taken with the host's
own `split_list`/`get_chunk`, then handed over as a one-chunk file). Bound around it:

- molecules, the one seam (`QuestionInputs`): the host loop has no per-question hook, but
  it calls `model.generate` exactly once per question line, in file order. The model
  returned by the host's `load_pretrained_model` (a name we bind in the host
  module) gets a `generate` that takes the next question's inputs and passes its
  `molecule_fp` as the explicit argument. Every call is checked against its question
  (the image size the host passes must be that question's image's), and a run that ends
  with questions left over, or calls `generate` once too often, is an error.
- devices: the host hard-codes `.cuda()`/`.half()`; without CUDA,
  `patches.eval_device` maps them to the model's device and dtype for the run. Images
  reach `generate` in the model's dtype in any case (as in `deepmolm_plugin.cli`).
- `--max-new-tokens`: the host hard-codes 1024; when given, ours replaces it. Either is
  lowered by the model to the positions its context leaves after the question's prompt
  (was: a 250-position prompt on a 256-position model got 1024 more, silently); an answer
  that stops there is named in a `note:` line and counts as capped. Each answer
  line's `metadata.capped` says whether generation stopped at that cap (as many new tokens,
  the last no end token, no `answer_stop` separator reached): such an answer may end
  mid-number, which the report scores invalid (was: not recorded; null for a killed run's
  answers kept by --resume, whose lines the host wrote).
- the images and structure files the whole question file names, by their bytes
  (`data_files`), are run settings: chunks run with another --image-folder or
  --structure-folder holding other files under the same names are refused by the report,
  and --resume keeps none of their answers (was: not a setting at all).
- the property head's side file (`<answers stem>.aux_properties.jsonl`) is removed when the
  run starts and written only by a run that made predictions: never an earlier run's.
- `--resume` (`deepmolm_plugin.eval.resume`): every answer line carries digests of the
  run's settings and of its question; a rerun with `--resume` keeps the earlier answers
  (the finished file's, and `<answers>.partial` of a run stopped by Ctrl-C, SIGTERM or a
  failure) whose digests equal its own, and asks only the other questions. `--resume-from
  FILE` (repeatable) adds another answers file to keep answers from, alike (run_eval.sh
  passes every earlier chunk's: a question may be in another chunk now); it is only read.
- `--vision-feature-cache DIR`: the frozen tower's features of each view are kept in DIR
  (`deepmolm_plugin.encoder.feature_cache`) and reused by later questions and runs.
- tiles mode: each question's tiles are passed too (the host makes only the global view),
  from its image by the image processor's `tile_inputs`, as in training;
- greedy decoding (`--temperature 0`) reaches `generate` without the sampling-only flags.
- the property head's prediction is made on exactly what `generate` gets (`SPLICED_INPUTS`:
  the prompt, image, molecule and tiles), the sequence training pooled.
- a PLAIN-style template (`plain`, `v0_plain`; `--conv-mode auto` for a model trained with
  `--version plain`): the host's `conv_templates` name gets, for the run, one whose prompt
  is the image placeholder alone, as the host's `preprocess_plain` trains
  (`plain_prompts_as_trained`); the answers keep the question text.
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: a Ctrl-C while they load is one line too
    from deepmolm_plugin.entry_points import run_module

    run_module("deepmolm_plugin.eval.model_vqa", "python -m deepmolm_plugin.eval.model_vqa")

import argparse
import collections
import contextlib
import copy
import functools
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Tuple

from .. import output_lock, usage
from ..cli import (CONFORMER_POLICIES, add_dtype_option, images_in_dtype, keeping_processed_images,
                   checkpoint_depiction, new_tokens_within_context, projector_uses_molecules,
                   refusing_long_texts, tile_arguments, unrounded, without_sampling_flags)
from ..data.prompts import question_problem
from ..model.stopping import end_ids, stopped_at_cap
from ..molecule.inputs import InputError
from . import resume
from .jsonl import aux_path, failures_path, json_kind, numbered_jsonl

if TYPE_CHECKING:  # torch loads after the arguments are checked (bad input fails in a second)
    import torch


class EvalInputError(ValueError):
    """Bad eval input (question file, options): reported without a traceback."""


class QuestionError(EvalInputError):
    def __init__(self, question_id, reason: str):
        super().__init__(f"question {question_id!r}: {reason}")
        self.question_id, self.reason = question_id, reason


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deepmolm_plugin.eval.model_vqa",
                                     description="The host's model_vqa eval with molecules, on GPU or CPU.")
    # The host's own options (llava/eval/model_vqa.py, llava-torch 1.2.2), same names and
    # defaults, except: --model-path is required and --conv-mode defaults to auto.
    parser.add_argument("--model-path", type=usage.user_path, required=True)
    parser.add_argument("--model-base", type=usage.user_path, default=None)
    parser.add_argument("--image-folder", type=usage.user_path, default="")
    parser.add_argument("--question-file", type=usage.user_path, default="tables/question.jsonl")
    parser.add_argument("--answers-file", type=usage.user_path, default="answer.jsonl")
    parser.add_argument("--conv-mode", type=str, default="auto",
                        help="conversation template; auto: from the model's config")
    parser.add_argument("--num-chunks", type=int, default=1)
    parser.add_argument("--chunk-idx", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=0.2, help="0: greedy")
    parser.add_argument("--top_p", type=float, default=None)
    parser.add_argument("--num_beams", type=int, default=1)
    # Ours.
    parser.add_argument("--structure-folder", type=usage.user_path, default=None,
                        help="folder that `structure` fields are relative to")
    parser.add_argument("--conformer-policy", default=None, choices=CONFORMER_POLICIES,
                        help="3D policy for `structure` and `smiles` fields; default: the one the model was "
                             "trained with (its config), else auto")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="cap on generated tokens (the host's script always uses 1024)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the answers an earlier run into this --answers-file made with the same settings "
                             "for unchanged questions (also those of a stopped run), and ask only the others")
    parser.add_argument("--resume-from", action="append", default=[], metavar="FILE", type=usage.user_path,
                        help="with --resume, also keep the answers in this earlier answers file (and its .partial "
                             "and killed runs' files), e.g. another chunk's; only read; repeatable")
    parser.add_argument("--vision-feature-cache", type=usage.user_path, default=None,
                        help="folder where the (frozen) deepencoder keeps each view's features: a view asked "
                             "about again, in this run or a later one, is not encoded again")
    add_dtype_option(parser)
    return parser


def read_questions(path: str) -> List[dict]:
    """The question file's JSON lines (blank lines skipped); a bad line names its number,
    a bad field its question_id. Ids are unique: answers are matched to references by id."""
    numbered = numbered_jsonl(path, required=("question_id", "text"), error=EvalInputError)
    seen = {}  # question_id as text -> (its first line number, its id as written there)
    for number, line in numbered:
        qid = line["question_id"]  # a string or an integer (numbered_jsonl checks it)
        if str(qid) in seen:  # as text: the report matches answers to references by str(question_id)
            raise EvalInputError(duplicate_id_message(path, seen[str(qid)], (number, qid)))
        seen[str(qid)] = (number, qid)
        text = line["text"]
        if not isinstance(text, str):
            raise QuestionError(qid, f"`text` is a JSON {json_kind(text)}, not a string")
        problem = question_problem(text)  # the host prepends the placeholder itself
        if problem:
            raise QuestionError(qid, f"`text` {problem}")
    return [line for _, line in numbered]


def duplicate_id_message(path: str, first: tuple, second: tuple) -> str:
    """The refusal of a question_id given twice, `first` and `second` its (line number, id as
    written): both lines, and both spellings where they differ (1 and "1" are one id as text).
    Was: "question_id '1' appears twice", no line named, the integer shown as a string."""
    (line_a, id_a), (line_b, id_b) = first, second
    where = f"{path}, lines {line_a} and {line_b}"
    said = "; its answers could not be told apart"
    a, b = (json.dumps(qid, ensure_ascii=False) for qid in (id_a, id_b))  # as the file spells them
    if a != b:
        return f"{where}: question_id {a} and {b} are one id as text (question_id {str(id_b)!r} appears twice{said})"
    return f"{where}: question_id {a} appears twice{said}"


def check_image(qid, path: str, config, folder: Optional[str] = None) -> None:
    """A line's own image exists and decodes as the image processor reads it; the host
    would otherwise stop mid-run (model loaded, answers half written) with a PIL traceback.
    The host's own `convert("RGB")` must see the same picture (`check_host_conversion`:
    transparent or 16-bit files it reads as black or white), and the model's processor must
    be able to view it (`check_model_views`: a 1 x 3000 px image in tiles mode). `folder`:
    the --image-folder a relative `image` was joined with, named when the file is missing
    (eval.questions writes the data's own relative paths: without --image-folder, every
    question of a prepared folder failed "no such file", naming no folder)."""
    from ..encoder.image_processor import check_host_readable
    from ..encoder.tower import check_model_views

    if os.path.isdir(path):
        raise QuestionError(qid, f"image {path}: is a folder")
    if not os.path.isfile(path):
        where = ("" if folder is None else f" (a relative path, joined with --image-folder {folder})" if folder
                 else " (a relative path, read from the current folder: no --image-folder was given; give the folder "
                      "the question file's images are under, e.g. the prepared data's)")
        raise QuestionError(qid, f"image {path}: no such file{where}")
    try:
        check_host_readable(path)
        check_model_views(path, config)
    except (ValueError, OSError) as e:
        raise QuestionError(qid, f"image {path}: {e}") from e


@dataclass
class QuestionInput:
    """What one question's `generate` call gets besides the host's prompt and image."""

    question_id: object
    image: str  # the path the host opens (image folder + the line's image)
    molecule_fp: Optional["torch.Tensor"] = None  # (atoms, levels)
    graph: object = None  # the KFLM2 head's molecular graph


def prepare_questions(questions: List[dict], image_folder: str, render_folder: Path, config,
                      structure_folder: Optional[str] = None, policy: Optional[str] = None,
                      failures: Optional[List[dict]] = None, question_folder: Optional[str] = None,
                      ) -> Tuple[List[dict], List[QuestionInput]]:
    """Lines for the host (every one with an `image`, drawn by the input resolver where
    missing) and, in the same order, each question's inputs for `generate`. A bad line
    raises its QuestionError, or, given a `failures` list, is left out and recorded there
    as `{question_id, reason}` (printed on stderr as it happens). A relative `molecule_fp`
    sidecar is read from `question_folder` (the question file's), as training reads a
    record file's."""
    from ..data.graphs import graph_features_note, graph_resolver
    from ..molecule.inputs import InputResolver, model_depiction
    from ..molecule_fp import FingerprintSettings

    # the chat's and the GUI's rule (its notes were said by `main`, before the model loaded)
    depiction = model_depiction(config, policy)
    options = dict(kind="question", option_names={"structure_folder": "--structure-folder"},
                   limits=depiction.limits)
    resolver = InputResolver(FingerprintSettings.from_config(config), structure_folder=structure_folder,
                             record_folder=question_folder, policy=depiction.policy, render_folder=str(render_folder),
                             render_size=depiction.render_size, **options)
    check_depiction_sizes(questions, depiction.render_size)
    graphs = graph_resolver(structure_folder, **options) if getattr(config, "aux_property_task", None) else None
    note = graph_features_note(config) if graphs is not None else None
    if note:
        print(f"note: {note}", file=sys.stderr)
    uses_molecules = projector_uses_molecules(config)
    prepared, inputs = [], []
    image_notes = []  # (question_id, note): questions whose own image is the picture beside their molecule's tokens
    for line in questions:
        try:
            asked, question = _prepare_question(line, image_folder, config, resolver, graphs, uses_molecules)
        except QuestionError as e:
            if failures is None:
                raise
            record_failure(failures, e)
            continue
        prepared.append(asked)
        inputs.append(question)
        note = resolver.given_image_note(line, str(question.question_id)) if uses_molecules else None
        if note:
            image_notes.append((question.question_id, note))
    print_image_notes(image_notes)
    without = [str(q.question_id) for q in inputs if graphs is not None and q.graph is None]
    if without:  # the head is auxiliary: such questions were refused, though the model answers them
        print(f"note: {len(without)} question(s) have no `smiles` or `structure` for the property head's graph "
              f"(e.g. {without[0]!r}): answered without its prediction", file=sys.stderr)
    return prepared, inputs


def check_depiction_sizes(questions: List[dict], render_size: int) -> None:
    """Questions whose picture is a depiction drawn at another side (`depiction_size`, which
    eval.questions stamps from the prepared split) than the model's (its config's
    render_size) refuse the run, naming the first and both sizes: the processor's resize
    makes a 1024 px drawing's lines a tenth as dark as the 256 px ones the model learnt
    from (was: asked and scored without a word)."""
    other = [q for q in questions if q.get("depiction_size") not in (None, render_size)]
    if other:
        first, more = other[0], f" (and {len(other) - 1} more)" if len(other) > 1 else ""
        raise QuestionError(first["question_id"], f"its picture is a depiction drawn at {first['depiction_size']} px"
                                                  f"{more}, but the model was trained on depictions drawn at "
                                                  f"{render_size} px (its config's render_size): prepare the split "
                                                  f"again with deepmolm-prepare --image-size {render_size}, then "
                                                  "eval.questions")


def print_image_notes(notes: List[tuple]) -> None:
    """One note for the questions whose picture is their own `image` while their tokens come
    from their molecule (`InputResolver.given_image_note`), naming the first: a file of
    thousands of such lines (eval.questions copies both) gets one line, not thousands."""
    if not notes:
        return
    qid, note = notes[0]
    many = f"{len(notes)} questions give their own `image` beside their molecule; e.g. " if len(notes) > 1 else ""
    print(f"note: {many}question {qid!r}: {note}", file=sys.stderr)


def record_failure(failures: List[dict], error: "QuestionError") -> None:
    """One failed question: on stderr now, in the failures file at the end."""
    print(f"error: {error}", file=sys.stderr)
    failures.append({"question_id": error.question_id, "reason": error.reason})


def _prepare_question(line: dict, image_folder: str, config, resolver, graphs, uses_molecules: bool,
                      ) -> Tuple[dict, QuestionInput]:
    """One question line -> (its line for the host, its inputs for `generate`)."""
    from ..data.graphs import record_graph
    from ..molecule.inputs import has_molecule

    qid = line["question_id"]
    if uses_molecules and not has_molecule(line):
        raise QuestionError(qid, f"has no molecule (molecule_fp, structure or smiles), but the model's "
                                 f"{config.mm_projector_type!r} projector needs one")
    try:
        graph = record_graph(line, str(qid), graphs) if graphs is not None else None  # None: no prediction
        resolved = resolver.resolve(line, str(qid), fingerprint=uses_molecules, depiction=True)
    except InputError as e:
        raise QuestionError(qid, e.reason) from e
    if not isinstance(resolved.image, str):
        raise QuestionError(qid, f"`image` is a JSON {json_kind(resolved.image)}, not a file name")
    if line.get("image") is not None:  # the line's own image (drawn ones are ours, written whole)
        check_image(qid, image_path(image_folder, resolved.image), config,
                    None if os.path.isabs(resolved.image) else image_folder)
    line = dict(line, image=resolved.image)
    return line, QuestionInput(qid, image_path(image_folder, line["image"]), resolved.molecule_fp, graph)


def image_path(image_folder: str, image: str) -> str:
    """The path the host opens for a line (`os.path.join(image_folder, image)`), normalised."""
    return os.path.abspath(os.path.join(image_folder, image))


# What `generate` splices the prompt with (the model's prepare_inputs_labels_for_multimodal),
# all of which `predict_properties` takes too: the head must pool the sequence the answer is
# generated from, as training pooled it (in tiles mode the head got the global view alone, while
# the tiles `tile_arguments` adds went to generate only).
SPLICED_INPUTS = ("images", "image_sizes", "molecule_fp", "tile_images", "tile_grids", "attention_mask")


class QuestionInputs:
    """The seam with the host's loop: it calls `generate` once per question, in the
    question file's order. The bound `generate` takes the next question's inputs and
    passes its `molecule_fp` as the explicit argument; each call is checked against that
    question (the image size the host reports must be its image's), and `finish` checks
    that every question got its call."""

    def __init__(self, inputs: List[QuestionInput], uses_molecules: bool, max_new_tokens: Optional[int] = None,
                 feature_cache: Optional[str] = None, failures: Optional[List[dict]] = None,
                 stop: Optional[str] = None):
        self.feature_cache = feature_cache
        # text that ends an answer where the model was never taught an end token (`answer_stop`)
        self.stop, self.tokenizer = stop, None
        # None: a question that cannot be generated for raises; a list: it is recorded
        # there, `generate` returns no tokens, and `unanswered` names it
        self.failures, self.unanswered = failures, set()
        # the PromptTooLong of the next question's prompt, refused before it was tokenised (`refusing_long_texts`)
        self.refused: list = []
        self.processed: dict = {}  # the host's last process_images output (see `installed`)
        self.queue = collections.deque(inputs)
        self.uses_molecules, self.max_new_tokens = uses_molecules, max_new_tokens
        self.model = self.image_processor = None
        self.aux_predictions: List[dict] = []  # {question_id, aux_properties}, written next to the answers
        # {question_id as text: whether generation stopped at max_new_tokens} (`stopped_at_cap`),
        # written into each answer's metadata (`with_cap_status`)
        self.capped: dict = {}

    def next_question(self, image_sizes) -> QuestionInput:
        from PIL import Image

        if not self.queue:
            raise RuntimeError("the host called generate more often than there are questions")
        question = self.queue.popleft()
        with Image.open(question.image) as image:
            size = image.size
        if image_sizes is not None and [tuple(s) for s in image_sizes] != [size]:
            raise RuntimeError(f"generate for question {question.question_id!r} got image size {image_sizes}, but "
                               f"its image {question.image} is {size}: the host's loop is out of step")
        return question

    def bind(self, generate):
        from ..model.llava_qwen2 import PromptTooLong, takes_context_end

        @functools.wraps(generate)
        def wrapper(inputs=None, *args, **kwargs):
            question = self.next_question(kwargs.get("image_sizes"))
            without_sampling_flags(kwargs)
            context_end = []  # the new tokens the context left, when the answer stopped there
            if takes_context_end(generate):
                kwargs["on_context_end"] = lambda new_tokens, context: context_end.append((new_tokens, context))
            kwargs.update(tile_arguments(self.image_processor, question.image, self.model))
            if self.max_new_tokens is not None:
                kwargs["max_new_tokens"] = self.max_new_tokens
            if "images" in kwargs and self.model is not None:
                # The host sends its float16 copy: the processor's own tensor, in the model's dtype.
                kwargs["images"] = images_in_dtype(unrounded(kwargs["images"], self.processed.get("images")), self.model.dtype)
            if self.uses_molecules:
                kwargs["molecule_fp"] = question.molecule_fp.unsqueeze(0)  # (1, atoms, levels): the host's batch of 1
            if self.stop is not None:  # transformers' StopStringCriteria: generation ends there
                kwargs.update(stop_strings=[self.stop], tokenizer=self.tokenizer)
            try:
                if self.refused:  # its text alone was past the context: `inputs` holds no token of it
                    raise self.refused.pop()
                if question.graph is not None:  # the KFLM2 head's prediction for the same prompt and inputs
                    spliced = {name: kwargs[name] for name in SPLICED_INPUTS if name in kwargs}
                    predicted = self.model.predict_properties(inputs, graphs=[question.graph], **spliced)
                    self.aux_predictions.append({"question_id": question.question_id, "aux_properties": predicted[0]})
                output_ids = generate(inputs, *args, **kwargs)
                answer_ids = self.cut_at_stop(output_ids)
                # the model lowers the cap to the room its context leaves (was: 1024 after a 250-position prompt
                # on a 256-position model, stored as a whole answer, metadata.capped false)
                cap = context_end[0][0] if context_end else kwargs.get("max_new_tokens")
                capped = self.stopped_at_cap(output_ids, answer_ids, cap)
                self.capped[str(question.question_id)] = capped
                if context_end and capped:
                    new_tokens, context = context_end[0]
                    print(f"note: question {question.question_id!r}: the answer stopped at the end of the model's "
                          f"context of {context} positions ({context - new_tokens} for the prompt, {new_tokens} for "
                          "the answer): it may be cut short (metadata.capped is true)", file=sys.stderr)
                return answer_ids
            except PromptTooLong as e:
                error = QuestionError(question.question_id, str(e))
                if self.failures is None:
                    raise error from e
                record_failure(self.failures, error)
                self.unanswered.add(str(question.question_id))
                import torch

                return torch.empty((1, 0), dtype=torch.long)  # decoded as "": its line is dropped afterwards

        return wrapper

    def cut_at_stop(self, output_ids):
        """The new tokens (1, N) up to and including the first one whose text holds `stop`:
        generation may end past it (a stop string across tokens), and what follows is no part
        of the answer. Unchanged without a `stop`."""
        if self.stop is None:
            return output_ids
        for i, token in enumerate(output_ids[0].tolist()):
            if self.stop in self.tokenizer.decode([token]):
                return output_ids[:, : i + 1]
        return output_ids

    def stopped_at_cap(self, output_ids, answer_ids, max_new_tokens: Optional[int]) -> Optional[bool]:
        """Whether generation stopped at the `max_new_tokens` cap rather than at an end, by the
        rule the GUI's note uses too (`model.stopping.stopped_at_cap`), with this run's `stop` text
        (`answer_ids`: the new tokens `cut_at_stop` kept) and the model's and tokenizer's end
        ids. Such an answer may end mid-number, which the report was not told (was: not
        recorded). None where the cap is not known."""
        return stopped_at_cap(output_ids, answer_ids, max_new_tokens, self.stop, self.tokenizer,
                              end_ids(self.model, self.tokenizer))

    def with_cap_status(self, lines: List[dict]) -> List[dict]:
        """This run's answer lines with `metadata.capped` (`stopped_at_cap`) for the report."""
        return [dict(line, metadata={**(line.get("metadata") if isinstance(line.get("metadata"), dict) else {}),
                                     resume.CAPPED: self.capped.get(str(line["question_id"]))})
                for line in lines]

    def answered_aux(self) -> List[dict]:
        """The property head's predictions for the questions that were answered (one made
        before its question failed while generating had no answer beside it)."""
        return [p for p in self.aux_predictions if str(p["question_id"]) not in self.unanswered]

    def finish(self) -> None:
        if self.queue:
            raise RuntimeError(f"the host finished with {len(self.queue)} questions never generated for "
                               f"(first: {self.queue[0].question_id!r})")

    @contextlib.contextmanager
    def installed(self, host_module):
        """Bind `host_module`'s `load_pretrained_model` name for the run: the model it
        returns has the bound `generate`; and its `tokenizer_image_token`, which refuses a
        prompt whose text alone is past the model's context before tokenising it
        (`refusing_long_texts`)."""
        from llava.model import builder

        def load(*args, **kwargs):
            # builder's name, looked up now: model_dispatch routes DeepMoLM checkpoints to our loader.
            tokenizer, model, image_processor, context_len = builder.load_pretrained_model(*args, **kwargs)
            model.generate = self.bind(model.generate)
            self.model, self.image_processor, self.tokenizer = model, image_processor, tokenizer
            if self.feature_cache:
                tower = model.get_vision_tower()
                if not hasattr(tower, "enable_feature_cache"):
                    raise EvalInputError(f"--vision-feature-cache needs a deepencoder model, not {type(tower).__name__}")
                tower.requires_grad_(False)  # evaluation trains nothing: the tower's features are fixed
                tower.enable_feature_cache(self.feature_cache)
            return tokenizer, model, image_processor, context_len

        saved = host_module.load_pretrained_model
        host_module.load_pretrained_model = load
        try:
            with keeping_processed_images(host_module, self.processed), \
                    refusing_long_texts(host_module, lambda: self.model, self.refused):
                yield self  # (keeping_processed_images: the pixels before .half())
        finally:
            host_module.load_pretrained_model = saved


# In the run settings (`metadata.settings.prompt`) of answers asked in a PLAIN-style template:
# those an earlier run asked with the question text in the prompt (before
# `plain_prompts_as_trained`), or let run on past the separator (before `answer_stop`), have
# another value or none, so --resume keeps none of them and the report does not score them
# with these.
PLAIN_PROMPT = "the image alone, as preprocess_plain trains; the answer ends at the template's separator"


@contextlib.contextmanager
def plain_prompts_as_trained(host_module, conv_mode: str):
    """While active, `host_module`'s template `conv_mode`, when it is of the host's PLAIN
    style (`plain`, `v0_plain`: the stage-1 template), renders the prompt the host's
    training fed the model: the image placeholder alone. Its own `get_prompt` gave
    `<image>\n<question>\n`, tokens a plain-trained model never saw before an answer, and
    the property head pooled them. The host's loop is otherwise unchanged (its answer lines
    keep the question text as `prompt`). A one-time note says so. Restored on exit."""
    import dataclasses

    from llava.constants import DEFAULT_IMAGE_TOKEN
    from llava.conversation import Conversation

    from ..patches.conversation_qwen2 import plain_style

    if not plain_style(conv_mode):
        yield
        return

    class TrainedPlainConversation(Conversation):
        def get_prompt(self):
            # The host's eval appends one question (its image placeholder first) and the open reply.
            messages = self.messages
            if len(messages) != 2 or DEFAULT_IMAGE_TOKEN not in messages[0][1] or messages[1][1] is not None:
                raise RuntimeError(f"the host's eval built a {conv_mode!r} conversation other than one question with "
                                   "its image and the open reply: its prompt cannot be training's")
            # llava/train/train.py preprocess_plain (llava-torch 1.2.2) sets the first turn to
            # DEFAULT_IMAGE_TOKEN alone, dropping the question text and the mm_use_im_start_end
            # tokens preprocess_multimodal put around it, and trains on that + answer + sep: the
            # answer follows the image token directly.
            return DEFAULT_IMAGE_TOKEN

        def copy(self):
            fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(Conversation)}
            return TrainedPlainConversation(**dict(fields, messages=[[x, y] for x, y in self.messages]))

    print(f"note: conversation mode {conv_mode!r} (the stage-1 template) asks each question with the image alone, "
          "as training's preprocess_plain built its prompts: the question text is not part of the prompt (the "
          "answers file keeps it)", file=sys.stderr)
    templates = host_module.conv_templates
    template = templates[conv_mode]
    host_module.conv_templates = {**templates, conv_mode: TrainedPlainConversation(
        **{f.name: getattr(template, f.name) for f in dataclasses.fields(Conversation)})}
    try:
        yield
    finally:
        host_module.conv_templates = templates


def answer_stop(host_module, conv_mode: str) -> Optional[str]:
    """Where an answer ends for a model of a PLAIN-style template: its separator. The host's
    preprocess_plain trains `<image>` + answer + sep and supervises no end token after it, so
    such a model never learns to stop: it wrote its answer, the "\n" that ended every
    training answer, then untrained text up to the token limit (1024), all of it stored and
    scored as the answer. None for other templates, whose replies end with a trained token
    the loader makes an end of sequence (`<|im_end|>`)."""
    from ..patches.conversation_qwen2 import plain_style

    return host_module.conv_templates[conv_mode].sep if plain_style(conv_mode) else None


def run(args: argparse.Namespace) -> None:
    import deepmolm_plugin

    deepmolm_plugin.register()
    import llava.eval.model_vqa as host
    from llava.mm_utils import get_model_name_from_path

    from ..patches.conversation_qwen2 import conv_mode_note, resolve_conv_mode

    from ..model.loading import (QWEN2_TYPES, QWEN2_VL_TYPES, launcher_dtype, loaded_config,
                                 read_config, unsupported_load_options)

    model_path = os.path.expanduser(args.model_path)
    config = read_config(model_path)  # a CheckpointError naming its config.json (was AutoConfig's traceback)
    # Option errors found in the model's config are UsageErrors: `main` says them as every other option
    # error, exit status 2 with the program's name (was: exit 1, "error: ..." alone).
    usage.vision_model(config, args.model_path, "--model-path")
    unsupported = unsupported_load_options(args.model_base)
    loaded = loaded_config(model_path)  # llm/'s in a VILA-style folder: what the loader reads
    if unsupported and loaded.model_type in QWEN2_TYPES + QWEN2_VL_TYPES:
        raise usage.UsageError(f"--model-base: {unsupported}")
    try:  # an option error (exit 2, naming the option), as in the chat (was: exit 1, "error: conversation mode ...")
        args.conv_mode = resolve_conv_mode(args.conv_mode, config, get_model_name_from_path(model_path))
    except ValueError as e:
        raise usage.UsageError(f"--conv-mode: {e}") from e
    note = conv_mode_note(args.conv_mode, config)  # an explicit mode other than the trained one
    if note:
        print(note, file=sys.stderr, flush=True)
    # before the run settings are read: --resume compares the cap the answers were made with
    args.max_new_tokens = new_tokens_within_context(args.max_new_tokens, config)
    # "auto" resolved (and said once) here: the dtype is a run setting, which --resume compares
    args.dtype = launcher_dtype(args.dtype, loaded.model_type, config=loaded)
    run_host_eval(host, args, config)


def run_host_eval(host, args: argparse.Namespace, config) -> None:
    """Prepare this chunk's questions for a model with `config`, then run `host.eval_model`
    on them with molecules and devices bound (see the module docstring)."""
    from ..encoder.feature_cache import opened_caches, print_summary
    from ..model.loading import loading_in_dtype, torch_init_kept
    from ..patches import eval_device
    from ..patches.conversation_qwen2 import plain_style

    questions = read_questions(args.question_file)
    chunks = host.split_list(questions, args.num_chunks)
    chunk = chunks[args.chunk_idx] if args.chunk_idx < len(chunks) else []  # the host's get_chunk
    answers = usage.real_path(args.answers_file)
    # The answers file is rewritten from here on: an earlier run's property-head
    # predictions or failures would otherwise stay beside this run's answers.
    aux_file = aux_path(answers)
    failures_file = failures_path(answers)
    aux_partial = resume.partial_path(aux_file)
    # This chunk's questions may have been another chunk's (run_eval.sh with another chunk
    # count or record order): only its own file was read, and those answers were asked again.
    earlier = [answers, *(usage.real_path(f) for f in args.resume_from)]
    earlier_aux = resume.earlier_lines([aux_path(f) for f in earlier]) if args.resume else []
    if not args.resume:  # (with --resume the earlier file stays until this run's replaces it)
        aux_file.unlink(missing_ok=True)
        aux_partial.unlink(missing_ok=True)
    failures_file.unlink(missing_ok=True)
    failures: List[dict] = []
    # a policy None (not given, and not resolved by `main`): the model's own, as main would choose it
    prepared, inputs = prepare_questions(chunk, args.image_folder, answers.parent / "renders", config,
                                         args.structure_folder, args.conformer_policy, failures=failures,
                                         question_folder=os.path.dirname(os.path.abspath(args.question_file)))
    shown = resume.run_settings(args)
    if args.dtype is not None:  # the dtype the model ran in: answers made in bf16 are not fp32 ones (None: the
        # host's own loader picks it; left out, so its earlier answers keep their digest: review)
        shown["dtype"] = args.dtype
    if plain_style(args.conv_mode):
        shown["prompt"] = PLAIN_PROMPT
    # The --resume digest leaves the data files out: each question's digest holds its own
    # files' bytes, so one changed picture re-asks its question alone (with them in, it re-asked
    # every question). The report compares them across chunks (`shown`), and kept answers are
    # tagged with this run's (`merged`): what they were asked is what this run would ask.
    settings = resume.settings_digest(shown, answers)
    shown = {**shown, **data_files(questions, args)}
    # Digested as asked: a drawn depiction's path (in this answers folder's renders/) is not part
    # of the question, its bytes are (an answers file made in another folder kept none of them)
    asked_lines = {str(line["question_id"]): line for line in chunk}
    digests = {str(q.question_id): resume.question_digest(asked_lines[str(q.question_id)],
                                                          [q.image, *_structure_file(line, args)], q.molecule_fp)
               for line, q in zip(prepared, inputs)}
    order = list(digests)
    asked = {str(line["question_id"]): resume.asked_digests(line) for line in chunk}
    killed = resume.killed_partials(answers)
    from_killed = resume.killed_lines(killed, shown, asked)
    # Removed once this run's answers are written: with --resume the killed runs' files it
    # adopted; without, only those holding no answer (a run killed while its model loaded).
    # (A run without --resume removed them all, answers it did not keep included.)
    done_with = killed if args.resume else [path for path in killed if not path.exists()]
    kept = {}
    if args.resume:  # (the --resume-from files' killed partials are read, never removed: not this run's)
        others = [path for f in earlier[1:] for path in resume.killed_partials(f)]
        lines = resume.earlier_lines(earlier)  # read once: kept, and why the others were not
        kept = resume.kept_answers(lines, settings, digests, from_killed + resume.killed_lines(others, shown, asked))
        print(f"--resume: {len(kept)} of {len(order)} questions keep the answers an earlier run made with these "
              f"settings; asking the other {len(order) - len(kept)}", file=sys.stderr)
        changed = resume.changed_settings(lines, shown, settings, set(order) - set(kept))
        if changed:  # why earlier answers of this chunk's questions were not kept
            print(f"note: --resume: earlier answers were made with other settings: {'; '.join(changed[:8])}"
                  f"{f' (and {len(changed) - 8} more)' if len(changed) > 8 else ''}", file=sys.stderr)
        prepared, inputs = _not_kept(prepared, inputs, kept)
    elif from_killed:
        print(f"note: {', '.join(sorted({str(p) for p in killed if p.exists()}))} holds {len(from_killed)} answers "
              "of a run that was killed; --resume would keep those made with these settings; this run asks every "
              "question and leaves them there", file=sys.stderr)

    state = None  # the generate seam, made below when there are questions to ask

    def merged(new_lines: List[dict]) -> List[dict]:
        """The kept answers and this run's (tagged for a later --resume, and with what each
        was asked about for the report), in question order."""
        new_lines = state.with_cap_status(new_lines) if state is not None else new_lines
        by_id = {str(line["question_id"]): line
                 for line in resume.tagged([*kept.values(), *new_lines], settings, digests, shown, asked)}
        return [by_id[qid] for qid in order if qid in by_id]

    if not prepared:  # more chunks than questions (the host's get_chunk would raise IndexError), all failed or kept
        if not failures and not kept:
            print(f"chunk {args.chunk_idx} of {args.num_chunks} has no questions: empty answers file",
                  file=sys.stderr)
        answers.parent.mkdir(parents=True, exist_ok=True)
        resume.write_lines(answers, merged([]))
        resume.partial_path(answers).unlink(missing_ok=True)
        for path in done_with:
            resume.remove_host_partial(path)
        _write_aux(aux_file, _aux_lines(earlier_aux, [], kept, settings, digests))
        report_failures(failures, failures_file, len(chunk), answers, asked_lines)
        return
    uses_molecules = projector_uses_molecules(config)
    if not uses_molecules and any(q.get(f) is not None for q in chunk for f in ("molecule_fp", "structure", "smiles")):
        print(f"note: {args.model_path}'s projector does not use molecules; molecule fields only provide "
              "missing depictions", file=sys.stderr)
    state = QuestionInputs(inputs, uses_molecules, args.max_new_tokens, args.vision_feature_cache, failures,
                           stop=answer_stop(host, args.conv_mode))
    with tempfile.TemporaryDirectory(prefix="deepmolm_vqa_") as folder:
        host_args = copy.copy(args)
        host_args.question_file = os.path.join(folder, "questions.jsonl")
        # absolute: the host makes os.path.dirname(answers_file), "" for a bare file name
        # (its own default, answer.jsonl), and failed after the model had loaded. The host
        # writes a partial file beside the answers, put into place when every question is
        # answered: a question that fails while generating (a prompt past the context) had
        # truncated an earlier complete answers file to the lines before it.
        partial = resume.host_partial(answers, os.getpid())
        host_args.answers_file = str(partial)
        host_args.num_chunks, host_args.chunk_idx = 1, 0
        with open(host_args.question_file, "w") as handle:
            handle.writelines(json.dumps(line) + "\n" for line in prepared)
        answers.parent.mkdir(parents=True, exist_ok=True)
        resume.start_host_partial(partial, settings, {str(q.question_id): digests[str(q.question_id)]
                                                      for q in inputs if q.graph is None})
        try:
            with state.installed(host), eval_device.cuda_calls_follow_model(lambda: state.model), \
                    plain_prompts_as_trained(host, args.conv_mode), loading_in_dtype(args.dtype), \
                    torch_init_kept(), opened_caches() as caches:
                host.eval_model(host_args)
            state.finish()
            drop_answers(partial, state.unanswered)
            resume.write_lines(answers, merged(resume.answer_lines(partial)))
            resume.partial_path(answers).unlink(missing_ok=True)  # its answers are in the file now
            for path in done_with:
                resume.remove_host_partial(path)
        except BaseException:
            drop_answers(partial, state.unanswered)
            so_far = merged(resume.answer_lines(partial))
            if so_far:  # kept apart, for --resume, with their property predictions
                resume.write_lines(resume.partial_path(answers), so_far)
                answered = {str(line["question_id"]) for line in so_far}
                aux = [line for line in _aux_lines(earlier_aux, state.answered_aux(), kept, settings, digests)
                       if str(line["question_id"]) in answered]
                if aux:
                    resume.write_lines(aux_partial, aux)
                for path in done_with:  # what they held is in the .partial now
                    resume.remove_host_partial(path)
                print(f"the answers made so far are in {resume.partial_path(answers)} (--resume keeps them); "
                      f"{answers} is unchanged", file=sys.stderr)
            write_failures(failures_file, failures, asked_lines)
            raise
        finally:
            resume.remove_host_partial(partial)
    _write_aux(aux_file, _aux_lines(earlier_aux, state.answered_aux(), kept, settings, digests))
    aux_partial.unlink(missing_ok=True)
    report_failures(failures, failures_file, len(chunk), answers, asked_lines)
    print_summary(caches)  # one line per cache folder: hits, misses, damaged, unreadable, unstored


def data_files(questions: List[dict], args) -> dict:
    """{"image_files", "structure_files"}: `resume.data_files_digest` of the images and
    structure files that the question file's lines name, as this run's folders hold them."""
    images = [(line["image"], image_path(args.image_folder, line["image"])) for line in questions
              if isinstance(line.get("image"), str)]
    structures = [(line["structure"], path) for line in questions for path in _structure_file(line, args)]
    return {"image_files": resume.data_files_digest(images), "structure_files": resume.data_files_digest(structures)}


def _structure_file(line: dict, args) -> List[str]:
    """The structure file a question names (its bytes are part of the question), if any."""
    structure = line.get("structure")
    if not isinstance(structure, str):
        return []
    return [structure if os.path.isabs(structure) else os.path.join(args.structure_folder or "", structure)]


def _not_kept(prepared: List[dict], inputs: List["QuestionInput"], kept: dict) -> tuple:
    """The questions (lines, inputs) still to ask: those without a kept answer."""
    ask = [i for i, q in enumerate(inputs) if str(q.question_id) not in kept]
    return [prepared[i] for i in ask], [inputs[i] for i in ask]


def _aux_lines(earlier: List[dict], new: List[dict], kept: dict, settings: str, digests: dict) -> List[dict]:
    """The property head's predictions: this run's, and with --resume those an earlier run
    made for the answers it keeps (with the same settings, for the same question)."""
    return resume.kept_lines(earlier, settings, digests, set(kept)) + resume.tagged(new, settings, digests)


def _write_aux(aux_file: Path, lines: List[dict]) -> None:
    if lines:
        resume.write_lines(aux_file, lines)
        print(f"property head predictions: {aux_file}", file=sys.stderr)
    else:  # never an earlier run's beside these answers (kept predictions are among `lines`)
        aux_file.unlink(missing_ok=True)


class QuestionsFailed(EvalInputError):
    """Some questions could not be asked; the others were answered (exit status 1)."""


def write_failures(path: Path, failures: List[dict], questions: dict) -> None:
    """The failures file: a line per failed question, `failure_line`."""
    if failures:
        path.write_text("".join(json.dumps(failure_line(f, questions)) + "\n" for f in failures))


def failure_line(failure: dict, questions: dict) -> dict:
    """`{question_id, reason}` with what the question asked, as its answer line would carry
    it: `prompt` (the line's `text`) and `metadata.asked` (`resume.asked_digests`: its image
    and molecule fields), so that the report refuses an entry whose question has changed since
    (was: `{question_id, reason}` alone, and a question whose SMILES was fixed stayed "not
    asked" with the old error). A question's whole digest (`question_digest`) needs its parsed
    molecule, which a failed question may not have, so it is not written."""
    line = questions.get(str(failure["question_id"]), {})
    return {**failure, "prompt": line.get("text"), "metadata": {resume.ASKED: resume.asked_digests(line)}}


def report_failures(failures: List[dict], path: Path, asked: int, answers: Path, questions: dict) -> None:
    """Write the failures file and raise QuestionsFailed when any question failed."""
    if not failures:
        return
    write_failures(path, failures, questions)
    raise QuestionsFailed(f"{len(failures)} of {asked} questions failed ({path}, reasons above); the "
                          f"{asked - len(failures)} others were answered, in {answers}")


def drop_answers(path: Path, question_ids: set) -> None:
    """Remove the lines the host wrote for questions that failed while generating (their
    `text` is the empty string of no tokens, not an answer)."""
    if not question_ids:
        return
    kept = [line for line in path.read_text().splitlines(keepends=True)
            if str(json.loads(line)["question_id"]) not in question_ids]
    path.write_text("".join(kept))


def check_arguments(args: argparse.Namespace) -> None:
    """Paths, the question file and numbers, before anything heavy loads: an EvalInputError
    (a usage.UsageError for a path or a number) names the first problem."""
    # one line, as every other option error (parser.error printed the whole usage block first)
    usage.at_least(args.num_chunks, "--num-chunks")
    if not 0 <= args.chunk_idx < args.num_chunks:
        raise usage.UsageError(f"--chunk-idx must be in [0, --num-chunks), got {args.chunk_idx} of {args.num_chunks}")
    usage.at_least(args.max_new_tokens, "--max-new-tokens")
    usage.model_folder(os.path.expanduser(args.model_path), "--model-path")
    if args.model_base is not None:
        usage.model_folder(args.model_base, "--model-base")
    usage.existing_file(args.question_file, "--question-file")
    if not read_questions(args.question_file):
        raise EvalInputError(f"--question-file {args.question_file}: holds no questions")
    if args.image_folder:
        usage.existing_folder(args.image_folder, "--image-folder")
    if args.structure_folder is not None:
        usage.existing_folder(args.structure_folder, "--structure-folder")
    answers = Path(os.path.expanduser(args.answers_file))
    if answers.is_dir():
        raise usage.UsageError(f"--answers-file {args.answers_file}: is a folder, not a file")
    questions = Path(os.path.expanduser(args.question_file))
    # the host opens the answers with "w": also the same file under another name (a hard link)
    if usage.real_path(answers) == usage.real_path(questions) or (answers.exists() and os.path.samefile(answers, questions)):
        raise usage.UsageError(f"--answers-file {args.answers_file}: is the --question-file; the host would "
                               "overwrite the questions with the answers")
    usage.output_folder(answers.parent, "--answers-file's folder")  # the host creates it
    usage.output_folder(answers.parent / "renders", "--answers-file's renders/ folder")  # drawn depictions
    if args.resume_from and not args.resume:
        raise usage.UsageError("--resume-from needs --resume (without it no earlier answer is kept)")
    for earlier in args.resume_from:  # a mistyped name kept nothing, without a word
        path = Path(os.path.expanduser(earlier))
        if path.is_dir():
            raise usage.UsageError(f"--resume-from {earlier}: is a folder, not a file")
        if not (path.is_file() or resume.partial_path(path).is_file() or resume.host_partials(path)):
            raise usage.UsageError(f"--resume-from {earlier}: no such file (nor its .partial or a killed run's "
                                   "partial file)")
    if args.vision_feature_cache is not None:
        usage.cache_folder(Path(args.vision_feature_cache), "--vision-feature-cache")
    usage.sampling_temperature(args.temperature)
    usage.at_least(args.num_beams, "--num_beams")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise usage.UsageError(f"--top_p must be in (0, 1], got {args.top_p}")


@usage.interrupted_by_sigterm  # run_eval.sh's Ctrl-C, a job scheduler: as Ctrl-C, answers so far kept
def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        usage.checked(parser, check_arguments, args)
        args.conformer_policy = usage.checked(  # training's settings, their notes said here, once
            parser, lambda a: checkpoint_depiction(a.model_path, a.conformer_policy), args).policy
    except EvalInputError as e:
        raise SystemExit(f"error: {e}") from e
    from ..tensor_files import CheckpointError

    # One run per answers file: two runs on one --answers-file removed each other's failures
    # and partial files and wrote one file of both (`<answers>.lock` beside it; was: no lock).
    # run_eval.sh's chunks write answers files of their own: its OUT lock is not taken here.
    answers_lock = output_lock.file_lock(os.path.expanduser(args.answers_file), "model_vqa")
    made = missing_folders(answers_lock.path.parent)  # created by `hold`; removed again if the run leaves them empty
    lock = usage.checked(parser, lambda a: output_lock.hold(answers_lock), args)
    from ..molecule.inputs import OutputWriteError

    try:
        run(args)
    except usage.UsageError as e:  # an option found wrong once the model's config is read (--conv-mode)
        usage.fail(parser.prog, e)
    except (EvalInputError, CheckpointError) as e:  # CheckpointError: the loader names the folder and why
        raise SystemExit(f"error: {e}") from e
    except OutputWriteError as e:  # a depiction drawn before any question is asked cannot be written (a full
        # disk, a quota): the run's problem, not a question's (was PIL's OSError traceback)
        raise SystemExit(f"error: {e}") from e
    except KeyboardInterrupt:  # was a traceback through the host and torch
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        lock.release()
        remove_empty_folders(made)


def missing_folders(folder: Path) -> List[Path]:
    """`folder` and those above it that do not exist yet, deepest first."""
    missing = []
    for path in (folder, *folder.parents):
        if path.exists() or path.is_symlink():
            break
        missing.append(path)
    return missing


def remove_empty_folders(folders: List[Path]) -> None:
    """Remove `folders` (deepest first, as `missing_folders` lists them) while they are empty:
    a run refused before it wrote anything (a bad --conv-mode, a checkpoint that does not load)
    left the --answers-file folder its lock had made, empty (was: left behind)."""
    for folder in folders:
        if not folder.is_dir() or any(folder.iterdir()):
            return
        folder.rmdir()

