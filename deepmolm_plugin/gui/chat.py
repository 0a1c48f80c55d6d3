"""The chat: prompts from the host's conversation template, replies streamed token by token.

A conversation is a list of (question, reply) turns about one molecule. Each turn the
whole prompt is rendered again from the template (`llava.conversation.conv_templates`,
`qwen2` for DeepMoLM checkpoints), the first question prefixed with the image token,
exactly as training and the chat CLI build it; stored replies are the text the model
produced (special tokens dropped), so later turns see the history as it was said.

`generate` gets the molecule's `molecule_fp` (1, atoms, levels) as its explicit argument,
the image inputs in the model's dtype (and the tiles in tiles mode), and a transformers
`TextIteratorStreamer`; it runs in a worker thread while the caller yields the text.

A prompt longer than the model's context (`tokenizer_model_max_length` in its config, the
training `--model_max_length`), counting the image's LLM positions, is a ChatRefusal before
`generate` (one whose text alone is too long for it, before it is tokenised): the host's
`prepare_inputs_labels_for_multimodal` silently cuts the sequence at that length, from the
end, so the model would continue the history with the new question and the assistant's
turn cut off. The reply then gets at most the positions the context leaves after the
prompt: the model's `generate` lowers max new tokens there, for the chat CLI and model_vqa
alike (was: up to the whole context more, past what it was trained on).
A reply that stopped there gets a note the page shows under it (`context_note`), decided as
model_vqa decides its `metadata.capped` (`model.stopping.stopped_at_cap`; was: no word on the page, where
the chat CLI and model_vqa said it).
"""

from __future__ import annotations

import threading
from typing import Iterator, List, Optional, Sequence, Tuple

from .. import usage
from ..data.prompts import history_messages, question_problem
from ..model.stopping import end_ids, stopped_at_cap

Turn = Tuple[str, Optional[str]]  # (question, reply or None while it is being written)


class ChatRefusal(ValueError):
    """A question the chat does not send (the placeholder in it, a setting out of range, a
    conversation longer than the context): the page shows the message, not a traceback."""


def build_prompt(conv_mode: str, turns: Sequence[Turn], im_start_end: bool = False) -> str:
    """The template's prompt for `turns`, the image before the first question; the last
    reply is None (the model's turn). Earlier turns go in as the chat CLI puts them
    (`history_messages`): a question the model answered with nothing is left out, since the
    template leaves its empty turn open and the next question landed inside the reply."""
    from llava.constants import DEFAULT_IM_END_TOKEN, DEFAULT_IM_START_TOKEN, DEFAULT_IMAGE_TOKEN
    from llava.conversation import conv_templates

    image = DEFAULT_IM_START_TOKEN + DEFAULT_IMAGE_TOKEN + DEFAULT_IM_END_TOKEN if im_start_end else DEFAULT_IMAGE_TOKEN
    conv = conv_templates[conv_mode].copy()
    messages = []
    for k, (question, reply) in enumerate(turns):
        problem = question_problem(question)
        if problem:
            raise ChatRefusal(f"question {k + 1} {problem}")
        messages += [[conv.roles[0], f"{image}\n{question}" if k == 0 else question], [conv.roles[1], reply]]
    for role, text in history_messages(messages, conv.roles):
        conv.append_message(role, text)
    return conv.get_prompt()


def stop_string(conv_mode: str) -> str:
    from llava.conversation import SeparatorStyle, conv_templates

    conv = conv_templates[conv_mode]
    return conv.sep if conv.sep_style != SeparatorStyle.TWO else conv.sep2


MAX_NEW_TOKENS = 1024  # the slider's end, for a model whose context is longer (or unknown)
MAX_TEMPERATURE = 1.5  # the Temperature slider's end, and the page API's limit


def model_context(config) -> Optional[int]:
    """The model's context in tokens (`tokenizer_model_max_length` of its config), or None
    where the config states none usable: read as the model reads it (`trained_context`)."""
    from ..model.llava_qwen2 import trained_context

    return trained_context(config)


def max_new_tokens_limit(session) -> int:
    """The most new tokens a reply may ask for (the Max-new-tokens slider's end, and the
    page API's limit): MAX_NEW_TOKENS, or the model's context (`model_context`) when
    shorter: no reply can be longer than it."""
    context = model_context(getattr(session, "config", None))
    return MAX_NEW_TOKENS if context is None else min(MAX_NEW_TOKENS, context)


def reply_settings(temperature, max_new_tokens) -> tuple:
    """(temperature, max new tokens) as numbers. What no slider sends but the page's API
    takes (None, text, NaN, inf, a fraction of a token, past the temperature slider's end)
    is a ChatRefusal naming it, not Python's TypeError / ValueError as a server traceback."""
    import math

    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        # as max new tokens: true was the temperature 1.0 and the text "0.5" 0.5
        raise ChatRefusal(f"temperature must be a number, got {temperature!r}")
    temperature = float(temperature)
    if not math.isfinite(temperature):
        raise ChatRefusal(f"temperature must be a finite number, got {temperature}")
    if temperature > MAX_TEMPERATURE:  # the slider stops there; gradio's own check is off (the ask event's
        # preprocess=False, so that text and None reach the checks above)
        raise ChatRefusal(f"temperature must be at most {MAX_TEMPERATURE} here, got {temperature:g}")
    if (isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, float))
            or not math.isfinite(max_new_tokens) or max_new_tokens != int(max_new_tokens)):
        raise ChatRefusal(f"max new tokens must be a whole number, got {max_new_tokens!r}")
    return temperature, int(max_new_tokens)


def sampling_kwargs(temperature: float, max_new_tokens: int) -> dict:
    """Greedy at temperature 0 (without the sampling-only flags transformers would warn
    about), sampling otherwise."""
    if max_new_tokens < 1:
        raise ChatRefusal(f"max new tokens must be at least 1, got {max_new_tokens}")
    problem = usage.temperature_problem(temperature)
    if problem:  # 1e-39 came through the page's API and ended in a RuntimeError from the sampler
        raise ChatRefusal(f"temperature {problem}")
    if temperature == 0:
        return {"do_sample": False, "max_new_tokens": int(max_new_tokens)}
    return {"do_sample": True, "temperature": float(temperature), "max_new_tokens": int(max_new_tokens)}


def image_positions(image_processor, views) -> int:
    """LLM positions of the image inputs the model gets (`views`: the global view the host's
    `process_images` made, the tiles' grid in tiles mode), by the projector's own layout
    (`num_llm_positions_for_grid`), as the model's `check_prompt_fits` counts the encoded
    features for the chat CLI and eval. Counted from the raw image instead, an image the
    host's `pad` squares (1 x 5000 px) was refused by the processor's own aspect check, a
    ValueError on every question."""
    from ..encoder.image_processor import num_llm_positions_for_grid

    return num_llm_positions_for_grid(views.images.shape[-1], image_processor.tile_size, views.tile_grid,
                                      image_processor.token_stride)


def check_context(session, molecule, input_ids) -> None:
    """ChatRefusal when the prompt takes more LLM positions than the model's context (the
    host would cut it from the end: module docstring). No limit in the config, no cut."""
    from llava.constants import IMAGE_TOKEN_INDEX

    limit = model_context(session.model.config)  # the one reader of the trained context
    if limit is None:
        return
    text = int((input_ids != IMAGE_TOKEN_INDEX).sum())
    image = image_positions(session.image_processor, molecule.views)
    if text + image > limit:
        raise ChatRefusal(f"the conversation is {text + image} positions long ({text} text tokens + {image} for the "
                         f"image), more than this model's context of {limit}: the end, with your question, would "
                         "be cut off. Clear the chat or ask a shorter question.")


def check_text_length(session, prompt: str) -> None:
    """ChatRefusal, before `prompt` is tokenised, when its text alone must take more tokens
    than the model's context (`text_past_context`, which never refuses one that fits; was:
    tokenised whole first, minutes for a 50 MB question); else `check_context` counts."""
    from ..model.prompt_length import text_past_context

    refusal = text_past_context(session.tokenizer, prompt, model_context(session.model.config))
    if refusal is not None:
        raise ChatRefusal(str(refusal)) from refusal


def context_note(new_tokens: int, context: int) -> str:
    """The note under a reply that stopped at the end of the model's context (the model's
    `on_context_end`: `new_tokens` positions were left for it of `context`)."""
    return (f"reply stopped at the model's context ({context} tokens: {context - new_tokens} for the image and the "
            f"conversation, {new_tokens} for this reply); it may be cut short. Clear the chat or ask a shorter "
            "question for a longer reply.")


def stream_reply(session, molecule, turns: List[Turn], temperature: float, max_new_tokens: int,
                 notes: Optional[List[str]] = None) -> Iterator[str]:
    """Yield the reply to the last turn as it grows (the whole text so far each time).

    session: a `ChatSession` (model, tokenizer, template, lock); molecule: the
    `LoadedMolecule` the conversation is about; notes: a list that gets the note on the
    finished reply, for the page to show under it: the reply stopped at the end of the
    model's context (`context_note`).
    """
    import torch
    from llava.constants import IMAGE_TOKEN_INDEX
    from llava.mm_utils import KeywordsStoppingCriteria, tokenizer_image_token
    from transformers import StoppingCriteria, TextIteratorStreamer

    cancelled = threading.Event()

    class StopWhenCancelled(StoppingCriteria):
        """Ends generation once the page has stopped reading the reply (tab closed, reload)."""

        def __call__(self, ids, scores, **kwargs):
            return torch.full((ids.shape[0],), cancelled.is_set(), dtype=torch.bool, device=ids.device)

    model, tokenizer = session.model, session.tokenizer
    prompt = build_prompt(session.conv_mode, turns, im_start_end=bool(getattr(model.config, "mm_use_im_start_end",
                                                                                False)))
    check_text_length(session, prompt)
    input_ids = tokenizer_image_token(prompt, tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt")
    check_context(session, molecule, input_ids)
    limit = max_new_tokens_limit(session)
    if max_new_tokens > limit:  # the slider stops there; the page's API took 10**9
        raise ChatRefusal(f"max new tokens must be at most {limit} here, got {max_new_tokens}")
    input_ids = input_ids.unsqueeze(0).to(model.device)  # (1, T)
    # `generate` returns the new tokens only (the prompt goes in as embeddings), so the
    # host's stop criterion counts from an empty prompt.
    stopping = KeywordsStoppingCriteria([stop_string(session.conv_mode)], tokenizer, input_ids[:, :0])
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
    kwargs = dict(
        molecule.views.generate_kwargs(model.device, model.dtype),
        molecule_fp=molecule.batch_fp(model.device),  # (1, atoms, levels) or None (image-only projector)
        streamer=streamer, use_cache=True, stopping_criteria=[stopping, StopWhenCancelled()],
        **sampling_kwargs(temperature, max_new_tokens),
    )
    from ..model.llava_qwen2 import takes_context_end

    context_end: List[tuple] = []  # (new tokens the context left, context) when the reply ran into its end
    if takes_context_end(model.generate):
        kwargs["on_context_end"] = lambda new_tokens, context: context_end.append((new_tokens, context))
    failure: List[BaseException] = []
    output: list = []  # generate's new tokens (1, N)

    def run() -> None:
        try:
            with torch.inference_mode():
                output.append(model.generate(input_ids, **kwargs))
        except BaseException as e:  # handed to the page's thread below, never swallowed
            failure.append(e)
            streamer.end()

    with session.lock:  # one generation at a time on the one model
        worker = threading.Thread(target=run, name="deepmolm-gui-generate", daemon=True)
        worker.start()
        text = ""
        try:
            for piece in streamer:
                text += piece
                yield text
        finally:  # also when the page stops listening (GeneratorExit): the model stops too
            cancelled.set()
            worker.join()
    if failure:
        from ..model.llava_qwen2 import PromptTooLong

        if isinstance(failure[0], PromptTooLong):  # the model's own count of the encoded image, should it ever
            # disagree with check_context's: said as a refusal, as check_context says it, not a server traceback
            raise ChatRefusal(str(failure[0])) from failure[0]
        raise failure[0]
    if context_end and notes is not None:
        new_tokens, context = context_end[0]
        # the model saw the room filled without an end id; the stop text (a template whose
        # separator is no special token) may still have ended the reply there
        if stopped_at_cap(output[0], output[0], new_tokens, stop_string(session.conv_mode), tokenizer,
                          end_ids(model, tokenizer)):
            notes.append(context_note(new_tokens, context))
    stop = stop_string(session.conv_mode).strip()
    if stop and text.rstrip().endswith(stop):  # a stop string that is not a special token
        yield text.rstrip()[: -len(stop)].rstrip()
