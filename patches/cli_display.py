"""The host chat CLI shows raw template roles: with ChatML the user sees `<|im_start|>user\\n: `.

`llava.serve.cli.main` prompts with `input(f"{roles[0]}: ")` and announces the reply with
`print(f"{roles[1]}: ", end="")`, where `roles` are the template's own role strings, the
ones it also builds prompts from. For the `qwen2` template (and the host's `chatml_direct`)
those are `<|im_start|>user\\n` / `<|im_start|>assistant\\n`, so the screen shows ChatML
markup and a line break inside every prompt.

Fix, display only: `apply()` gives the host CLI module its own `input` and `print` (module
globals, which its `main` finds before the builtins) that show these two prompts as
`USER: ` / `ASSISTANT: `. The template, its roles and every prompt the model sees are
unchanged (training and inference still build byte-identical prompts); anything else
the CLI prints (`--debug` dicts, `exit...`, other roles) passes through as is.

Also: the host infers a template from the model *name* and, when `--conv-mode` differs,
prints `[WARNING] the auto inferred conversation mode is llava_v0, while --conv-mode is
qwen2, using qwen2`. Our launcher resolves `--conv-mode auto` itself, from the model's
config; `launcher_chose_conv_mode(mode)` (launcher-scoped) drops that one message, for
exactly that mode, while it is active. A mode the user named keeps the host's warning.

Guarded: the host's `main` must contain the three lines this relies on, verbatim.
"""

from __future__ import annotations

import builtins
import contextlib
import inspect
from typing import Optional

from . import _host
from .conversation_qwen2 import QWEN2_TEMPLATE

PATCH = "cli_display"
# Template role -> what the chat shows (ChatML roles of the qwen2 / chatml_direct templates).
DISPLAY_ROLES = dict(zip(QWEN2_TEMPLATE.roles, ("USER", "ASSISTANT")))
HOST_CONV_MODE_WARNING = "[WARNING] the auto inferred conversation mode is {}, while `--conv-mode` is {}, using {}"
_HOST_LINES = (
    'input(f"{roles[0]}: ")',
    'print(f"{roles[1]}: ", end="")',
    HOST_CONV_MODE_WARNING,
)

_launcher_conv_mode: Optional[str] = None


def display_prompt(text):
    """`f"{role}: "` with a known template role shown by its display name; anything else as is."""
    if isinstance(text, str) and text.endswith(": ") and text[:-2] in DISPLAY_ROLES:
        return f"{DISPLAY_ROLES[text[:-2]]}: "
    return text


def _is_launcher_conv_mode_warning(text) -> bool:
    mode = _launcher_conv_mode
    if mode is None or not isinstance(text, str):
        return False
    head, tail = HOST_CONV_MODE_WARNING.format("\0", mode, mode).split("\0")
    return text.startswith(head) and text.endswith(tail)


def _display_input(prompt=""):
    return builtins.input(display_prompt(prompt))


def _display_print(*args, **kwargs):
    if len(args) == 1:
        if _is_launcher_conv_mode_warning(args[0]):
            return
        args = (display_prompt(args[0]),)
    builtins.print(*args, **kwargs)


def _check_host(host_cli) -> None:
    _host.require_host(PATCH)
    try:
        source = inspect.getsource(host_cli.main)
    except (OSError, TypeError) as e:
        raise RuntimeError(f"{PATCH}: cannot read llava.serve.cli.main to check it ({e})") from e
    for line in _HOST_LINES:
        if line not in source:
            raise RuntimeError(f"{PATCH}: llava.serve.cli.main no longer contains {line}; check the patch")
    for name, ours in (("input", _display_input), ("print", _display_print)):
        if host_cli.__dict__.get(name, ours) is not ours:
            raise RuntimeError(f"{PATCH}: llava.serve.cli already defines {name!r}")


def apply() -> None:
    import llava.serve.cli as host_cli

    _check_host(host_cli)

    def _apply():
        host_cli.input = _display_input
        host_cli.print = _display_print

    _host.apply_once(host_cli, PATCH, _apply)


@contextlib.contextmanager
def launcher_chose_conv_mode(mode: str):
    """While active, the host CLI's inferred-mode warning for `mode` is not printed (the
    launcher resolved `--conv-mode auto` to `mode` itself). Needs `apply()`."""
    global _launcher_conv_mode
    saved, _launcher_conv_mode = _launcher_conv_mode, mode
    try:
        yield
    finally:
        _launcher_conv_mode = saved
