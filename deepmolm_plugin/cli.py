"""`python -m deepmolm_plugin.cli`: the host's chat CLI (llava/serve/cli.py) with DeepMoLM.

    python -m deepmolm_plugin.cli --model-path CKPT --conv-mode auto --smiles CCO
    python -m deepmolm_plugin.cli --model-path CKPT --structure mol.sdf --image-file mol.png

Takes the host CLI's own options plus the molecule (`--smiles` or `--structure`, whose
first molecule is used, with the `--conformer-policy` 3D policy), resolved into the
depiction and `molecule_fp` by the input resolver that training and eval use
(`deepmolm_plugin.molecule.inputs`). A model whose projector uses molecules (`fusion`,
`concat`) needs one. Without `--image-file` the molecule's depiction is drawn as the
training images were.
The resolver's notes about the molecule (a radical, PDB altlocs, a generated conformer...)
are printed on stderr, one `note: ...` line each, before the model loads: the GUI's status
box lists the same notes.
`--conv-mode auto` picks the template from the checkpoint's config: the one it was trained
with (`deepmolm_run.version`), else `qwen2` for Qwen2.
Bad input (no such --model-path folder, --structure or --image-file; an --image-file that
is not a readable image; an unreadable molecule; --max-new-tokens below 1; a --temperature
past the GUI's 1.5; a deepmolm-kflm2 results folder as --model-path; --model-base /
--load-8bit / --load-4bit with a Qwen2-family checkpoint, which our loader cannot honour; a
config.json field of the wrong kind: `checkpoint_config`)
is one line on stderr and exit status 2, before the host or the model loads; so is a
`--conv-mode` that cannot chat (`plain`, the stage-1 template, also as auto's choice for a
model trained in it: `check_chat_conv_mode`). A
checkpoint that cannot be loaded as it is (a config.json transformers cannot read; missing,
extra or NaN tensors; no tokenizer, or one with more tokens than the model has embeddings) is one line
naming the folder and exit status 1. A question holding the image placeholder `<image>`
is refused and asked again (the host would make a second image slot and crash).
`--dtype` (default auto: `deepmolm_plugin.dtypes`, whose choice is printed once) is the dtype
the model is loaded in; for a checkpoint the host's own loader takes, only auto (exit 2 else).
`--max-new-tokens` (default 512) is at most the GUI's limit, the model's context and 1024:
more is set to it, with a note. Each reply gets at most the positions the context leaves
after its prompt (the model's `generate` caps it); one that stops there is followed by a
`note:` line saying it may be cut short.
In a terminal, a question pasted as several lines is one question, its lines joined with
newlines (`joining_pasted_lines`); piped stdin is one question per line. An empty
line or Ctrl-D ends the chat (the host's "exit..."); Ctrl-C (or SIGTERM), at the prompt,
while a reply is written or while the chat starts, ends it too, with "interrupted" and exit
status 130, not a traceback.

The host's `main(args)` runs unchanged; these things are bound around it, for this
process only:
- the host's `input` name: pasted lines joined, questions it cannot take asked again
  (`questions_without_placeholder`);
- `patches.cli_reply`: the host stored every reply as '' (multi-turn lost all history);
- `patches.cli_display`: the chat shows `USER: ` / `ASSISTANT: `, not the template's raw
  ChatML roles (the prompts the model sees are unchanged); when `--conv-mode auto` was
  resolved here, the host's "auto inferred conversation mode is llava_v0" warning (from
  the model's folder name) is not printed;
- the one seam with the host CLI: the model its `load_pretrained_model` returns gets a
  `generate` that passes this chat's `molecule_fp` (batch 1) as the explicit argument;
  the host calls `generate(input_ids, images=..., image_sizes=...)`, with no molecule slot;
- a prompt whose text alone must take more tokens than the model's context is refused, as
  one the model counts is, before the host's `tokenizer_image_token` tokenises it
  (`refusing_long_texts`; was: a 50 MB question was tokenised whole first, for minutes);
- images reach `generate` in the model's dtype. The host casts them to float16; our tower
  runs in its own dtype anyway, but casts its output back to the input's dtype, so a
  float32 (CPU) model would see float16-rounded tower features;
- in tiles mode, `generate` gets the image's tiles too (the image processor's
  `tile_inputs`, as the training batch): the host makes only the global view;
- greedy decoding (`--temperature 0`: the host passes `do_sample=False, temperature=0`)
  reaches `generate` without the sampling-only flags, which transformers would warn are
  ignored.
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: a Ctrl-C while they load is one line too
    from deepmolm_plugin.entry_points import run_module

    run_module("deepmolm_plugin.cli", "python -m deepmolm_plugin.cli")

import argparse
import contextlib
import functools
import os
import sys
import tempfile
from typing import TYPE_CHECKING, Optional

from deepmolm_plugin import usage
# The GUI's generation limits, one rule for both tools (light: no gradio, torch or RDKit).
from deepmolm_plugin.gui.chat import MAX_NEW_TOKENS, MAX_TEMPERATURE, max_new_tokens_limit, model_context

if TYPE_CHECKING:  # torch loads after the arguments are checked (bad input fails in a second)
    import torch

# = deepmolm_plugin.molecule.POLICIES (importing it here would load RDKit/E3FP for --help).
CONFORMER_POLICIES = ("auto", "from-file", "generate", "keep")
DEFAULT_NEW_TOKENS = 512  # the host CLI's default, within the model's context (`new_tokens_for`)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deepmolm_plugin.cli",
        description="Chat about a molecule with a DeepMoLM (or any llava-torch) checkpoint.",
    )
    # The host's own options (llava/serve/cli.py, llava-torch 1.2.2), same names and defaults,
    # except: --model-path is required, --image-file is optional with a molecule, and
    # --conv-mode defaults to auto.
    parser.add_argument("--model-path", type=usage.user_path, required=True)
    parser.add_argument("--model-base", type=usage.user_path, default=None)
    parser.add_argument("--image-file", type=usage.user_path, default=None,
                        help="the image; default: the molecule's depiction")
    parser.add_argument("--device", type=str, default="cuda", help="falls back to cpu without CUDA")
    parser.add_argument("--conv-mode", type=str, default="auto",
                        help="conversation template; auto: from the model's config")
    parser.add_argument("--temperature", type=float, default=0.2,
                        help=f"0: greedy; at most {MAX_TEMPERATURE}, as in the GUI")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help=f"default: {DEFAULT_NEW_TOKENS}; at most {MAX_NEW_TOKENS} and the model's context "
                             "(more is set to that, with a note), as in the GUI")
    parser.add_argument("--load-8bit", action="store_true")
    parser.add_argument("--load-4bit", action="store_true")
    parser.add_argument("--debug", action="store_true")
    # Ours.
    molecule = parser.add_mutually_exclusive_group()
    molecule.add_argument("--smiles", type=str, default=None, help="the molecule as SMILES")
    molecule.add_argument("--structure", type=usage.user_path, default=None,
                          help="structure file (SDF/MOL/MOL2/XYZ/PDB/SMI); its first molecule is used")
    parser.add_argument("--conformer-policy", default=None, choices=CONFORMER_POLICIES,
                        help="3D policy for the molecule (see deepmolm_plugin.molecule); default: the one the "
                             "model was trained with (its config), else auto")
    add_dtype_option(parser)
    return parser


# = model.loading.DTYPE_CHOICES (importing it here would load torch and transformers for --help)
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")


def add_dtype_option(parser: argparse.ArgumentParser) -> None:
    """--dtype for the launchers whose model the host's `load_pretrained_model` loads (was:
    always "auto", which on a CPU with native bf16 ran an fp32-trained model in bf16)."""
    parser.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES,
                        help="the dtype the model runs in; auto (default): bfloat16 on CUDA with bf16 and on CPUs "
                             "with native bf16 (AMX/AVX512-BF16), float16 on older GPUs, float32 on other CPUs; "
                             "the choice is printed")


def model_depiction_settings(model_path: str, given: Optional[str], option: str = "--conformer-policy") -> str:
    """The 3D policy for the model's molecules (`checkpoint_depiction(...).policy`): the one
    training used, unless `given`."""
    return checkpoint_depiction(model_path, given, option).policy


def checkpoint_depiction(model_path: str, given: Optional[str], option: str = "--conformer-policy"):
    """The model config's depiction settings (`molecule.inputs.ModelDepiction`: 3D policy,
    render size, atom cap), checked before the model loads: the chat CLI, model_vqa and the
    GUI call this, and `ChatSession` resolves them by the same rule
    (`molecule.inputs.model_depiction`). Each is training's (recorded in the config) unless
    given; a given policy other than the training's, and a setting the config does not record
    (its default stands in), are notes on stderr (printed here, once per run).
    First the kinds of the config's other fields (`checkpoint_config.check_config_fields`:
    a tokenizer_model_max_length "256", an image_aspect_ratio the host cannot serve...), which
    were tracebacks once the model had loaded; a bad render_size, max_atoms or
    conformer_policy is a UsageError naming --model-path (was a traceback after loading)."""
    from deepmolm_plugin.checkpoint_config import check_config_fields
    from deepmolm_plugin.molecule.inputs import model_depiction

    config = usage.model_config(model_path, "--model-path")
    if config is not None:
        try:
            check_config_fields(config, model_path)
        except ValueError as e:  # names the file, the field and its value
            raise usage.UsageError(f"--model-path: {e}") from e
    try:
        depiction = model_depiction(config or {}, given, names={"policy": option})
    except ValueError as e:
        raise usage.UsageError(f"--model-path {model_path}: {e}") from e
    say_notes(depiction.notes)
    return depiction


def say_notes(notes) -> None:
    """Each note one `note: ...` line on stderr (the chat's, eval's and the GUI's words for them)."""
    for note in notes:
        print(f"note: {note}", file=sys.stderr, flush=True)


def new_tokens_for(given: Optional[int], config) -> int:
    """The most new tokens a reply gets: `given` (default DEFAULT_NEW_TOKENS), at most the
    GUI's limit for the model with `config` (`gui.chat.max_new_tokens_limit`: its context,
    `tokenizer_model_max_length`, and MAX_NEW_TOKENS). A given number past it is set to it with
    a note on stderr. Was: taken as given (5000 on a 256-token model), and the default 512 was
    twice that model's context. Each reply then gets at most the room its prompt leaves (the
    model's `generate`: `LlavaQwen2ForCausalLM.new_tokens_within_context`)."""
    import types

    limit = max_new_tokens_limit(types.SimpleNamespace(config=config))  # the rule reads only session.config
    if given is None:
        return min(DEFAULT_NEW_TOKENS, limit)
    if given > limit:
        why = f"this model's context is {limit}" if limit < MAX_NEW_TOKENS else f"at most {limit}, as in the GUI"
        print(f"note: --max-new-tokens {given} set to {limit} ({why})", file=sys.stderr)
        return limit
    return given


def new_tokens_within_context(given: Optional[int], config) -> Optional[int]:
    """Batch eval's --max-new-tokens: `given`, at most the model's context (`model_context`),
    set to it with a note on stderr. No GUI limit here: a long description may need more than
    the GUI's MAX_NEW_TOKENS. Not given (None): the host's own default stays. Was: taken as
    given (5000 on a 256-token model). Either way the model lowers it per question to the
    room its context leaves after the prompt (`LlavaQwen2ForCausalLM.new_tokens_within_context`)."""
    context = model_context(config)
    if given is None or context is None or given <= context:
        return given
    print(f"note: --max-new-tokens {given} set to {context} (this model's context is {context})", file=sys.stderr)
    return context


def projector_uses_molecules(config) -> bool:
    """True when the model's projector reads molecule_fp (fusion, concat)."""
    from deepmolm_plugin.projector import PROJECTORS

    projector = PROJECTORS.get(getattr(config, "mm_projector_type", None) or "")
    return bool(projector is not None and projector.uses_molecule)


def molecule_resolver(policy: str, model_path: str):
    """The one input resolver, set up for the CLI's molecule (a structure file's first
    molecule, errors naming the molecule, the model's atom cap). Its fingerprint settings
    become the model's once the model config is read; until then they are DeepMoLM's."""
    from deepmolm_plugin.molecule.inputs import InputResolver, model_limits

    limits = model_limits(usage.model_config(model_path, "--model-path") or {})  # checked by checkpoint_depiction
    return InputResolver(policy=policy, first_of_many=True, kind="molecule", limits=limits,
                         option_names={"image": "--image-file", "smiles": "--smiles", "structure": "--structure"})


def molecule_fields(smiles: Optional[str], structure: Optional[str]) -> dict:
    return {"smiles": smiles} if smiles is not None else {"structure": str(usage.real_path(structure))}


def images_in_dtype(images, dtype: torch.dtype):
    """Floating image tensors (or a list of them) cast to `dtype`; anything else as is."""
    import torch

    if torch.is_tensor(images) and images.is_floating_point():
        return images.to(dtype=dtype)
    if isinstance(images, (list, tuple)):
        return type(images)(images_in_dtype(image, dtype) for image in images)
    return images


# Only used when sampling: with do_sample=False transformers warns that they are ignored.
SAMPLING_FLAGS = ("temperature", "top_p")


def without_sampling_flags(kwargs: dict) -> dict:
    """With `do_sample=False`, the host's sampling-only flags dropped (transformers would
    warn that they are ignored)."""
    if kwargs.get("do_sample") is False:
        for flag in SAMPLING_FLAGS:
            kwargs.pop(flag, None)
    return kwargs


def tile_arguments(image_processor, image, model) -> dict:
    """In tiles mode, the image's tiles as `generate` takes them (the host's scripts make
    only the global view); in base mode nothing. Same tiles as the training batch."""
    if getattr(image_processor, "mode", "base") != "tiles":
        return {}
    # the path, read by the processor's own loader, as training's tiles are (its check made sure
    # the host reads the same pixels)
    tiles, grid = image_processor.tile_inputs(image)  # (T, 3, t, t), (cols, rows)
    return {"tile_images": [images_in_dtype(tiles.to(model.device), model.dtype)], "tile_grids": [grid]}


def unrounded(images, processed):
    """`processed` (the image processor's own output) on `images`' device when `images` is
    the host's copy of it (same shape), else `images`: the host scripts cast it to float16
    (`.half()`, `dtype=torch.float16`) before `generate`, and a float32 or bfloat16 model
    then saw pixels rounded through float16 (up to 2.4e-4 off), as no training batch is."""
    import torch

    if torch.is_tensor(processed) and torch.is_tensor(images) and processed.shape == images.shape:
        return processed.to(images.device)
    return images


def bind_model_inputs(generate, model, molecule_fp: Optional[torch.Tensor], tiles: Optional[dict] = None,
                      processed: Optional[dict] = None, refused: Optional[list] = None):
    """`generate` with this chat's molecule_fp (1, atoms, levels), its tiles (tiles mode)
    and images in the model's dtype; with `do_sample=False`, without the sampling-only flags.
    `processed["images"]`: the image processor's own tensor, which replaces the host's copy of
    it (see `loader_binding_inputs`). A prompt longer than the model's context is said on
    stderr and answered with nothing, and the chat goes on; so is one in `refused`, the
    PromptTooLong of a prompt not tokenised (`refusing_long_texts`). A reply that stops at
    the end of the model's context (the model caps new tokens there) is followed by a note
    on stderr (`say_context_end`; was: the cap was the whole context, and the reply ran on
    past it)."""
    from deepmolm_plugin.model.llava_qwen2 import PromptTooLong, takes_context_end

    answered = []  # one entry per reply generated: their turns are in every later prompt

    @functools.wraps(generate)
    def wrapper(inputs=None, *args, **kwargs):
        without_sampling_flags(kwargs)
        if "images" in kwargs:
            kwargs["images"] = images_in_dtype(unrounded(kwargs["images"], (processed or {}).get("images")),
                                               model.dtype)
        if molecule_fp is not None:
            if kwargs.get("molecule_fp") is not None:
                raise RuntimeError("generate got a molecule_fp of its own and the CLI's molecule")
            kwargs["molecule_fp"] = molecule_fp
        kwargs.update(tiles or {})
        if takes_context_end(generate):
            kwargs["on_context_end"] = say_context_end
        try:
            if refused:  # its text alone was past the context: `inputs` holds no token of it
                raise refused.pop()
            output = generate(inputs, *args, **kwargs)
        except PromptTooLong as e:  # said, and the chat goes on: the question is left out of the history
            start = without_reply_label()
            if answered:  # earlier turns are in the prompt: "ask a shorter question" alone did not say
                # that they count (when they fill it, every later question was refused with it)
                # (a prompt that exactly fills the context is refused too: no position is left for the reply)
                fills = "more than" if e.positions > e.limit else "all of"
                size = f"at least {e.positions}" if e.at_least else e.positions
                print(f"{start}error: this question with the chat's earlier turns is {size} positions long, "
                      f"{fills} this model's context of {e.limit}: ask a shorter question, or end the chat (an "
                      "empty line) and start a new one", file=sys.stderr)
            else:
                print(f"{start}error: {e}", file=sys.stderr)
            return inputs  # no new tokens: the host stores an empty reply (`history_messages` drops the turn)
        answered.append(True)
        return output

    return wrapper


def say_context_end(new_tokens: int, context: int) -> None:
    """The note after a reply the model's context cut (the model's `on_context_end`)."""
    print(f"note: the reply stopped at the end of this model's context of {context} positions "
          f"({context - new_tokens} for the prompt: the image, the question and any earlier turns; {new_tokens} for "
          "the reply): it may be cut short; ask a shorter question, or end the chat (an empty line) and start a new "
          "one", file=sys.stderr)


def without_reply_label() -> str:
    """The host printed `ASSISTANT: ` before `generate`, which then answers nothing: in a
    terminal the label is erased (carriage return, erase to the line's end) and the error
    takes its line, else (a log, a pipe) the error starts on the next line. Returns what the
    error line starts with. Was: `ASSISTANT: ` over nothing, the error on the line below."""
    sys.stdout.flush()
    if sys.stdout.isatty() and sys.stderr.isatty():  # the error shows where the label was
        sys.stdout.write("\r\033[K")
        sys.stdout.flush()
        return ""
    if sys.stdout.isatty():  # the error goes to a log: the screen says there is none to read here (review:
        # the next `USER: ` went on the label's line, and the refusal showed nowhere on screen)
        print("(no answer: the question was refused; the reason is on stderr)", flush=True)
    return "\n"


@contextlib.contextmanager
def loader_binding_inputs(host_module, molecule_fp: Optional[torch.Tensor], image_file: Optional[str] = None):
    """While active, the model `host_module.load_pretrained_model` returns is bound by
    `bind_model_inputs` (with the tiles of `image_file` when the model works in tiles
    mode), and a prompt whose text alone is past the model's context is refused before it is
    tokenised (`refusing_long_texts`). The names are restored on exit.

    The host CLI casts the processed image to float16 (`.to(model.device,
    dtype=torch.float16)`) before every `generate`: an fp32 or bf16 model then saw pixels
    rounded through float16 (up to 2.4e-4 off, 2.7 % of the values), which training, eval
    and the GUI never do. `process_images` is wrapped to keep its own tensor, and `generate`
    takes that one instead (cast to the model's dtype once)."""
    loader, processed, loaded, refused = host_module.load_pretrained_model, {}, {}, []

    def load(*args, **kwargs):
        tokenizer, model, image_processor, context_len = loader(*args, **kwargs)
        tiles = tile_arguments(image_processor, image_file, model) if image_file else {}
        model.generate = bind_model_inputs(model.generate, model, molecule_fp, tiles, processed, refused)
        loaded["model"] = model
        return tokenizer, model, image_processor, context_len

    host_module.load_pretrained_model = load
    try:
        with keeping_processed_images(host_module, processed), \
                refusing_long_texts(host_module, lambda: loaded.get("model"), refused):
            yield
    finally:
        host_module.load_pretrained_model = loader


@contextlib.contextmanager
def keeping_processed_images(host_module, processed: dict):
    """While active, `host_module.process_images` (the host script's name for it) keeps its
    last output in `processed["images"]`: the pixels before the script's float16 cast, for
    `unrounded`. The name is restored on exit; a module without it is left alone."""
    process = getattr(host_module, "process_images", None)
    if process is None:
        yield
        return

    def keep(*args, **kwargs):
        processed["images"] = process(*args, **kwargs)
        return processed["images"]

    host_module.process_images = keep
    try:
        yield
    finally:
        host_module.process_images = process


@contextlib.contextmanager
def refusing_long_texts(host_module, model_of, refused: list):
    """While active, `host_module.tokenizer_image_token` (the host script's name for it) does
    not tokenise a prompt whose text alone must take more tokens than the context of the
    model `model_of()` returns (`text_past_context`: never one that fits): it returns no
    token ids and appends the PromptTooLong to `refused`, which the bound `generate` raises
    in its place, so the tool says it as the model's own (was: the prompt was tokenised
    whole first, minutes for a 50 MB question). Restored on exit; a module without the
    name is left alone."""
    tokenize = getattr(host_module, "tokenizer_image_token", None)
    if tokenize is None:
        yield
        return

    def checked(prompt, tokenizer, *args, **kwargs):
        from deepmolm_plugin.model.llava_qwen2 import trained_context
        from deepmolm_plugin.model.prompt_length import text_past_context

        refused.clear()  # a refusal is the prompt's being tokenised now, never an earlier one's

        model = model_of()
        refusal = text_past_context(tokenizer, prompt, None if model is None else trained_context(model.config))
        if refusal is None:
            return tokenize(prompt, tokenizer, *args, **kwargs)
        refused.append(refusal)
        import torch

        # its signature: (prompt, tokenizer, image_token_index, return_tensors)
        tensors = kwargs.get("return_tensors", args[1] if len(args) > 1 else None)
        return torch.zeros(0, dtype=torch.long) if tensors == "pt" else []

    host_module.tokenizer_image_token = checked
    try:
        yield
    finally:
        host_module.tokenizer_image_token = tokenize


def readable_image(path: str, option: str, config=None) -> None:
    """The image decodes as the image processor reads it (not an image, truncated, an
    animation...), the host's own `convert("RGB")` sees the same picture (not a
    transparent or 16-bit file it would read as black or white), and the processor of the
    model with `config` can view it (`check_model_views`): a UsageError now, not a
    traceback once the model is loaded, nor an answer about another picture."""
    from deepmolm_plugin.encoder.image_processor import check_host_readable
    from deepmolm_plugin.encoder.tower import check_model_views

    try:
        check_host_readable(path)
        if config is not None:
            check_model_views(path, config)
    except (ValueError, OSError) as e:
        raise usage.UsageError(f"{option} {path}: {e}") from e


def refuse_image_placeholder(host_input):
    """The host CLI's `input`, asking again when a question holds the image placeholder (the
    host would add a second image slot for the one image and fail with an IndexError), a
    control token, bytes that are not UTF-8, or nothing but white space and invisible
    characters (`prompts.blank`: it was sent to the model and answered). An empty line goes
    through: the host ends the chat on it. A Windows line end's `\r` (questions piped from a CRLF file) is not part of the question:
    it went into the prompt, a token the model never saw in training; nor is the white space
    around a question (stripped, as the GUI does and training does to the first question)."""
    from deepmolm_plugin.data.prompts import empty_question, question_problem

    @functools.wraps(host_input)
    def ask(prompt=""):
        while True:
            text = host_input(prompt)
            text = text[:-1] if text.endswith("\r") else text
            if text == "":  # an empty line ends the chat (the host's "exit..."), as Ctrl-D does
                return text
            # emptiness too (white space and invisible characters), the rule the GUI uses; was a strip()
            # check here, which kept U+200B & co., so those questions were answered
            problem = empty_question(text) or question_problem(text)
            if not problem:
                # without the white space around it, as the GUI sends a question and as training
                # strips the first, image turn (prompts.trained_question_text): "  What is it?  "
                # went in with its spaces, tokens the model never saw there
                return text.strip()
            print(f"error: the question {problem}", file=sys.stderr)

    return ask


@contextlib.contextmanager
def replies_as_text(host_module):
    """While active, the conversations `host_module` makes from its `conv_templates` build
    their prompts from `history_messages` (the stored history is unchanged). Restored on
    exit."""
    import dataclasses

    from llava.conversation import Conversation

    from deepmolm_plugin.data.prompts import history_messages

    class HistoryConversation(Conversation):
        def get_prompt(self):
            stored = self.messages
            self.messages = history_messages(stored, self.roles)
            try:
                return super().get_prompt()
            finally:
                self.messages = stored

        def copy(self):
            fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(Conversation)}
            return HistoryConversation(**dict(fields, messages=[[x, y] for x, y in self.messages]))

    templates = host_module.conv_templates
    host_module.conv_templates = {name: HistoryConversation(**{f.name: getattr(conv, f.name)
                                                               for f in dataclasses.fields(Conversation)})
                                  for name, conv in templates.items()}
    try:
        yield
    finally:
        host_module.conv_templates = templates


# A paste reaches the terminal in one write (a long one in chunks milliseconds apart): its later
# lines are waiting when the first is read. A person types the next line long after this.
PASTE_GAP_S = 0.05


def terminal_fd(stream) -> Optional[int]:
    """The file descriptor of `stream` when it is a terminal (POSIX), else None."""
    if os.name != "posix" or stream is None or not stream.isatty():
        return None
    return stream.fileno()


@contextlib.contextmanager
def noncanonical(fd: int):
    """Terminal `fd` in non-canonical mode (no line editing; reads return what is there) while
    active, its settings restored in `finally` whatever happens (Ctrl-C: ISIG stays on, so it
    still raises KeyboardInterrupt). Linux hands out the line being edited once canonical mode
    is off: a paste's last line without a line end is read too."""
    import termios

    saved = termios.tcgetattr(fd)
    changed = list(saved)
    changed[3] = saved[3] & ~termios.ICANON  # lflag
    changed[6] = list(saved[6])
    changed[6][termios.VMIN], changed[6][termios.VTIME] = 0, 0
    termios.tcsetattr(fd, termios.TCSANOW, changed)
    try:
        yield saved[6][termios.VEOF]
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


def waiting_input(fd: int, gap: float = PASTE_GAP_S) -> tuple:
    """(bytes, eof): what is waiting on terminal `fd` now, and what follows it within `gap`
    seconds, an unfinished last line included (`noncanonical`; was: canonical mode, where the
    last line of a paste without a final line end stayed in the terminal's edit buffer and
    became a question of its own); eof when the terminal's end-of-input key (Ctrl-D) is among
    them (what follows it is dropped, as the chat ends).

    Read with os.read, not sys.stdin: the host's input() leaves nothing of a terminal in
    Python's buffers (a terminal in canonical mode hands out one line per read, and with GNU
    readline, bytes one at a time), so what select() sees waiting on the fd is all there is."""
    import select

    chunks = []
    with noncanonical(fd) as end_key:
        while select.select([fd], [], [], gap)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:  # end of input (the terminal closed)
                return b"".join(chunks), True
            # non-canonical: Ctrl-D is a byte, not an empty read: its own if it came now, a 0 byte
            # if it came while the terminal was canonical (Linux stores it so, as a line end)
            ends = [chunk.index(key) for key in (end_key, b"\0") if key and key in chunk]
            if ends:
                chunks.append(chunk[:min(ends)])
                return b"".join(chunks), True
            chunks.append(chunk)
    return b"".join(chunks), False


def joining_pasted_lines(host_input):
    """The host CLI's `input`, for a terminal: a question pasted as several lines is one
    question, its lines joined with newlines (`waiting_input`: the lines after the first were
    already waiting when the first was read). Was: each line a question of its own, each
    answered and kept in the history, the screen showing one question and then empty
    `USER: ASSISTANT:` prompts.

    A paste without a final line end (the usual copy from a browser or editor) is sent when
    the user presses Enter, as a one-line question is: its last line is read with the rest,
    and what is typed before Enter is added to it (was: the lines before it were asked at
    once, and the last line as a second question). That last line can no longer be edited
    with Backspace: it was already read.

    Piped or redirected stdin (not a terminal) is read as before, one line one question: a
    file of questions is asked line by line. A Ctrl-D among the pasted lines ends the chat
    after this question, as at the prompt."""
    ended = []

    @functools.wraps(host_input)
    def ask(prompt=""):
        if ended:
            raise EOFError  # the host ends the chat (its "exit...")
        first = host_input(prompt)
        fd = terminal_fd(sys.stdin)
        if fd is None:
            return first
        data, eof = waiting_input(fd)
        if eof:
            ended.append(True)
        # surrogateescape: bytes that are not UTF-8 are then refused by question_problem, naming where
        rest = data.decode(sys.stdin.encoding or "utf-8", "surrogateescape")
        # \r: a terminal without ICRNL (raw mode, as GNU readline sets it while it reads) keeps Enter's \r
        rest = rest.replace("\r\n", "\n").replace("\r", "\n")
        if not rest.strip():  # nothing more, or only line ends: the first line as typed ("" ends the chat)
            return first
        if not rest.endswith("\n") and not eof:
            rest += finished_line(host_input, ended)
        return first + "\n" + rest.rstrip("\n")

    return ask


def finished_line(host_input, ended: list) -> str:
    """The rest of a pasted last line that had no line end: what the user types before Enter
    ("" for Enter alone). Ctrl-D there sends the question and ends the chat after it."""
    try:
        return host_input("")
    except EOFError:
        ended.append(True)
        return ""


@contextlib.contextmanager
def questions_without_placeholder(host_module):
    """While active, `host_module`'s `input` name (the patched display input, or the
    builtin) joins a question pasted in a terminal as several lines (`joining_pasted_lines`)
    and refuses questions holding the image placeholder (`refuse_image_placeholder`).
    Restored on exit."""
    import builtins

    had = "input" in host_module.__dict__
    saved = host_module.__dict__.get("input", builtins.input)
    host_module.input = refuse_image_placeholder(joining_pasted_lines(saved))
    try:
        yield
    finally:
        if had:
            host_module.input = saved
        else:
            del host_module.input


def check_arguments(args: argparse.Namespace) -> None:
    """Paths and numbers, before anything heavy loads: a UsageError names the first problem."""
    usage.model_folder(args.model_path, "--model-path")
    if args.model_base is not None:
        usage.model_folder(args.model_base, "--model-base")
    usage.device(args.device)
    if args.image_file is not None:
        usage.existing_file(args.image_file, "--image-file")
    if args.structure is not None:  # a folder is named as one (it was "no such file")
        usage.existing_file(args.structure, "--structure")
    usage.at_least(args.max_new_tokens, "--max-new-tokens")
    usage.sampling_temperature(args.temperature)
    if args.temperature > MAX_TEMPERATURE:  # was: taken; 100 wrote random tokens, as the GUI refuses it
        raise usage.UsageError(f"--temperature must be at most {MAX_TEMPERATURE} (as in the GUI: past it the "
                               f"replies are random tokens), got {args.temperature:g}")
    if args.smiles is not None and not args.smiles.strip():  # was "molecule None: no molecule field"
        raise usage.UsageError("--smiles: empty SMILES")


@usage.interrupted_by_sigterm  # kill, a job scheduler, `timeout`: as Ctrl-C (it ended silently, 143)
def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    has_molecule = args.smiles is not None or args.structure is not None
    if args.image_file is None and not has_molecule:
        parser.error("give --image-file, or a molecule (--smiles / --structure) to draw")
    usage.checked(parser, check_arguments, args)
    depiction = usage.checked(parser, lambda a: checkpoint_depiction(a.model_path, a.conformer_policy), args)
    args.conformer_policy = depiction.policy
    resolver = molecule_resolver(args.conformer_policy, args.model_path)
    if has_molecule:  # before the host and the model load: a bad molecule fails in seconds
        fields, name = molecule_fields(args.smiles, args.structure), usage.shortened(args.smiles or args.structure)
        try:  # every note the resolver kept, as the GUI's status box lists them all (was: only "more than one
            # molecule"; a radical, PDB altlocs, the MMFF94 fallback, arbitrary fragment placement went unsaid)
            for note in resolver.molecule(fields, name).notes:
                print(f"note: {note}", file=sys.stderr)
        except ValueError as e:  # an InputError naming the molecule and the reason
            usage.fail(parser.prog, f"{'--smiles' if args.smiles is not None else '--structure'}: {e}")

    import deepmolm_plugin

    deepmolm_plugin.register()
    import llava.serve.cli as host_cli
    from llava.mm_utils import get_model_name_from_path

    from deepmolm_plugin.model.loading import (QWEN2_TYPES, QWEN2_VL_TYPES, launcher_dtype, loaded_config,
                                               loading_in_dtype, read_config, torch_init_kept,
                                               unsupported_load_options)
    from deepmolm_plugin.molecule.inputs import OutputWriteError
    from deepmolm_plugin.molecule_fp import FingerprintSettings
    from deepmolm_plugin.patches import cli_display, cli_reply
    from deepmolm_plugin.tensor_files import CheckpointError
    from deepmolm_plugin.patches.conversation_qwen2 import check_chat_conv_mode, conv_mode_note, resolve_conv_mode

    cli_reply.apply()
    cli_display.apply()
    try:  # a config.json transformers cannot read: one line naming it (was AutoConfig's traceback)
        config = read_config(args.model_path)
        loaded = loaded_config(args.model_path)  # llm/'s in a VILA-style folder: what the loader reads
        model_type = loaded.model_type
    except CheckpointError as e:
        raise SystemExit(f"error: {e}") from e
    usage.checked(parser, lambda a: usage.vision_model(config, a.model_path, "--model-path"), args)
    if model_type in QWEN2_TYPES + QWEN2_VL_TYPES:  # loaded by our loader
        unsupported = unsupported_load_options(args.model_base, args.load_8bit, args.load_4bit)
        if unsupported:
            parser.error(unsupported)
    # "auto"'s choice is said here, naming the dtype the model was trained in where it differs
    usage.checked(parser, lambda a: launcher_dtype(a.dtype, model_type, a.device, loaded), args)
    conv_mode_is_ours = args.conv_mode == "auto"
    try:  # `plain` (stage 1, no turns) cannot chat: was a TypeError traceback on the second question
        args.conv_mode = check_chat_conv_mode(
            resolve_conv_mode(args.conv_mode, config, get_model_name_from_path(args.model_path)), config)
    except ValueError as e:  # one line, as the GUI says it (was argparse's usage line too)
        usage.fail(parser.prog, f"--conv-mode: {e}")
    note = conv_mode_note(args.conv_mode, config)  # an explicit mode other than the trained one
    if note:
        print(note, file=sys.stderr)
    args.max_new_tokens = new_tokens_for(args.max_new_tokens, config)
    uses_molecules = projector_uses_molecules(config)
    if uses_molecules and not has_molecule:
        parser.error(
            f"{args.model_path} has a {config.mm_projector_type!r} projector, which needs the molecule: "
            "give --smiles or --structure (the image alone is not enough)"
        )

    if args.image_file is not None:  # after the model's own needs: those say more
        usage.checked(parser, lambda a: readable_image(a.image_file, "--image-file", config), args)

    if has_molecule and not uses_molecules:
        print(f"note: {args.model_path}'s projector does not use molecules; the molecule only "
              "provides the depiction", file=sys.stderr)

    with contextlib.ExitStack() as stack:
        molecule_fp = None
        if has_molecule:
            resolver.fp = FingerprintSettings.from_config(config)
            resolver.render_size = depiction.render_size
            resolver.render_folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="deepmolm_cli_"))
            if args.image_file is not None:
                fields["image"] = args.image_file
            try:  # the conformer made above is reused (the resolver keeps it)
                resolved = resolver.resolve(fields, name, fingerprint=uses_molecules)
            except OutputWriteError as e:  # the depiction cannot be written to the temporary folder (a full disk):
                # the machine's problem, not the molecule's (was "--smiles: cannot write ...", exit 2)
                raise SystemExit(f"{parser.prog}: error: {e}") from e
            except ValueError as e:  # an InputError naming the molecule and the reason; still before the
                # model loads, so a usage error as above (a 2D file under --conformer-policy keep was exit 1)
                usage.fail(parser.prog, f"{'--smiles' if args.smiles is not None else '--structure'}: {e}")
            args.image_file = resolved.image
            if uses_molecules:
                molecule_fp = resolved.molecule_fp.unsqueeze(0)  # (1, atoms, levels)
                # --image-file is the picture, the molecule gives the tokens: said (was: not a word)
                note = resolver.given_image_note(fields, name)
                if note:
                    print(f"note: {note}", file=sys.stderr)
        stack.enter_context(loader_binding_inputs(host_cli, molecule_fp, args.image_file))
        stack.enter_context(loading_in_dtype(args.dtype))  # the host passes the loader no dtype
        stack.enter_context(torch_init_kept())  # the host's disable_torch_init, undone on leaving
        stack.enter_context(questions_without_placeholder(host_cli))
        stack.enter_context(replies_as_text(host_cli))
        if conv_mode_is_ours:
            stack.enter_context(cli_display.launcher_chose_conv_mode(args.conv_mode))
        try:
            host_cli.main(args)
        except CheckpointError as e:  # the loader's words for the folder
            raise SystemExit(f"error: {e}") from e
        except KeyboardInterrupt:  # Ctrl-C at the prompt or mid-reply ends the chat, as Ctrl-D does
            print("\ninterrupted", file=sys.stderr)
            raise SystemExit(130) from None

