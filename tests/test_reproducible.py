"""Training runs are reproducible: `--seed` seeds the model's random initialisation."""

import torch

from deepmolm_plugin.train import seed_model_init


def test_seed_model_init_seeds_the_rngs_before_the_host_builds_the_model():
    """The host builds the tower and projector (random weights) before its Trainer seeds
    anything; the launcher seeds first, with --seed (default 42, as TrainingArguments)."""
    seed_model_init(["--data_path", "x.json", "--seed", "7"])
    drawn = torch.rand(4)
    torch.manual_seed(7)
    assert torch.equal(drawn, torch.rand(4))
    seed_model_init(["--seed=7"])
    assert torch.equal(torch.rand(4), drawn)
    seed_model_init([])
    drawn = torch.rand(4)
    torch.manual_seed(42)
    assert torch.equal(drawn, torch.rand(4))
