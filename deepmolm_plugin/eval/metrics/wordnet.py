"""WordNet 3.0 for NLTK's METEOR, offline, from Debian packages.

NLTK's METEOR (`nltk.translate.meteor_score`) matches synonyms through WordNet, which
NLTK normally fetches with `nltk.download("wordnet")`. Nothing may be downloaded here, so
the corpus is built from the Debian packages that ship the WordNet 3.0 database:

- `wordnet-base`: `/usr/share/wordnet/{data,index}.{noun,verb,adj,adv}`, `*.exc`,
  `cntlist.rev`, and the man page `lexnames.5WN` (`/usr/share/man/man5/lexnames.5WN.gz`);
- `wordnet-sense-index`: `/usr/share/wordnet/index.sense`.

NLTK's reader (`WordNetCorpusReader._FILES`) also opens `lexnames`, a 45-line table
`NN<TAB>lexicographer-file<TAB>syntactic-category` that the Debian packages do not ship
as a file; its content is printed in the `lexnames.5WN` man page, from which
`lexnames_from_man_page` rebuilds it (the category follows the file name: noun 1,
verb 2, adj 3, adv 4). Docker-slim images often drop man pages at install time
(`path-exclude /usr/share/man/*`); then the same 45 names, kept here as `LEXNAMES`
(WordNet 3.0's fixed list, checked against the man page by the tests), are used.

`ensure_wordnet(nltk_data)` copies the files into `<nltk_data>/corpora/wordnet` (the
layout of NLTK's own `wordnet` package) and writes `lexnames`; it is idempotent and the
directory appears atomically. `make test` runs it through
`python -m deepmolm_plugin.eval.metrics.wordnet`.

Where WordNet is looked for (`nltk_data_dirs`): an explicit folder, else every entry of
`$NLTK_DATA` when it is set (and nothing else), else `<sys.prefix>/nltk_data` (the
virtual environment's folder, which `make` fills and NLTK itself also searches) followed by
NLTK's default search path. When none holds a complete corpus, `WordNetMissing` says
exactly how to install it.
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: a Ctrl-C while they load is one line too
    from deepmolm_plugin.entry_points import run_module

    run_module("deepmolm_plugin.eval.metrics.wordnet", "python -m deepmolm_plugin.eval.metrics.wordnet")

import argparse
import gzip
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

from ... import usage
from ...result_files import shared_mode

DEBIAN_PACKAGES = ("wordnet-base", "wordnet-sense-index")
APT_COMMAND = "apt-get install -y " + " ".join(DEBIAN_PACKAGES)
MAKE_COMMAND = "make wordnet"
DEBIAN_DICT = Path("/usr/share/wordnet")
LEXNAMES_MAN_PAGE = Path("/usr/share/man/man5/lexnames.5WN.gz")

#: Files NLTK's WordNetCorpusReader opens, except `lexnames`, which is rebuilt.
DICT_FILES = (
    "cntlist.rev", "index.sense",
    "index.adj", "index.adv", "index.noun", "index.verb",
    "data.adj", "data.adv", "data.noun", "data.verb",
    "adj.exc", "adv.exc", "noun.exc", "verb.exc",
)
CORPUS_FILES = DICT_FILES + ("lexnames",)
_CATEGORIES = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
LEXNAMES_COUNT = 45
#: WordNet 3.0's lexicographer files, in file-number order (lexnames(5WN)).
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()


class WordNetMissing(RuntimeError):
    """WordNet is not where NLTK looks; the message says how to install it."""


def install_hint(target: Optional[Path] = None) -> str:
    target = default_nltk_data() if target is None else Path(target)
    return (f"install the Debian WordNet 3.0 packages and build NLTK's corpus into {target}:\n"
            f"    sudo {APT_COMMAND}\n"
            f"    {MAKE_COMMAND}    # or: {sys.executable} -m deepmolm_plugin.eval.metrics.wordnet "
            f"--nltk-data {target}\n"
            f"(`make test` does both; nltk.download() is not needed and cannot work offline)")


def default_nltk_data() -> Path:
    """Where `ensure_wordnet` builds by default: $NLTK_DATA's first entry, else
    `<sys.prefix>/nltk_data` (inside the virtual environment)."""
    env = os.environ.get("NLTK_DATA")
    if env:
        first = [p for p in env.split(os.pathsep) if p]
        if first:
            return Path(first[0])
    return Path(sys.prefix) / "nltk_data"


def nltk_data_dirs(nltk_data: Optional[os.PathLike] = None) -> List[Path]:
    """The folders searched for `corpora/wordnet`, in order (see the module docstring)."""
    if nltk_data is not None:
        return [Path(nltk_data)]
    env = os.environ.get("NLTK_DATA")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    dirs = [Path(sys.prefix) / "nltk_data"]
    try:
        import nltk.data

        dirs += [Path(p) for p in nltk.data.path if isinstance(p, (str, os.PathLike))]
    except ImportError:
        pass
    seen, unique = set(), []
    for d in dirs:
        if str(d) not in seen:
            seen.add(str(d))
            unique.append(d)
    return unique


def corpus_dir(nltk_data: os.PathLike) -> Path:
    return Path(nltk_data) / "corpora" / "wordnet"


def is_complete(folder: os.PathLike) -> bool:
    folder = Path(folder)
    return all((folder / name).is_file() and (folder / name).stat().st_size > 0 for name in CORPUS_FILES)


def find_wordnet(nltk_data: Optional[os.PathLike] = None) -> Path:
    """The first complete `corpora/wordnet` folder on the search path, or WordNetMissing."""
    searched = nltk_data_dirs(nltk_data)
    for base in searched:
        if is_complete(corpus_dir(base)):
            return corpus_dir(base)
    partial = [str(corpus_dir(b)) for b in searched if corpus_dir(b).is_dir()]
    detail = f" ({', '.join(partial)} exists but lacks some of {', '.join(CORPUS_FILES)})" if partial else ""
    raise WordNetMissing(
        "METEOR needs WordNet 3.0, which NLTK did not find under corpora/wordnet in "
        f"{', '.join(str(b) for b in searched) or '(no folder)'}{detail}. To fix it, "
        + install_hint(default_nltk_data() if nltk_data is None else Path(nltk_data)))


def lexnames_from_man_page(text: str) -> str:
    """The `lexnames` file (`NN\\tname\\tcategory` lines) from the troff source of lexnames(5WN)."""
    rows = []
    for line in text.splitlines():
        match = re.match(r"^(\d\d)\s+((?:adj|adv|noun|verb)\.[A-Za-z]+)\s", line + " ")
        if match:
            number, name = int(match.group(1)), match.group(2)
            rows.append((number, name, _CATEGORIES[name.split(".")[0]]))
    numbers = [r[0] for r in rows]
    if numbers != list(range(LEXNAMES_COUNT)):
        raise ValueError(f"the lexnames man page lists files {numbers}, expected 00..{LEXNAMES_COUNT - 1} in order")
    return lexnames_file([name for _, name, _ in rows])


def lexnames_file(names=LEXNAMES) -> str:
    """The `lexnames` file for a list of lexicographer file names."""
    return "".join(f"{i:02d}\t{name}\t{_CATEGORIES[name.split('.')[0]]}\n" for i, name in enumerate(names))


def _read_man_page(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="replace")


def ensure_wordnet(nltk_data: Optional[os.PathLike] = None, source: os.PathLike = DEBIAN_DICT,
                   man_page: os.PathLike = LEXNAMES_MAN_PAGE) -> Path:
    """Build `<nltk_data>/corpora/wordnet` from the Debian files unless it is complete;
    returns the folder. Missing Debian files raise WordNetMissing with the apt-get command."""
    target = corpus_dir(default_nltk_data() if nltk_data is None else nltk_data)
    if is_complete(target):
        return target
    source, man_page = Path(source), Path(man_page)
    missing = [str(source / name) for name in DICT_FILES if not (source / name).is_file()]
    if missing:
        raise WordNetMissing(f"cannot build WordNet under {target}: missing {', '.join(missing)}. To fix it, "
                             + install_hint(target.parent.parent))
    if man_page.is_file():
        lexnames, lexnames_source = lexnames_from_man_page(_read_man_page(man_page)), str(man_page)
    else:
        lexnames, lexnames_source = lexnames_file(), f"the built-in table ({man_page} is not installed)"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    try:
        os.chmod(staging, shared_mode(folder=True))  # mkdtemp's 0700: a shared install unreadable to others
        for name in DICT_FILES:
            shutil.copyfile(source / name, staging / name)
        (staging / "lexnames").write_text(lexnames)
        (staging / "README").write_text(
            "WordNet 3.0 (Princeton University; license in data.* headers), built for NLTK by\n"
            f"deepmolm_plugin.eval.metrics.wordnet from the Debian packages {', '.join(DEBIAN_PACKAGES)}\n"
            f"({source}); lexnames from {lexnames_source}.\n")
        if target.exists():  # an incomplete earlier build
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _allow(base: Path) -> None:
    """NLTK (3.9.3+, `nltk.pathsec`) opens corpus files only under a root on `nltk.data.path`
    or `$NLTK_DATA`: put the folder WordNet was found in on `nltk.data.path` (first)."""
    import nltk.data

    resolved = usage.real_path(base)
    known = {usage.real_path(str(getattr(p, "path", p))) for p in nltk.data.path}
    if resolved not in known:
        nltk.data.path.insert(0, str(resolved))


def wordnet_reader(nltk_data: Optional[os.PathLike] = None):
    """An NLTK WordNetCorpusReader over the folder `find_wordnet` returns (built like
    `nltk.corpus.wordnet`, Open Multilingual WordNet loaded lazily, only if asked for).
    That folder's NLTK data root is added to `nltk.data.path` if absent (see `_allow`)."""
    from nltk.corpus.reader import CorpusReader, WordNetCorpusReader
    from nltk.corpus.util import LazyCorpusLoader

    folder = find_wordnet(nltk_data)
    _allow(folder.parent.parent)
    omw = LazyCorpusLoader("omw-2.0", CorpusReader, r".*/wn-data-.*\.tab", encoding="utf8")
    return WordNetCorpusReader(str(folder), omw)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deepmolm_plugin.eval.metrics.wordnet",
                                     description="Build NLTK's WordNet corpus from the Debian WordNet 3.0 packages.")
    parser.add_argument("--nltk-data", default=None, type=usage.user_path,
                        help=f"NLTK data folder (default: $NLTK_DATA's first entry, else {Path(sys.prefix) / 'nltk_data'})")
    parser.add_argument("--source", default=str(DEBIAN_DICT), type=usage.user_path,
                        help="folder with the WordNet dict files")
    parser.add_argument("--man-page", default=str(LEXNAMES_MAN_PAGE), type=usage.user_path,
                        help="lexnames(5WN) man page")
    parser.add_argument("--check", action="store_true", help="also load it with NLTK and look up a word")
    args = parser.parse_args(argv)
    try:
        folder = ensure_wordnet(args.nltk_data, args.source, args.man_page)
        if args.check:
            synsets = wordnet_reader(folder.parent.parent).synsets("dog")
            if not synsets:
                raise WordNetMissing(f"WordNet under {folder} loads but knows no 'dog'")
    except WordNetMissing as e:
        raise SystemExit(f"error: {e}") from e
    print(folder)

