"""`python -m deepmolm_plugin.gui` (console script `deepmolm-gui`): DeepMoLM Chat in a browser.

    python -m deepmolm_plugin.gui --model-path CKPT [--host 127.0.0.1 --port 7860]

Loads the checkpoint once (the host's `load_pretrained_model`; CUDA when there is one,
else CPU), then serves the page until interrupted. Nothing is fetched from the internet:
gradio serves its own scripts, styles and fonts from the installed package, its usage
analytics are off, and no share link is made. Bad options (no such --model-path folder,
a port out of range, a --conv-mode that cannot chat such as `plain`) are one line on stderr
and exit status 2, before the model loads.
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: a Ctrl-C while they load is one line too
    from deepmolm_plugin.entry_points import run_module

    run_module("deepmolm_plugin.gui.__main__", "python -m deepmolm_plugin.gui")

import argparse
import os
import sys

from .. import usage

from ..cli import CONFORMER_POLICIES, add_dtype_option, checkpoint_depiction


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepmolm-gui", formatter_class=usage.HelpFormatter,
                                     description="DeepMoLM Chat: chat about a molecule in the browser, and see "
                                                 "what the model sees and where it looks.")
    parser.add_argument("--model-path", required=True, type=usage.user_path, help="a saved DeepMoLM checkpoint folder")
    parser.add_argument("--model-base", default=None, type=usage.user_path)
    parser.add_argument("--device", default="cuda", help="falls back to cpu without CUDA")
    parser.add_argument("--conv-mode", default="auto", help="conversation template; auto: from the model's config")
    parser.add_argument("--conformer-policy", default=None, choices=CONFORMER_POLICIES,
                        help="3D policy for molecules (see deepmolm_plugin.molecule); default: the one the model "
                             "was trained with (its config), else auto")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    add_dtype_option(parser)  # as the chat CLI and model_vqa (was: always auto, bf16 on a CPU with native bf16)
    return parser


def check_arguments(args: argparse.Namespace) -> None:
    usage.model_folder(args.model_path, "--model-path")
    if args.model_base is not None:
        usage.model_folder(args.model_base, "--model-base")
    usage.device(args.device)
    if not 1 <= args.port <= 65535:
        raise usage.UsageError(f"--port must be in 1..65535, got {args.port}")
    check_port_free(args.host, args.port)


def check_port_free(host: str, port: int) -> None:
    """UsageError when nothing could listen on host:port: a port in use (or an address
    that is not this machine's) ended in gradio's OSError traceback, after the model had
    loaded."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise usage.UsageError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError as e:
            raise usage.UsageError(f"--port {port}: cannot listen on {host}:{port} ({e.strerror}); is another "
                                   "server using it? choose another --port") from None


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    usage.checked(parser, check_arguments, args)
    # training's 3D policy, render size and atom cap (or the given policy), with their notes, before the model
    # loads; the session takes them as resolved (`ChatSession`)
    depiction = usage.checked(parser, lambda a: checkpoint_depiction(a.model_path, a.conformer_policy), args)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read when gradio is imported: no calls home

    import deepmolm_plugin

    deepmolm_plugin.register()
    from llava.mm_utils import get_model_name_from_path

    from ..patches.conversation_qwen2 import check_chat_conv_mode, conv_mode_note, resolve_conv_mode
    from ..tensor_files import CheckpointError
    from .app import build_app, launch_kwargs
    from .session import ChatSession

    from ..model.loading import (QWEN2_TYPES, QWEN2_VL_TYPES, launcher_dtype, loaded_config,
                                 read_config, unsupported_load_options)

    try:  # a config.json transformers cannot read: one line naming it, as the chat CLI says it
        config = read_config(args.model_path)
        loaded = loaded_config(args.model_path)  # llm/'s in a VILA-style folder: what the loader reads
        model_type = loaded.model_type
    except CheckpointError as e:
        raise SystemExit(f"error: {e}") from e
    usage.checked(parser, lambda a: usage.vision_model(config, a.model_path, "--model-path"), args)
    if model_type in QWEN2_TYPES + QWEN2_VL_TYPES:  # loaded by our loader, as in the chat CLI
        unsupported = unsupported_load_options(args.model_base, False, False)
        if unsupported:  # --model-base: was a NotImplementedError traceback from the loader
            usage.fail(parser.prog, f"--model-base: {unsupported}")
    # "auto"'s choice is said here, naming the dtype the model was trained in where it differs
    usage.checked(parser, lambda a: launcher_dtype(a.dtype, model_type, a.device, loaded), args)
    try:
        conv_mode = check_chat_conv_mode(
            resolve_conv_mode(args.conv_mode, config, get_model_name_from_path(args.model_path)), config)
    except ValueError as e:  # an unknown --conv-mode, named with the known ones, or `plain` (cannot chat: was a
        # TypeError on the second question)
        usage.fail(parser.prog, f"--conv-mode: {e}")
    note = conv_mode_note(conv_mode, config)  # an explicit mode other than the trained one
    if note:
        print(f"{parser.prog}: {note}", file=sys.stderr, flush=True)
    from ..tensor_files import CheckpointError

    try:
        session = ChatSession.load(args.model_path, model_base=args.model_base, device=args.device,
                                   conv_mode=conv_mode, depiction=depiction, dtype=args.dtype)
    except CheckpointError as e:  # the checkpoint folder's own problem, named by the loader (as the chat CLI)
        raise SystemExit(f"{parser.prog}: error: {e}") from None
    session.start_workers()  # molecules of different tabs prepared side by side (`ChatSession`)
    print(f"{parser.prog}: {session.describe()}", flush=True)
    try:
        build_app(session).queue().launch(**launch_kwargs(args.host, args.port))
    finally:
        session.close()
