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


def test_tiny_llms_built_in_parallel_threads_get_their_seeds_weights(tmp_path):
    """The experiment builds each arm's LLM in its own thread; before, the threads drew
    from torch's global generator in turns and every run started from other weights."""
    import threading

    from safetensors.torch import load_file

    from deepmolm_plugin.tiny_llm import build_qwen2, train_chatml_tokenizer

    tokenizer = train_chatml_tokenizer(["The answer is 1.", "The answer is 2."] * 20, vocab_size=300)
    build_qwen2(tmp_path / "alone", tokenizer, hidden_size=64, layers=2, intermediate=128, seed=3)
    threads = [threading.Thread(target=build_qwen2, args=(tmp_path / f"t{i}", tokenizer),
                                kwargs=dict(hidden_size=64, layers=2, intermediate=128, seed=3)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    alone = load_file(tmp_path / "alone" / "model.safetensors")
    for i in range(4):
        built = load_file(tmp_path / f"t{i}" / "model.safetensors")
        assert all(torch.equal(alone[k], built[k]) for k in alone)
