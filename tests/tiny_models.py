"""Tiny, offline stand-ins for a Qwen2 tokenizer and checkpoint, shared by the tests.

No hub access here, so tests build what users would download: a byte-level BPE tokenizer
with Qwen2's pre-tokenizer and ChatML special tokens, and a randomly initialised
``Qwen2ForCausalLM`` saved as a plain checkpoint folder. Both are deterministic and take
about a second (the tokenizer) or milliseconds (the model) to build.
"""

import os
import random

import transformers

from deepmolm_plugin.tiny_llm import SPECIAL_TOKENS, build_qwen2, train_chatml_tokenizer  # noqa: F401
TINY_VOCAB_SIZE = 800

_MOLECULES = (
    ("water", "O"), ("methane", "C"), ("ethanol", "CCO"), ("acetic acid", "CC(=O)O"),
    ("acetone", "CC(C)=O"), ("benzene", "c1ccccc1"), ("toluene", "Cc1ccccc1"),
    ("phenol", "Oc1ccccc1"), ("aniline", "Nc1ccccc1"), ("pyridine", "c1ccncc1"),
    ("aspirin", "CC(=O)Oc1ccccc1C(=O)O"), ("caffeine", "Cn1cnc2c1c(=O)n(C)c(=O)n2C"),
    ("ibuprofen", "CC(C)Cc1ccc(cc1)C(C)C(=O)O"), ("paracetamol", "CC(=O)Nc1ccc(O)cc1"),
    ("glycine", "NCC(=O)O"), ("alanine", "CC(N)C(=O)O"), ("urea", "NC(N)=O"),
    ("glucose", "OCC1OC(O)C(O)C(O)C1O"), ("cyclohexane", "C1CCCCC1"),
    ("chloroform", "ClC(Cl)Cl"), ("nitrobenzene", "O=[N+]([O-])c1ccccc1"),
    ("ethylene", "C=C"), ("acetylene", "C#C"), ("formaldehyde", "C=O"),
    ("naphthalene", "c1ccc2ccccc2c1"), ("indole", "c1ccc2[nH]ccc2c1"),
    ("furan", "c1ccoc1"), ("thiophene", "c1ccsc1"),
    ("morphine", "CN1CCC23c4c5ccc(O)c4OC2C(O)C=CC3C1C5"),
    ("nicotine", "CN1CCCC1c1cccnc1"),
)
_CLASSES = ("alcohol", "carboxylic acid", "ketone", "aromatic hydrocarbon", "amine",
            "heterocycle", "amino acid", "sugar", "alkaloid", "halogenated solvent")
_PROPERTIES = ("molecular weight", "logP", "boiling point", "melting point", "solubility",
               "polar surface area", "dipole moment", "HOMO-LUMO gap")
_TEMPLATES = (
    "The molecule {smiles} is {name}.",
    "What is the SMILES of {name}? It is {smiles}.",
    "{Name} is a {cls} with {n} heavy atoms.",
    "The {prop} of {name} is {value:.2f}.",
    "Describe this molecule: {smiles}",
    "<image>\nWhat is the name of the molecule in the image?",
    "This compound contains {n} rings and is classified as a {cls}.",
    "Predict the {prop} of the molecule {smiles}.",
    "You are a helpful assistant. Answer the question about {name}.",
    "system\nuser\nassistant\nThe answer is {value:.1f}.",
    "Answer\n\n{smiles}",
)
_FRAGMENTS = ("C", "CC", "O", "N", "c1ccccc1", "C(=O)", "Cl", "F", "Br", "S", "(C)", "=O",
              "[nH]", "[O-]", "[N+]", "C#N", "c1ccncc1", "OC", "CN", "C1CC1")


def _corpus(lines: int = 600) -> list:
    """Chemistry-flavoured sentences and SMILES-like strings, the same on every call."""
    rng = random.Random(0)
    out = []
    for _ in range(lines):
        name, smiles = rng.choice(_MOLECULES)
        if rng.random() < 0.25:
            smiles = "".join(rng.choice(_FRAGMENTS) for _ in range(rng.randint(2, 8)))
        out.append(rng.choice(_TEMPLATES).format(
            name=name, Name=name.capitalize(), smiles=smiles, cls=rng.choice(_CLASSES),
            n=rng.randint(1, 40), prop=rng.choice(_PROPERTIES), value=rng.uniform(-5, 500)))
    return out


def make_tiny_tokenizer(path=None) -> transformers.PreTrainedTokenizerFast:
    """A deterministic ~800-token byte-level BPE tokenizer shaped like Qwen2's.

    Same normalizer, pre-tokenizer and decoder as Qwen2 (so merges never cross the places a
    real Qwen2 tokenizer splits at), ChatML specials, no BOS, pad ``<|endoftext|>``, eos
    ``<|im_end|>``, no unk token (as Qwen2). Fast, so ``return_offsets_mapping`` works.
    Saved with ``save_pretrained`` when ``path`` is given.
    """
    tokenizer = train_chatml_tokenizer(_corpus(), vocab_size=TINY_VOCAB_SIZE)
    if path is not None:
        tokenizer.save_pretrained(os.fspath(path))
    return tokenizer


def make_tiny_qwen2(path, tokenizer=None, hidden_size=64, layers=2, heads=4, kv_heads=2,
                    intermediate=128, seed=0):
    """Save a seeded, randomly initialised Qwen2ForCausalLM plus its tokenizer in ``path``:
    a folder like a user's plain Qwen2 checkpoint. The global torch RNG is left untouched."""
    tokenizer = make_tiny_tokenizer() if tokenizer is None else tokenizer
    return build_qwen2(path, tokenizer, hidden_size=hidden_size, layers=layers, heads=heads,
                       kv_heads=kv_heads, intermediate=intermediate, seed=seed)
