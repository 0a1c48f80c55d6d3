"""The chat CLI, tenth sweep: a question pasted into a terminal as several lines is one
question (each line was asked and answered on its own, all kept in the history); the GUI's
generation limits in the CLI (--temperature past 1.5 refused, --max-new-tokens set to the
model's context with a note; the default was twice a 256-token model's context); a
deepmolm-kflm2 results folder given as a model is named for what it is, exit 2, before any
molecule work (was transformers' "Unrecognized model", exit 1, after a conformer was built)."""

from __future__ import annotations

import ast
import json
import os
import select
import subprocess
import sys
import textwrap
import time
import types

import pytest

from host_fixtures import run_module

PASTE = b"Given this molecule,\rwhat is its logP\rand its molecular weight?\r"
PASTED = "Given this molecule,\nwhat is its logP\nand its molecular weight?"

# The host CLI's question loop (llava/serve/cli.py: input per question, "" or EOF ends it) around
# the chat CLI's own binding of `input`; "readline" as an argument loads GNU readline first (it
# reads the terminal in raw mode, one byte at a time), as a user's PYTHONSTARTUP or a debugger may.
STUB_CHAT = textwrap.dedent("""
    import sys, types
    if "readline" in sys.argv:
        import readline  # noqa: F401
    from deepmolm_plugin import cli
    host = types.ModuleType("host")
    with cli.questions_without_placeholder(host):
        while True:
            try:
                question = host.input("USER: ")
            except EOFError:
                question = ""
            if not question:
                print("exit...")
                break
            print("ASKED " + repr(question), flush=True)
""")


def _env() -> dict:
    # PYTHONPATH passed on: the subprocess imports the deepmolm_plugin under test
    return {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}


class Terminal:
    """A command run in a pseudo-terminal, as a person runs it; `send` writes what they type
    or paste (Enter is \\r, as a terminal sends it)."""

    def __init__(self, argv: list, cwd):
        import pty

        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: exec at once (no pytest code runs here)
            os.chdir(cwd)
            os.execve(argv[0], argv, _env())
        self.out = b""

    def wait_for(self, marker: bytes, count: int = 1, timeout: float = 300) -> None:
        end = time.monotonic() + timeout
        while self.out.count(marker) < count:
            if time.monotonic() > end:
                raise AssertionError(f"no {marker!r} (x{count}) on the screen:\n{self.screen()}")
            if select.select([self.fd], [], [], 0.2)[0]:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:  # the child has ended
                    data = b""
                if not data:
                    raise AssertionError(f"ended before {marker!r} (x{count}):\n{self.screen()}")
                self.out += data

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def screen(self) -> str:
        return self.out.decode("utf-8", "replace").replace("\r\n", "\n")

    def close(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


def _stub_chat(tmp_path, *extra) -> Terminal:
    script = tmp_path / "stub_chat.py"
    script.write_text(STUB_CHAT)
    return Terminal([sys.executable, str(script), *extra], tmp_path)


def _asked(screen: str) -> list:
    # piped, the prompt "USER: " has no echoed line end after it: "USER: ASKED '...'"
    return [ast.literal_eval(line.split("ASKED ", 1)[1]) for line in screen.splitlines() if "ASKED " in line]


# --- 2: a pasted multi-line question ------------------------------------------------------------
@pytest.mark.parametrize("readline", [[], ["readline"]], ids=["plain", "gnu-readline"])
def test_a_question_pasted_in_a_terminal_is_one_question(tmp_path, readline):
    # was: three questions, "Given this molecule," / "what is its logP" / "and its molecular weight?"
    chat = _stub_chat(tmp_path, *readline)
    chat.wait_for(b"USER: ")
    chat.send(PASTE)
    chat.wait_for(b"USER: ", 2)
    chat.send(b"typed alone\r")  # a line typed after it is a question of its own
    chat.wait_for(b"USER: ", 3)
    chat.send(b"\r")  # an empty line still ends the chat
    chat.wait_for(b"exit...")
    assert chat.close() == 0
    assert _asked(chat.screen()) == [PASTED, "typed alone"], chat.screen()


def test_a_paste_starting_with_an_empty_line_is_a_question_and_a_ctrl_d_in_it_ends_after_it(tmp_path):
    # a paste's leading empty line is not the empty line that ends the chat; its Ctrl-D (EOF) ends it,
    # after the question before it is asked (it was read with the paste, so the host never saw it)
    chat = _stub_chat(tmp_path)
    chat.wait_for(b"USER: ")
    chat.send(b"\rWhat is\rthis?\r\x04")
    chat.wait_for(b"exit...")
    assert chat.close() == 0
    assert _asked(chat.screen()) == ["What is\nthis?"], chat.screen()


def test_piped_questions_stay_one_per_line(tmp_path):
    # not a terminal: a file of questions is asked line by line, as before (documented)
    script = tmp_path / "stub_chat.py"
    script.write_text(STUB_CHAT)
    proc = subprocess.run([sys.executable, str(script)], input="What is it?\nAnd its formula?\n", text=True,
                          capture_output=True, env=_env(), timeout=120, check=True)
    assert _asked(proc.stdout) == ["What is it?", "And its formula?"], proc.stdout + proc.stderr


def test_the_chat_cli_asks_a_pasted_question_once(trained_checkpoint, tmp_path):
    # the real CLI and host loop in a terminal: one turn, whose prompt holds the three lines
    chat = Terminal([sys.executable, "-m", "deepmolm_plugin.cli", "--model-path", str(trained_checkpoint),
                     "--smiles", "CCO", "--device", "cpu", "--max-new-tokens", "4", "--temperature", "0",
                     "--debug"], tmp_path)
    chat.wait_for(b"USER: ")
    chat.send(PASTE)
    chat.wait_for(b"USER: ", 2)
    chat.send(b"\r")
    chat.wait_for(b"exit...")
    assert chat.close() == 0, chat.screen()
    turns = [ast.literal_eval(line.strip()) for line in chat.screen().splitlines()
             if line.strip().startswith("{'prompt'")]
    assert len(turns) == 1, chat.screen()
    assert f"<|im_start|>user\n<image>\n{PASTED}<|im_end|>\n" in turns[0]["prompt"], turns[0]["prompt"]
    assert chat.screen().count("ASSISTANT: ") == 1, chat.screen()


# --- 9: the GUI's generation limits ----------------------------------------------------------------
def test_the_chat_cli_refuses_a_temperature_the_gui_refuses(trained_checkpoint, capsys):
    from deepmolm_plugin import cli
    from deepmolm_plugin.gui.chat import MAX_TEMPERATURE

    with pytest.raises(SystemExit) as exit_:  # was: accepted, and the replies were random tokens
        cli.main(["--model-path", str(trained_checkpoint), "--smiles", "CCO", "--device", "cpu",
                  "--temperature", "100"])
    assert exit_.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [f"python -m deepmolm_plugin.cli: error: --temperature must be at most {MAX_TEMPERATURE} (as in "
                   "the GUI: past it the replies are random tokens), got 100"], err
    cli.check_arguments(cli.build_parser().parse_args(  # the GUI's end itself is taken
        ["--model-path", str(trained_checkpoint), "--smiles", "CCO", "--temperature", str(MAX_TEMPERATURE)]))


@pytest.mark.parametrize("context, given, used, note", [
    (256, None, 256, None),  # was 512 by default: twice this model's context
    (256, 5000, 256, "note: --max-new-tokens 5000 set to 256 (this model's context is 256)"),
    (256, 100, 100, None),
    (4096, None, 512, None),  # the host's default where the model's context allows it
    (4096, 5000, 1024, "note: --max-new-tokens 5000 set to 1024 (at most 1024, as in the GUI)"),
    (None, None, 512, None),
])
def test_max_new_tokens_follow_the_guis_limit(capsys, context, given, used, note):
    from deepmolm_plugin.cli import new_tokens_for
    from deepmolm_plugin.gui.chat import max_new_tokens_limit

    config = types.SimpleNamespace(tokenizer_model_max_length=context)
    assert new_tokens_for(given, config) == used
    assert used <= max_new_tokens_limit(types.SimpleNamespace(config=config))  # the GUI's own rule
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == ([note] if note else []), err


def test_the_host_gets_the_clamped_number(trained_checkpoint, monkeypatch, capsys):
    import llava.serve.cli as host_cli

    from deepmolm_plugin import cli

    context = json.loads((trained_checkpoint / "config.json").read_text())["tokenizer_model_max_length"]
    got = []

    class Stop(Exception):
        pass

    def first_step_of_the_host():  # the host's main(args) calls it first; its args are the chat's settings
        got.append(sys._getframe(1).f_locals["args"].max_new_tokens)
        raise Stop

    # the host's main itself cannot be replaced: cli_display checks its source
    monkeypatch.setattr(host_cli, "disable_torch_init", first_step_of_the_host)
    with pytest.raises(Stop):
        cli.main(["--model-path", str(trained_checkpoint), "--smiles", "CCO", "--device", "cpu",
                  "--max-new-tokens", str(context + 5000)])
    assert got == [min(context, 1024)]
    assert f"note: --max-new-tokens {context + 5000} set to {min(context, 1024)} (" in capsys.readouterr().err


# --- 5: a deepmolm-kflm2 results folder as the model -----------------------------------------------
def _kflm2_run(tmp_path, results: bool = True):
    """A folder as deepmolm-kflm2 --out writes it (the keys its config.json and results.json hold)."""
    run = tmp_path / "kflm2run"
    (run / "seeds").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"fingerprint": "abc", "data_file": "x.csv", "targets": ["y"],
                                                 "task": "regression", "train": {"epochs": 3}, "argv": []}))
    if results:
        (run / "results.json").write_text(json.dumps({"fingerprint": "abc", "summary": {}, "per_seed": []}))
    return run


@pytest.mark.parametrize("results", [True, False], ids=["finished", "no-results-yet"])
def test_a_kflm2_results_folder_is_not_a_model(tmp_path, results):
    from deepmolm_plugin import usage

    run = _kflm2_run(tmp_path, results)
    with pytest.raises(usage.UsageError) as error:
        usage.model_folder(str(run), "--model-path")
    held = "config.json, results.json: the settings and scores" if results else "config.json: the settings"
    assert str(error.value) == (f"--model-path {run}: a deepmolm-kflm2 results folder ({held} of a "
                                "property-prediction run), not a model to load")


def test_a_model_config_is_not_taken_for_a_kflm2_run(trained_checkpoint, tmp_path):
    # a model's config.json has a model_type: even holding the run's keys it is a model's
    from deepmolm_plugin import usage

    usage.model_folder(str(trained_checkpoint), "--model-path")
    model = tmp_path / "model"
    model.mkdir()
    config = json.loads((trained_checkpoint / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "data_file": "x", "targets": [], "task": "t",
                                                   "train": {}, "fingerprint": "f"}))
    (model / "model.safetensors").write_bytes(b"")
    usage.model_folder(str(model), "--model-path")


@pytest.mark.parametrize("tool", ["chat", "eval", "gui"])
def test_chat_eval_and_gui_name_a_kflm2_folder_before_any_molecule_work(tmp_path, tool):
    run = _kflm2_run(tmp_path)
    args = {"chat": ("deepmolm_plugin.cli", ["--smiles", "CCO"]),
            "eval": ("deepmolm_plugin.eval.model_vqa", ["--question-file", str(tmp_path / "q.jsonl"),
                                                        "--answers-file", str(tmp_path / "a.jsonl")]),
            "gui": ("deepmolm_plugin.gui", ["--port", "1"])}
    (tmp_path / "q.jsonl").write_text(json.dumps({"question_id": "q1", "smiles": "CCO", "text": "What?"}) + "\n")
    module, extra = args[tool]
    proc = run_module(module, ["--model-path", str(run), *extra], cwd=tmp_path, check=False, timeout=300,
                      env={k: v for k, v in _env().items() if k == "PYTHONPATH"})
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(err) == 1 and err[0].endswith(f"error: --model-path {run}: a deepmolm-kflm2 results folder "
                                             "(config.json, results.json: the settings and scores of a "
                                             "property-prediction run), not a model to load"), err


# --- review S: a paste without a final line end (the usual copy from a browser) -----------------
@pytest.mark.parametrize("readline", [[], ["readline"]], ids=["plain", "gnu-readline"])
def test_a_paste_without_a_final_line_end_is_one_question_sent_by_enter(tmp_path, readline):
    # was: "Describe it.\nFocus on its rings" asked at once, then "and its charge." as a second question
    chat = _stub_chat(tmp_path, *readline)
    chat.wait_for(b"USER: ")
    chat.send(b"Describe it.\rFocus on its rings\rand its charge.")
    time.sleep(1.0)  # the user looks at the paste, then presses Enter
    assert "ASKED" not in chat.screen(), chat.screen()
    chat.send(b"\r")
    chat.wait_for(b"USER: ", 2)
    chat.send(b"typed alone\r")  # the terminal is back in line mode: a typed line is a question of its own
    chat.wait_for(b"USER: ", 3)
    chat.send(b"\r")
    chat.wait_for(b"exit...")
    assert chat.close() == 0
    assert _asked(chat.screen()) == ["Describe it.\nFocus on its rings\nand its charge.", "typed alone"], chat.screen()


def test_what_is_typed_after_an_unfinished_paste_joins_its_last_line(tmp_path):
    chat = _stub_chat(tmp_path)
    chat.wait_for(b"USER: ")
    chat.send(b"Describe it.\rFocus on")
    time.sleep(1.0)
    chat.send(b" its rings\r")
    chat.wait_for(b"USER: ", 2)
    chat.send(b"\x04")  # Ctrl-D at the prompt still ends the chat
    chat.wait_for(b"exit...")
    assert chat.close() == 0
    assert _asked(chat.screen()) == ["Describe it.\nFocus on its rings"], chat.screen()
