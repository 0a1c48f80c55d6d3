"""Shared fixtures: tiny DeepEncoder configs built through the real code."""

import pytest
import torch

from deepmolm_plugin.encoder import DeepEncoderConfig, encoder_config


def tiny_encoder_config(**overrides) -> DeepEncoderConfig:
    """The `tiny` preset (128 px base view, 2x2 tokens, width 32, depth 2: runs in
    milliseconds), with `overrides` on top."""
    return encoder_config("tiny", **overrides)


@pytest.fixture
def tiny_config() -> DeepEncoderConfig:
    return tiny_encoder_config()


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
