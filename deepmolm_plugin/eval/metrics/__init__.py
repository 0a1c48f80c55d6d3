"""Scoring of model answers (issue 6): text, property, SMILES and IUPAC metrics.

- `text`: BLEU-2/4 (nltk corpus_bleu), ROUGE-1/2/L F1 (rouge_score), METEOR (nltk), x100,
  on a declared tokenizer (default `words-v2`);
- `numbers`: the value in a free-text property answer (a stated energy, molar mass or
  area unit converted to the property's), per-property valid ranges, valid ratio and MAE;
- `molecules`: SMILES validity / canonical exact match / MACCS, RDK, Morgan Tanimoto (as
  MolT5), IUPAC exact match;
- `wordnet`: WordNet 3.0 for METEOR, built offline from Debian packages.

`deepmolm_plugin.eval.report` applies them per task. Importing this package loads neither
NLTK nor RDKit; each module imports its library when first used.
"""

from .molecules import extract_iupac, extract_smiles, iupac_metrics, smiles_metrics
from .numbers import PROPERTY_RANGES, parse_number, parse_value, property_metrics, property_spec
from .text import DEFAULT_TOKENIZER, TOKENIZERS, text_metrics


def __getattr__(name):
    # `wordnet` is also run as `python -m ...metrics.wordnet`: importing it here eagerly
    # would make runpy warn that the module was imported before it ran.
    if name in ("WordNetMissing", "ensure_wordnet"):
        from . import wordnet

        return getattr(wordnet, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_TOKENIZER", "PROPERTY_RANGES", "TOKENIZERS", "WordNetMissing", "ensure_wordnet", "extract_iupac",
    "extract_smiles", "iupac_metrics", "parse_number", "parse_value", "property_metrics", "property_spec", "smiles_metrics",
    "text_metrics",
]
