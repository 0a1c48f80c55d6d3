"""`python -m deepmolm_plugin.eval.model_vqa`: the host's VQA eval (llava/eval/model_vqa.py)
with DeepMoLM, on GPU or CPU.

    python -m deepmolm_plugin.eval.model_vqa --model-path CKPT --question-file q.jsonl \\
        --image-folder images/ --answers-file answers/chunk0.jsonl --conv-mode auto \\
        --num-chunks 4 --chunk-idx 0 --structure-folder structures/

Question lines are the host's `{question_id, image, text}` plus, as in training records,
one molecule field: `molecule_fp` (inline [[4 ints] per atom]), `structure` (a file under
`--structure-folder`, 3D policy `--conformer-policy`) or `smiles`. A model whose projector
uses molecules (fusion, concat) needs one on every line; for other models the fields only
serve to draw missing images. A line without `image` gets its molecule's depiction
(`render_molecule`), written once to `renders/` next to the answers file under a
name made of the question id and a digest of the molecule source. Any problem with a
line is an error naming its question_id, raised before the model is loaded. So is bad
input on the command line: no such --model-path folder, --question-file, --image-folder or
--structure-folder, a question file with no questions, nonsense chunk or token numbers
(one line on stderr, exit status 2 for options, 1 for the question file's content).

The host's `eval_model(args)` runs unchanged on this chunk's lines (taken with the host's
own `split_list`/`get_chunk`, then handed over as a one-chunk file). Bound around it:

- molecules: the host loop has no per-question hook, but it opens each question's image
  with `Image.open(os.path.join(image_folder, image))` right before that question's
  `generate`. We replace the `Image` name in the host module with a proxy whose `open`
  looks the path up in a table {image path: (question_id, molecule_fp)} built from the
  question lines, and the loaded model's `generate` takes the pending molecule (and
  clears it, so a molecule is never reused). Two lines sharing an image with different
  molecules would make this ambiguous and are an error naming both; an opened image not
  in the table, or a `generate` with no pending molecule, is an error too.
- devices: the host hard-codes `.cuda()`/`.half()`; without CUDA,
  `patches.eval_device` maps them to the model's device and dtype for the run. Images
  reach `generate` in the model's dtype in any case (as in `deepmolm_plugin.cli`).
- `--max-new-tokens`: the host hard-codes 1024; when given, ours replaces it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from .. import usage
from ..cli import CONFORMER_POLICIES, images_in_dtype, projector_uses_molecules
from .jsonl import read_jsonl

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
    parser.add_argument("--model-path", type=str, required=True)
    parser.add_argument("--model-base", type=str, default=None)
    parser.add_argument("--image-folder", type=str, default="")
    parser.add_argument("--question-file", type=str, default="tables/question.jsonl")
    parser.add_argument("--answers-file", type=str, default="answer.jsonl")
    parser.add_argument("--conv-mode", type=str, default="auto",
                        help="conversation template; auto: from the model's config")
    parser.add_argument("--num-chunks", type=int, default=1)
    parser.add_argument("--chunk-idx", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=0.2, help="0: greedy")
    parser.add_argument("--top_p", type=float, default=None)
    parser.add_argument("--num_beams", type=int, default=1)
    # Ours.
    parser.add_argument("--structure-folder", type=str, default=None,
                        help="folder that `structure` fields are relative to")
    parser.add_argument("--conformer-policy", default="auto", choices=CONFORMER_POLICIES,
                        help="3D policy for `structure` and `smiles` fields")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="cap on generated tokens (the host's script always uses 1024)")
    return parser


def read_questions(path: str) -> List[dict]:
    """The question file's JSON lines (blank lines skipped); a bad line names its number."""
    return read_jsonl(path, required=("question_id", "text"), error=EvalInputError)


def _digest(text: str, length: int = 10) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def _structure_path(line: dict, qid, structure_folder: Optional[str]) -> Path:
    path = Path(line["structure"])
    if not path.is_absolute():
        if structure_folder is None:
            raise QuestionError(qid, f"structure {path} is relative but --structure-folder is not set")
        path = Path(structure_folder) / path
    if not path.is_file():
        raise QuestionError(qid, f"structure file {path} does not exist")
    return path


def render_depiction(line: dict, qid, render_folder: Path, structure_folder: Optional[str], policy: str) -> str:
    """Absolute path of the depiction of this line's molecule (`smiles` first, else
    `structure`), drawn unless a file for the same question and molecule source exists."""
    from ..molecule import read_structures, render_molecule

    if line.get("smiles"):
        source, key = line["smiles"], "smiles:" + line["smiles"]
    elif line.get("structure"):
        path = _structure_path(line, qid, structure_folder)
        source, key = path, "structure:" + hashlib.sha1(path.read_bytes()).hexdigest()
    elif line.get("molecule_fp") is not None:
        raise QuestionError(qid, "has no image, and an inline molecule_fp cannot be drawn: add `image` or `smiles`")
    else:
        raise QuestionError(qid, "has no image and no molecule to draw")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(qid))[:80]
    target = render_folder / f"{safe}-{_digest(str(qid) + chr(0) + key)}.png"
    if target.is_file():
        return str(target.resolve())
    try:
        if isinstance(source, Path):
            source = next(read_structures(source, policy=policy, errors="raise"))
        image = render_molecule(source, id=str(qid))
    except ValueError as e:  # a MoleculeError, or a structure format we do not read
        raise QuestionError(qid, f"cannot draw the molecule: {e}") from e
    render_folder.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.stem}.tmp{os.getpid()}.png")
    image.save(tmp)
    os.replace(tmp, target)  # atomic: concurrent chunks or a killed run leave no half image
    return str(target.resolve())


def image_key(image_folder: str, image: str) -> str:
    """The path the host opens for a line (`os.path.join(image_folder, image)`), normalised."""
    return os.path.abspath(os.path.join(image_folder, image))


def prepare_questions(questions: List[dict], image_folder: str, render_folder: Path, config,
                      structure_folder: Optional[str] = None, policy: str = "auto",
                      ) -> Tuple[List[dict], Dict[str, Tuple[object, torch.Tensor]], Optional[dict]]:
    """Lines for the host (every one with an `image`), for a molecule-aware model the
    table {image path the host will open: (question_id, molecule_fp (atoms, levels))}, and
    for a model with the KFLM2 property head {question_id: molecular graph} (else None)."""
    from ..data.records import MoleculeInputs

    uses_molecules = projector_uses_molecules(config)
    inputs = MoleculeInputs(structure_folder, policy, fp_bits=getattr(config, "fp_bits", 4096),
                            fp_levels=getattr(config, "fp_levels", 4))
    prepared, table = [], {}
    aux_graphs = {} if getattr(config, "aux_property_task", None) else None  # qid -> MolGraph
    for line in questions:
        qid = line["question_id"]
        if aux_graphs is not None:
            from ..data.graphs import record_graph

            try:
                aux_graphs[qid] = record_graph(line, str(qid), structure_folder)
            except ValueError as e:
                raise QuestionError(qid, getattr(e, "reason", str(e))) from e
            if aux_graphs[qid] is None:
                raise QuestionError(qid, "the model's property head needs `smiles` or `structure`")
        if uses_molecules and not MoleculeInputs.has_molecule(line):
            raise QuestionError(qid, f"has no molecule (molecule_fp, structure or smiles), but the model's "
                                     f"{config.mm_projector_type!r} projector needs one")
        fp = None
        if uses_molecules:
            try:
                fp = inputs.molecule_fp(line, str(qid))
            except ValueError as e:  # RecordError, MoleculeError, or a structure format we do not read
                raise QuestionError(qid, getattr(e, "reason", str(e))) from e
        if not line.get("image"):
            line = dict(line, image=render_depiction(line, qid, render_folder, structure_folder, policy))
        prepared.append(line)
        if fp is None:
            continue
        key = image_key(image_folder, line["image"])
        if key in table and not _same(table[key][1], fp):
            raise QuestionError(qid, f"shares image {key} with question {table[key][0]!r} but has a different "
                                     "molecule; the host reads questions by image, so give each its own image")
        table[key] = (qid, fp)
    return prepared, table, aux_graphs


def _same(a, b) -> bool:
    import torch

    return torch.equal(a, b)


class _ImageOpener:
    """Stands in for the `PIL.Image` module inside the host's eval module: `open` notes which
    question's image was opened; everything else is PIL's."""

    def __init__(self, image_module, on_open):
        self._image, self._on_open = image_module, on_open

    def open(self, fp, *args, **kwargs):
        self._on_open(fp)
        return self._image.open(fp, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._image, name)


class QuestionInputs:
    """Delivers each question's molecule_fp to the `generate` call made for it."""

    def __init__(self, table: Dict[str, Tuple[object, torch.Tensor]], uses_molecules: bool,
                 max_new_tokens: Optional[int] = None, aux_graphs: Optional[dict] = None):
        self.aux_graphs = aux_graphs
        self.table, self.uses_molecules, self.max_new_tokens = table, uses_molecules, max_new_tokens
        self.pending: Optional[Tuple[object, torch.Tensor]] = None
        self.model = None
        self.aux_predictions: List[dict] = []  # {question_id, aux_properties}, written next to the answers

    def opened(self, fp) -> None:
        if not self.uses_molecules:
            return
        key = os.path.abspath(os.fspath(fp)) if isinstance(fp, (str, os.PathLike)) else None
        if key not in self.table:
            raise RuntimeError(f"the host opened image {fp!r}, which belongs to no question with a molecule")
        self.pending = self.table[key]

    def bind(self, generate):
        def wrapper(inputs=None, *args, **kwargs):
            if self.max_new_tokens is not None:
                kwargs["max_new_tokens"] = self.max_new_tokens
            if "images" in kwargs and self.model is not None:
                # The host sends float16; our tower would cast its features back to that.
                kwargs["images"] = images_in_dtype(kwargs["images"], self.model.dtype)
            if self.uses_molecules:
                if self.pending is None:
                    raise RuntimeError("generate was called with no question image opened since the last call; "
                                       "cannot tell which molecule it is for")
                (qid, fp), self.pending = self.pending, None
                kwargs["molecule_fp"] = fp.unsqueeze(0)  # (1, atoms, levels): the host's batch of 1
                if self.aux_graphs is not None:  # the KFLM2 head's prediction for the same prompt
                    predicted = self.model.predict_properties(
                        inputs, kwargs["images"], [self.aux_graphs[qid]], image_sizes=kwargs.get("image_sizes"),
                        molecule_fp=kwargs["molecule_fp"])
                    self.aux_predictions.append({"question_id": qid, "aux_properties": predicted[0]})
            return generate(inputs, *args, **kwargs)

        return wrapper

    @contextlib.contextmanager
    def installed(self, host_module):
        """Bind `host_module`'s `Image` and `load_pretrained_model` names for the run."""
        from llava.model import builder

        def load(*args, **kwargs):
            # builder's name, looked up now: model_dispatch routes DeepMoLM checkpoints to our loader.
            tokenizer, model, image_processor, context_len = builder.load_pretrained_model(*args, **kwargs)
            model.generate = self.bind(model.generate)
            self.model = model
            return tokenizer, model, image_processor, context_len

        saved = {name: getattr(host_module, name) for name in ("Image", "load_pretrained_model")}
        host_module.Image = _ImageOpener(saved["Image"], self.opened)
        host_module.load_pretrained_model = load
        try:
            yield self
        finally:
            for name, value in saved.items():
                setattr(host_module, name, value)


def run(args: argparse.Namespace) -> None:
    import deepmolm_plugin

    deepmolm_plugin.register()
    import llava.eval.model_vqa as host
    from llava.mm_utils import get_model_name_from_path
    from transformers import AutoConfig

    from ..patches.conversation_qwen2 import resolve_conv_mode

    model_path = os.path.expanduser(args.model_path)
    config = AutoConfig.from_pretrained(model_path)
    try:
        args.conv_mode = resolve_conv_mode(args.conv_mode, config, get_model_name_from_path(model_path))
    except ValueError as e:
        raise EvalInputError(str(e)) from e
    run_host_eval(host, args, config)


def run_host_eval(host, args: argparse.Namespace, config) -> None:
    """Prepare this chunk's questions for a model with `config`, then run `host.eval_model`
    on them with molecules and devices bound (see the module docstring)."""
    from ..patches import eval_device

    chunks = host.split_list(read_questions(args.question_file), args.num_chunks)
    chunk = chunks[args.chunk_idx] if args.chunk_idx < len(chunks) else []  # the host's get_chunk
    answers = Path(os.path.expanduser(args.answers_file)).resolve()
    prepared, table, aux_graphs = prepare_questions(chunk, args.image_folder, answers.parent / "renders", config,
                                                    args.structure_folder, args.conformer_policy)
    if not prepared:  # more chunks than questions: the host's get_chunk would raise IndexError
        print(f"chunk {args.chunk_idx} of {args.num_chunks} has no questions: empty answers file", file=sys.stderr)
        answers.parent.mkdir(parents=True, exist_ok=True)
        answers.write_text("")
        return
    uses_molecules = projector_uses_molecules(config)
    if not uses_molecules and any(q.get(f) is not None for q in chunk for f in ("molecule_fp", "structure", "smiles")):
        print(f"note: {args.model_path}'s projector does not use molecules; molecule fields only provide "
              "missing depictions", file=sys.stderr)
    state = QuestionInputs(table, uses_molecules, args.max_new_tokens, aux_graphs)
    with tempfile.TemporaryDirectory(prefix="deepmolm_vqa_") as folder:
        host_args = copy.copy(args)
        host_args.question_file = os.path.join(folder, "questions.jsonl")
        host_args.num_chunks, host_args.chunk_idx = 1, 0
        with open(host_args.question_file, "w") as handle:
            handle.writelines(json.dumps(line) + "\n" for line in prepared)
        with state.installed(host), eval_device.cuda_calls_follow_model(lambda: state.model):
            host.eval_model(host_args)
    if state.aux_predictions:
        aux_file = answers.with_name(answers.stem + ".aux_properties.jsonl")
        aux_file.write_text("".join(json.dumps(p) + "\n" for p in state.aux_predictions))
        print(f"property head predictions: {aux_file}", file=sys.stderr)


def check_arguments(args: argparse.Namespace) -> None:
    """Paths, the question file and numbers, before anything heavy loads: an EvalInputError
    (a usage.UsageError for a path or a number) names the first problem."""
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
    usage.output_folder(answers.parent, "--answers-file's folder")  # the host creates it
    usage.at_least(args.temperature, "--temperature", 0)
    usage.at_least(args.num_beams, "--num_beams")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise usage.UsageError(f"--top_p must be in (0, 1], got {args.top_p}")


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num_chunks < 1 or not 0 <= args.chunk_idx < args.num_chunks:
        parser.error(f"--chunk-idx must be in [0, --num-chunks), got {args.chunk_idx} of {args.num_chunks}")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        parser.error("--max-new-tokens must be positive")
    try:
        usage.checked(parser, check_arguments, args)
    except EvalInputError as e:
        raise SystemExit(f"error: {e}") from e
    try:
        run(args)
    except EvalInputError as e:
        raise SystemExit(f"error: {e}") from e


if __name__ == "__main__":
    main()
