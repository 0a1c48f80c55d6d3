"""Shared fixtures: tiny DeepEncoder configs built through the real code."""

import signal

import pytest
import torch

from deepmolm_plugin.encoder import DeepEncoderConfig, encoder_config


# The files that take a minute or more on 2 CPU cores, slowest first. `make test` hands whole
# files to its pytest-xdist workers in collection order, so these start first and the short
# files fill in around them (one of these started last kept a worker busy alone for minutes).
SLOW_FIRST = ("test_gpu_check", "test_experiment", "test_host_train", "test_host_cli_eval", "test_feature_cache",
              "test_hostile_checkpoints", "test_gui", "test_distributed", "test_cli_bad_input",
              "test_reference_equivalence", "test_eval_end_to_end")


def pytest_configure(config):
    """Ctrl-C as a terminal delivers it. A test run started in the background of a script
    (`make test &`, nohup) inherits SIGINT ignored, and an ignored signal stays ignored in
    every process it starts: the Ctrl-C tests (the chat CLI's one-line exit, gpu_check's
    stop of a launcher tree) then saw no interrupt at all. A handler is reset to the default
    in each child, so the children get Python's KeyboardInterrupt again."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # The same for SIGHUP under nohup: run_eval.sh (bash) cannot trap a signal ignored when it
    # starts, and its SIGHUP test waited 60 s for a stop that never came. A handler that does
    # nothing keeps this run immune to hangups, as nohup meant, and children start with the default.
    if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
        signal.signal(signal.SIGHUP, _hangup_ignored)


def _hangup_ignored(signum, frame) -> None:
    """SIGHUP in the test run itself: nothing (it was started under nohup)."""


def pytest_collection_modifyitems(config, items):
    """Slow files first (SLOW_FIRST), each file's tests in their own order; the rest after."""
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: keeps the order within a file


def tiny_encoder_config(**overrides) -> DeepEncoderConfig:
    """The `tiny` preset (128 px base view, 2x2 tokens, width 32, depth 2: runs in
    milliseconds), with `overrides` on top."""
    return encoder_config("tiny", **overrides)


@pytest.fixture(scope="module")
def wordnet(tmp_path_factory):
    """NLTK's WordNet reader for METEOR: the machine's, else the copy `metrics.wordnet` installs."""
    from deepmolm_plugin.eval.metrics import text, wordnet as wn_setup

    try:
        folder = wn_setup.find_wordnet().parent.parent
    except wn_setup.WordNetMissing:
        folder = wn_setup.ensure_wordnet(tmp_path_factory.mktemp("nltk_data")).parent.parent
    return text.load_wordnet(folder)


@pytest.fixture
def tiny_config() -> DeepEncoderConfig:
    return tiny_encoder_config()


@pytest.fixture(autouse=True)
def _stop_signals_kept():
    """SIGINT and SIGTERM as each test found them, Python's view and the kernel's. A test that
    left SIGINT ignored (a tool's in-process run, a C library's sigaction behind Python's back)
    made every later subprocess of that worker inherit the ignore, and a later Ctrl-C test saw
    its child exit 0 (one full run: 20 Ctrl-C tests failed that pass alone). Installing the
    handler Python records again also resets a disposition set outside Python."""
    kept = {stop: signal.getsignal(stop) for stop in (signal.SIGINT, signal.SIGTERM)}
    yield
    for stop, handler in kept.items():
        if handler is not None:
            signal.signal(stop, handler)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (tiny models), restored afterwards."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def tiny_setup(tmp_path_factory):
    """Tiny Qwen2 + tokenizer, tiny encoder config, training records (host_fixtures)."""
    from host_fixtures import write_tiny_setup

    return write_tiny_setup(tmp_path_factory.mktemp("tiny_setup"))


@pytest.fixture(scope="session")
def trained_checkpoint(tiny_setup, tmp_path_factory):
    """A full DeepMoLM checkpoint folder, trained a few steps through the launcher."""
    from host_fixtures import run_module, train_args

    out = tmp_path_factory.mktemp("trained") / "checkpoint"
    run_module("deepmolm_plugin.train", train_args(tiny_setup, out, "--mm_projector", "fusion"), cwd=out.parent)
    return out


@pytest.fixture(scope="module")
def chat_session(trained_checkpoint):
    """One real GUI chat session of `trained_checkpoint` per test module (the GUI's handlers
    are tested on it without a browser)."""
    import torch

    from deepmolm_plugin.gui.session import ChatSession

    torch.set_num_threads(1)  # the tiny model: threads only cost
    return ChatSession.load(str(trained_checkpoint), device="cpu")
