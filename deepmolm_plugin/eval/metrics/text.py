"""Text metrics: BLEU-2, BLEU-4, ROUGE-1/2/L F1 and METEOR, all x100, on a declared tokenizer.

Every score is computed by the reference library itself on one token list per text:

- BLEU-2 / BLEU-4: `nltk.translate.bleu_score.corpus_bleu`, one reference per hypothesis,
  weights (0.5, 0.5) and (0.25, 0.25, 0.25, 0.25), no smoothing (as MolT5 / 3D-MoLM).
  BLEU-n is None (undefined) when no hypothesis has n tokens: its n-gram precision is 0/0
  (nltk put its smoothing epsilon there, so `oxidane` against `oxidane` had BLEU-2 1.5e-152);
  an order with n-grams but no match gives 0 itself, not nltk's 1e-152-ish epsilon;
- ROUGE-1 / ROUGE-2 / ROUGE-L: `rouge_score.rouge_scorer.RougeScorer` F1 (`fmeasure`),
  no stemming, mean over pairs; the scorer is handed our tokens (its own tokenizer, which
  drops every non-[a-z0-9] character, is not used). A pair where neither side has an
  n-gram of the score's order (a bigram for ROUGE-2, a token for ROUGE-1 and ROUGE-L) has
  no F1 (0/0; rouge_score says 0, so `oxidane` against `oxidane` had ROUGE-2 0): it is left
  out of that mean and counted (`n_undefined_rouge2`, ...); a mean over no pair is None;
- METEOR: `nltk.translate.meteor_score.meteor_score([reference], hypothesis)` with NLTK's
  defaults (alpha 0.9, beta 3, gamma 0.5, Porter stemmer, WordNet 3.0 synonyms, tokens
  lower-cased by NLTK itself), mean over pairs. WordNet comes from `metrics.wordnet`.

Each text is tokenized exactly once, hypotheses and references alike, and the same tokens
go to all three libraries. The tokenizer is named in every result (`tokenizer`), so scores
are only compared when computed with the same one. A metric without a value (None) is
explained in the result's `undefined` ({metric: why}), as are the pairs left out of a mean.
Tokenizers (`TOKENIZERS`):

- `words-v2` (default): format characters (category Cf: zero-width space U+200B, soft
  hyphen U+00AD, LRM/RLM, BOM U+FEFF, word joiner U+2060) removed, Unicode NFKC
  normalisation, lower-casing, then the tokens are the maximal runs of word characters and
  each single other non-space character, i.e. `re.findall(r"\\w+|[^\\w\\s]", text)` with
  Python's Unicode `re`. "C6H12O6" is one token, "2-hydroxypropanoic" is "2", "-",
  "hydroxypropanoic", "g/mol." is "g", "/", "mol", ".", "eth\\u00adanol" is "ethanol". It
  does not depend on the model under test, and it will never change: a different rule gets
  a different name.
- `words-cased-v2`: the same without lower-casing (METEOR still lower-cases, as NLTK does).
- `words`, `words-cased`: the first versions (the default before `words-v2`), kept so that
  earlier reports can be reproduced: the same without removing format characters, each of
  which was a token of its own (a zero-width space after a word took the BLEU-2 of a
  caption otherwise identical to its reference from 100 to 87, and `eth\\u200banol`
  scored 0 against `ethanol`).
- `whitespace`: `text.split()`, nothing else.
- `hf:<folder>`: a Hugging Face tokenizer's `tokenize()` (no special tokens), loaded from a
  local folder only, e.g. SciBERT's uncased vocabulary, which MolT5's evaluation uses for
  BLEU and METEOR. Its ROUGE is not MolT5's: MolT5 hands rouge_score the raw strings (its
  own tokenizer), where here every metric gets these word pieces (one caption pair:
  ROUGE-2 77.78 here, 66.67 MolT5's way), and MolT5 cuts texts at 512 tokens. It is
  recorded by that name; results are comparable only for the same folder.

No text goes to the metrics with more than `MAX_TOKENS` tokens: rouge_score's ROUGE-L
keeps the whole LCS table in Python lists, len(hyp) x len(ref) cells, so two 100,000-token
texts need about 10^10 cells (the process is killed for memory after minutes); 10,000
tokens take about 40 s and 1.5 GB per pair. An answer that long is scored on its first
`MAX_TOKENS` tokens and counted (`n_truncated`; `truncated`: their positions): it is a
model that generated until --max-new-tokens, which the scores must show as poor (it
stopped the whole report before). A reference that long is refused (`TextTooLong`, naming
it): references are the user's data, and a cut one would be a different ground truth.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

DEFAULT_TOKENIZER = "words-v2"
SCALE = 100.0
BLEU2_WEIGHTS = (0.5, 0.5)
BLEU4_WEIGHTS = (0.25, 0.25, 0.25, 0.25)
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
METRIC_NAMES = ("bleu2", "bleu4", "rouge1", "rouge2", "rougeL", "meteor")
MAX_TOKENS = 10_000  # per text: ROUGE-L's LCS table is quadratic (module docstring)

_WORDS = re.compile(r"\w+|[^\w\s]")
# BLEU's n-gram orders; BLEU-n is undefined without a hypothesis of n tokens
BLEU_ORDERS = {"bleu2": len(BLEU2_WEIGHTS), "bleu4": len(BLEU4_WEIGHTS)}
# ROUGE type -> (n-gram length, its name): a pair where neither side has one is left out
ROUGE_ORDERS = {"rouge1": (1, "token"), "rouge2": (2, "bigram"), "rougeL": (1, "token")}


class UnusableTokenizer(ValueError):
    """A tokenizer whose tokens hold white space (a character-level one: `a b` as `a`, ` `,
    `b`): ROUGE receives the tokens joined by spaces, which would cut them apart again. A
    ValueError, as TextTooLong: this module does not import `eval.merge`, whose ReportError
    imports RDKit, and `metrics.numbers` (through this module) is imported by data
    preparation; `eval.scoring` raises it on as a ReportError naming the task, and
    `eval.report` tries the tokenizer on PROBE before it reads anything."""


class TextTooLong(ValueError):
    """A reference longer than MAX_TOKENS tokens; `index`: its position in the list given
    (the caller names the question)."""

    def __init__(self, message: str, index: int):
        super().__init__(message)
        self.index = index


@dataclass(frozen=True)
class Tokenizer:
    name: str
    description: str
    fn: Callable[[str], List[str]]

    def __call__(self, text: str) -> List[str]:
        return self.fn(text)

    def declaration(self) -> Dict[str, str]:
        """What reports record about the tokenizer."""
        return {"name": self.name, "description": self.description}


def _words(text: str) -> List[str]:
    return _WORDS.findall(unicodedata.normalize("NFKC", text).lower())


def _words_cased(text: str) -> List[str]:
    return _WORDS.findall(unicodedata.normalize("NFKC", text))


class _FormatCharacters(dict):
    """A `str.translate` table deleting the invisible format characters (Unicode category
    Cf), filled as characters are met: a table of all of Unicode would be built at every
    import, a test per character is slower."""

    def __missing__(self, code: int) -> Optional[int]:
        kept = self[code] = None if unicodedata.category(chr(code)) == "Cf" else code
        return kept


_FORMAT_CHARACTERS = _FormatCharacters()


def without_format_characters(text: str) -> str:
    r"""The text without its invisible format characters (Cf: zero-width space, soft hyphen,
    joiners, BOM). The one remover of the text tokenizers and the number reader: a zero-width
    space was a token of its own, and one between a sign and its digits (`-\u200b2.0`) cut
    the sign off, so that the digits read positive."""
    return text if text.isascii() else text.translate(_FORMAT_CHARACTERS)


def without_format_nfkc(text: str) -> str:
    """NFKC of the text without its format characters. Removed first, so that a mark they
    held apart composes (`e\\u200b\\u0301` is `é`); NFKC makes none. words-v2's
    normaliser, and IUPAC names' (`molecules.extract_iupac`)."""
    return unicodedata.normalize("NFKC", without_format_characters(text))


def _words_v2(text: str) -> List[str]:
    return _WORDS.findall(without_format_nfkc(text).lower())


def _words_cased_v2(text: str) -> List[str]:
    return _WORDS.findall(without_format_nfkc(text))


TOKENIZERS: Dict[str, Tokenizer] = {
    "words-v2": Tokenizer(
        "words-v2",
        r"format characters (Unicode Cf) removed, NFKC, lower-cased, re.findall(r'\w+|[^\w\s]') (Unicode "
        "word runs and single punctuation/symbol characters); deepmolm_plugin.eval.metrics.text",
        _words_v2),
    "words-cased-v2": Tokenizer(
        "words-cased-v2",
        r"format characters (Unicode Cf) removed, NFKC, case kept, re.findall(r'\w+|[^\w\s]'); "
        "deepmolm_plugin.eval.metrics.text",
        _words_cased_v2),
    "words": Tokenizer(
        "words",
        r"NFKC, lower-cased, re.findall(r'\w+|[^\w\s]') (Unicode word runs and single "
        "punctuation/symbol characters); deepmolm_plugin.eval.metrics.text",
        _words),
    "words-cased": Tokenizer(
        "words-cased",
        r"NFKC, case kept, re.findall(r'\w+|[^\w\s]'); deepmolm_plugin.eval.metrics.text",
        _words_cased),
    "whitespace": Tokenizer("whitespace", "str.split() (whitespace only, case kept)", str.split),
}


@functools.lru_cache(maxsize=4)
def hf_tokenizer(folder: str) -> Tokenizer:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return Tokenizer(f"hf:{folder}", f"{type(tok).__name__}.tokenize() from {folder}, no special tokens",
                     lambda text: list(tok.tokenize(text)))


def get_tokenizer(tokenizer: Union[str, Tokenizer, None] = None) -> Tokenizer:
    if tokenizer is None:
        tokenizer = DEFAULT_TOKENIZER
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    if tokenizer.startswith("hf:"):
        return hf_tokenizer(tokenizer[3:])
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {tokenizer!r}: use one of {', '.join(TOKENIZERS)} or hf:<folder>")
    return TOKENIZERS[tokenizer]


# A text a tokenizer is tried on before a report reads its inputs: spaces, a line break and a
# double space, where a character-level tokenizer returns white-space tokens
PROBE = "An alcohol, C2H6O.\nIts LogP is -0.31;  it mixes with water."


def tokens_of(text: str, tok: Tokenizer) -> List[str]:
    """The non-empty tokens of a text; UnusableTokenizer when one holds white space."""
    tokens = [t for t in tok(text) if t]
    spaced = next((t for t in tokens if any(c.isspace() for c in t)), None)
    if spaced is not None:
        raise UnusableTokenizer(f"tokenizer {tok.name!r} returned the token {spaced!r}, which holds white space, "
                                f"for the text {text[:80]!r}: the text metrics need tokens without white space "
                                "(ROUGE receives them joined by spaces)")
    return tokens


def tokenize_all(texts: Sequence[str], tokenizer: Union[str, Tokenizer, None] = None) -> List[List[str]]:
    """Each text tokenized once. Tokens hold no whitespace (ROUGE receives them space-joined):
    UnusableTokenizer otherwise."""
    tok = get_tokenizer(tokenizer)
    out = []
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must be strings, got {type(text).__name__}")
        out.append(tokens_of(text, tok))
    return out


class _PreTokenized:
    """rouge_score tokenizer for text that is already our space-joined tokens."""

    @staticmethod
    def tokenize(text: str) -> List[str]:
        return text.split(" ") if text else []


def _corpus_bleu(references: list, hypotheses: list, weights) -> float:
    """nltk corpus_bleu x100, without smoothing, but exactly 0 when an order has no match:
    nltk's "no smoothing" (method0) puts the smallest float in that order's precision, so
    a score that is 0 came out as ~1e-152 (BLEU-2) or ~1e-229 (BLEU-4)."""
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

    precisions = []

    def no_smoothing(p_n, **kwargs):  # sees each order's unreduced matches / n-grams
        precisions.extend(p_n)
        return SmoothingFunction().method0(p_n, **kwargs)

    with warnings.catch_warnings():  # nltk warns when an n-gram order has no match: the score is 0
        warnings.simplefilter("ignore", UserWarning)
        score = corpus_bleu(references, hypotheses, weights=weights, smoothing_function=no_smoothing)
    return 0.0 if any(p.numerator == 0 for p in precisions) else SCALE * score


def bleu(hyp_tokens: Sequence[List[str]], ref_tokens: Sequence[List[str]]) -> Dict[str, Optional[float]]:
    """Corpus BLEU-2 and BLEU-4 (x100): nltk corpus_bleu, one reference each, no smoothing;
    None where no hypothesis has n tokens (no n-gram of BLEU-n's top order: 0/0)."""
    references = [[list(r)] for r in ref_tokens]
    hypotheses = [list(h) for h in hyp_tokens]
    longest = max((len(h) for h in hypotheses), default=0)
    return {key: _corpus_bleu(references, hypotheses, weights) if longest >= BLEU_ORDERS[key] else None
            for key, weights in (("bleu2", BLEU2_WEIGHTS), ("bleu4", BLEU4_WEIGHTS))}


def rouge(hyp_tokens: Sequence[List[str]], ref_tokens: Sequence[List[str]]) -> Dict[str, object]:
    """Mean ROUGE-1/2/L F1 (x100): rouge_score, no stemming, on our tokens; a pair where
    neither side has an n-gram of the score's order is left out (0/0) and counted
    (`n_undefined_<key>`), a mean over no pair is None."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False, tokenizer=_PreTokenized())
    scores: Dict[str, List[float]] = {key: [] for key in ROUGE_TYPES}
    undefined = dict.fromkeys(ROUGE_TYPES, 0)
    for hyp, ref in zip(hyp_tokens, ref_tokens):
        pair = scorer.score(" ".join(ref), " ".join(hyp))  # score(target, prediction)
        for key in ROUGE_TYPES:
            if max(len(hyp), len(ref)) < ROUGE_ORDERS[key][0]:
                undefined[key] += 1
            else:
                scores[key].append(pair[key].fmeasure)
    result: Dict[str, object] = {key: SCALE * sum(v) / len(v) if v else None for key, v in scores.items()}
    result.update((f"n_undefined_{key}", count) for key, count in undefined.items())
    return result


def undefined_reasons(result: Dict[str, object], n: int) -> Dict[str, str]:
    """{metric: why} for each BLEU without a value and each ROUGE or METEOR leaving pairs out."""
    reasons = {key: f"undefined: no answer has {order} tokens (no {order}-gram to score)"
               for key, order in BLEU_ORDERS.items() if result[key] is None}
    # per-pair scores leave out pairs where neither text has what the score needs
    needs = {**{key: what for key, (_, what) in ROUGE_ORDERS.items()}, "meteor": "token"}
    for key, what in needs.items():
        count = result[f"n_undefined_{key}"]
        if count:
            reasons[key] = f"leaves out {count} of {n} answer(s): neither it nor its reference has a {what}"
    return reasons


@functools.lru_cache(maxsize=2)
def _wordnet_at(folder: str):
    from .wordnet import wordnet_reader

    return wordnet_reader(Path(folder).parent.parent)


def load_wordnet(nltk_data=None):
    """NLTK's WordNet reader for the folder `metrics.wordnet.find_wordnet` finds now
    (loaded once per folder; WordNetMissing says how to install it)."""
    from .wordnet import find_wordnet

    return _wordnet_at(str(find_wordnet(nltk_data)))


def meteor(hyp_tokens: Sequence[List[str]], ref_tokens: Sequence[List[str]], wordnet=None) -> Dict[str, object]:
    """Mean METEOR (x100): nltk meteor_score with its defaults, one reference each; a pair of
    two texts without a token has no score (0/0, as ROUGE's): left out and counted
    (`n_undefined_meteor`; nltk scored it 0, a miss); a mean over no pair is None."""
    from nltk.translate.meteor_score import meteor_score

    wordnet = load_wordnet() if wordnet is None else wordnet
    scores = [meteor_score([list(ref)], list(hyp), wordnet=wordnet)
              for hyp, ref in zip(hyp_tokens, ref_tokens) if hyp or ref]
    return {"meteor": SCALE * sum(scores) / len(scores) if scores else None,
            "n_undefined_meteor": len(hyp_tokens) - len(scores)}


def check_lengths(token_lists: Sequence[List[str]]) -> None:
    """TextTooLong for the first reference over MAX_TOKENS, before any metric allocates its table."""
    for k, tokens in enumerate(token_lists):
        if len(tokens) > MAX_TOKENS:
            raise TextTooLong(f"reference {k + 1} of {len(token_lists)} has {len(tokens)} tokens, more than the "
                              f"{MAX_TOKENS} the text metrics take (ROUGE-L's LCS table grows with the product "
                              f"of the lengths): {' '.join(tokens[:8])} ...", k)


def text_metrics(hyps: Sequence[str], refs: Sequence[str], tokenizer: Union[str, Tokenizer, None] = None,
                 wordnet=None, nltk_data=None) -> Dict[str, object]:
    """BLEU-2/4, ROUGE-1/2/L F1 and METEOR, x100, of hypotheses against one reference each.

    Returns {bleu2, bleu4, rouge1, rouge2, rougeL, meteor, n, n_undefined_rouge1/2/L/meteor,
    n_truncated, truncated: [positions of the answers cut to MAX_TOKENS tokens],
    undefined: {metric: why}, tokenizer: {name, description}}; a metric is None when undefined.
    `wordnet`: an NLTK WordNet reader; default the one `metrics.wordnet` finds (`nltk_data`).
    """
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    if not hyps:
        raise ValueError("no hypotheses to score")
    tok = get_tokenizer(tokenizer)
    if wordnet is None:
        wordnet = load_wordnet(nltk_data)  # first: a missing WordNet fails before any work
    hyp_tokens = tokenize_all(hyps, tok)
    ref_tokens = tokenize_all(refs, tok)
    check_lengths(ref_tokens)
    truncated = [k for k, tokens in enumerate(hyp_tokens) if len(tokens) > MAX_TOKENS]
    hyp_tokens = [tokens[:MAX_TOKENS] for tokens in hyp_tokens]  # module docstring: a runaway answer
    result: Dict[str, object] = {}
    result.update(bleu(hyp_tokens, ref_tokens))
    result.update(rouge(hyp_tokens, ref_tokens))
    result.update(meteor(hyp_tokens, ref_tokens, wordnet))
    result.update(n=len(hyps), n_truncated=len(truncated), truncated=truncated)
    result["undefined"] = undefined_reasons(result, len(hyps))
    result["tokenizer"] = tok.declaration()
    return result
