"""The contract between dataset readers and the preparation engine."""

from __future__ import annotations

import csv
import functools
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, FrozenSet, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

# separator_problem: the one rule of every CSV reader; this package's readers import it from here
from ...csv_table import SEPARATORS, first_row, separator_problem  # noqa: F401
# the one rule for control characters lives with the structure readers (molecule never imports data)
# id_key and id_problem: this package's rules too (the structure readers' and the molecule tools')
from ...molecule.io.base import control_problem, id_key, id_problem  # noqa: F401
from ...molecule.io.sniff import head_of, looks_like
from ...molecule.sidecar import MANIFEST, MANIFEST_TOOL, read_manifest
from ...usage import broken_link


@dataclass(frozen=True)
class MoleculeSpec:
    """Where a record's molecule comes from; exactly one form is set.

    - smiles: a SMILES string (backslashes already repaired); a conformer is generated;
    - structure: (path, index) of a record in a structure file (SDF/MOL/MOL2/XYZ/PDB);
    - atoms + coordinates: element symbols (hydrogens included) and (n, 3) coordinates,
      the truth for 3D-MoIT / PubChemQC; `smiles`, if also given, is verified against them.
    """

    smiles: Optional[str] = None
    structure: Optional[tuple] = None  # (path: str, index: int)
    atoms: Optional[Sequence[str]] = None
    coordinates: Optional[Sequence[Sequence[float]]] = None
    charge: Optional[int] = None  # the total charge a source states; None: not stated (as in records)

    def __post_init__(self):
        forms = [self.structure is not None, self.atoms is not None]
        if self.atoms is not None and self.coordinates is None:
            raise ValueError("atoms without coordinates")
        if sum(forms) > 1 or (not any(forms) and not self.smiles):
            raise ValueError("a MoleculeSpec needs exactly one of smiles, structure, atoms+coordinates")


@dataclass(frozen=True)
class SourceItem:
    """One training/evaluation example: a question about one molecule and its answer.

    id: unique within the dataset and stable across runs (it names outputs);
    split: train / valid / test (as the source defines them);
    task: the task name, a key of deepmolm_plugin.data.prompts.TASKS;
    answer: the target text; instruction: only when the source's own wording must be
    kept (else the shared prompt table supplies it); image: an existing depiction to
    copy (e.g. Vis-CheBI20's), else one is rendered; properties: numeric labels, e.g.
    {"Molecular Weight": 180.16}; extra: source fields worth keeping (CID, ...); metric: how
    evaluation scores the item when its task name does not say (`eval.task_kinds.KINDS`:
    "binary" for a yes/no label), written into the record as `metric`.
    """

    id: str
    split: str
    task: str
    molecule: MoleculeSpec
    answer: str
    instruction: Optional[str] = None
    image: Optional[str] = None
    properties: Dict[str, float] = field(default_factory=dict)
    extra: Dict[str, object] = field(default_factory=dict)
    metric: Optional[str] = None


@dataclass(frozen=True)
class SourceError:
    """A source record that cannot be made correct: reported, never silently dropped."""

    id: str
    stage: str  # e.g. "read", "schema", "atoms"
    reason: str


Reader = Callable[[str, dict], Iterator[Union[SourceItem, SourceError]]]
# (folder, options) -> [(file, relative POSIX name)]: the files of a folder input a reader reads
InputFiles = Callable[[Path, dict], List[Tuple[Path, str]]]
READERS: Dict[str, Reader] = {}
READER_OPTIONS: Dict[str, FrozenSet[str]] = {}
READER_FILES: Dict[str, InputFiles] = {}
# name -> the reader's check of its options that needs no input (`register_reader`'s `check`)
READER_CHECKS: Dict[str, Callable[[str, dict], None]] = {}
# name -> its options that only say where to keep something (chebi20-mm's image_dir cache),
# not what is read: `prepare.identity` compares whether they are given, not where they point
READER_LOCATIONS: Dict[str, FrozenSet[str]] = {}


def check_options(name: str, options: dict) -> None:
    """Refuse an option the reader ``name`` did not declare, listing the ones it takes: a
    typo (``splt=train``) would otherwise be ignored and the whole input read."""
    allowed = READER_OPTIONS[name]
    unknown = sorted(set(options) - allowed)
    if unknown:
        takes = f"it takes {sorted(allowed)}" if allowed else "it takes no options"
        raise ValueError(f"{name}: unknown option(s) {unknown}; {takes}")
    # JSON null (--option splits=null) is never what a user means: readers read it as the
    # option not given (every split, every task), so it is refused, as `splits=` is.
    nulls = sorted(key for key, value in options.items() if value is None)
    if nulls:
        raise ValueError(f"{name}: option(s) {nulls} are JSON null: give a value, or leave the option out")
    if name in READER_CHECKS:  # before --out is touched (prepare's check_reader_options) and before a row is read
        READER_CHECKS[name](name, options)


def csv_header(reader, path, fmt: str) -> list:
    """The first non-blank row of a ``csv.reader``: its header. Blank lines before it are
    skipped (as between rows); a header the csv module cannot parse (a field over
    ``csv.field_size_limit()``) is a configuration error naming the file, not a csv.Error
    traceback; a file with no row at all is "empty"."""
    try:
        header = first_row(reader)
    except csv.Error as error:
        raise ValueError(f"{fmt}: {path}: cannot read the header (line {reader.line_num}): {error}") from error
    if header is None:
        raise ValueError(f"{fmt}: {path} is empty (no header line)")
    problem = separator_problem(header)
    if problem:
        raise ValueError(f"{fmt}: {path}: {problem}")
    return header


# the --format readers that take structure-file formats: format -> (the suffix `sniff` names it by, what it reads)
_STRUCTURE_FORMATS = {"csv": (".csv", "a CSV table"), "sdf": (".sdf", "an SDF")}


def other_format_problem(path, fmt: str) -> Optional[str]:
    """Why the file `path`, given as --format `fmt` (csv or sdf), is another format's, when its
    first lines say so (`molecule.io.sniff.looks_like`), naming the --format that reads it:
    an SDF given as --format csv said "no 'smiles' column in the header ['     RDKit    2D']",
    a CSV given as --format sdf failed every row as an unparseable record. None otherwise."""
    own, what = _STRUCTURE_FORMATS[fmt]
    seen = looks_like(head_of(path))
    if seen is None or seen[0] == own:
        return None
    other = next((name for name, (suffix, _) in _STRUCTURE_FORMATS.items() if suffix == seen[0]), None)
    return f"looks like {seen[1]}, not {what}" + (f"; give it with --format {other}" if other else "")


def id_file_name(fmt: str, path, name: str, option: str) -> str:
    """`name`, the part of a file's name (CSV: its stem; SDF: its name, or its path inside a
    folder input) that a reader's default ids ``<name>#<row>`` start with, checked once
    before any row is read. A name `id_problem` would refuse in every id (" esol.csv": white
    space at its start; a tab or line break in it) failed every row at stage "id", exit 1,
    blaming ids the user never wrote; now it is one configuration error naming the file and
    `option` (the option that gives ids instead). Refused, not stripped: " esol.csv" and
    "esol.csv" (one folder of SDF files) would make the same ids."""
    if id_problem(f"{name}#0") is None:  # what the ids would be: white space at the end is inside them
        return name
    control = next((c for c in name if unicodedata.category(c) == "Cc"), None)
    invisible = next((c for c in name if unicodedata.category(c) == "Cf"), None)
    why = (f"a control character ({control!r}: a tab, a line break...)" if control is not None
           else f"an invisible format character (U+{ord(invisible):04X})" if invisible is not None
           else "white space at its start")
    renamed = "the file or its folder" if "/" in name else "the file"  # a path inside a folder input
    raise ValueError(f"{fmt}: {path}: its name {name!r} cannot make record ids ({why}); rename {renamed} "
                     f"or give {option}")


def option_name(fmt: str, options: dict, name: str) -> Optional[str]:
    """The column or field an option names (``id_field``, ``split_column``...), None when it
    is not given. A blank or non-text one is a configuration error: ``--id-field ""`` was
    taken as no option, and the default ids were made without a word."""
    value = options.get(name)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ValueError(f"{fmt}: option {name} must name a column or field, got {value!r} "
                         "(leave it out for the default)")
    return value


def repeated_id(seen: Dict[str, str], row_id: str, where: str) -> Optional[str]:
    """Why `row_id` (from the data's id column or field) cannot name the row at `where`: an
    earlier row has it (`id_key`; None: it is new, and now taken). Checked when the row is
    read, so the second row fails whether or not the first one made records (a failed
    first row and a good second one gave one id in failures.jsonl and in the records)."""
    first = seen.setdefault(id_key(row_id), where)
    return None if first == where else f"{where}: id {row_id!r} is also the id of {first}"


# Split names become file names (<split>.json, fp/<split>.npy) next to manifest.json.
SPLIT_NAME = re.compile(r"[A-Za-z0-9_-]+")
SPLIT_MAX = 100  # characters (ASCII: bytes) of a split name, well below a file name's 255 bytes
# Device names Windows reserves in every folder, with any suffix: CON.json cannot be made there.
WINDOWS_DEVICES = frozenset(["con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                             *(f"lpt{i}" for i in range(1, 10))])


def split_problem(split) -> Optional[str]:
    """Why `split` cannot name a split's files, or None. "manifest" in any case would be
    (on a case-insensitive file system: macOS, Windows) the run's own manifest.json."""
    if not isinstance(split, str) or not SPLIT_NAME.fullmatch(split):
        return f"split {split!r} is not a plain name (letters, digits, _ and -)"
    if len(split) > SPLIT_MAX:  # was: the whole run failed writing `fp/<split>.npy`, and so did every rerun
        return (f"split {split[:40]!r}... is {len(split)} characters long, more than {SPLIT_MAX}: its files "
                f"(`<split>.json`, `fp/<split>.npy`, temporary names) would pass a file name's 255 bytes")
    if split.lower() == "manifest":
        return f"split {split!r} would name its records {split}.json, which is the run's manifest.json"
    if split.lower() in WINDOWS_DEVICES:
        return f"split {split!r} is a device name on Windows, where {split}.json cannot be made"
    return None


def is_hidden(relative: Path) -> bool:
    """A hidden file, or one in a hidden folder (``.git``, ``.progress``): never an input."""
    return any(part.startswith(".") for part in relative.parts)


# What a deepmolm-prepare output folder (its --out) holds: `.progress/` while a run works
# on it, and `manifest.json` naming the tool once it is finished.
OUTPUT_PROGRESS, OUTPUT_MANIFEST, OUTPUT_TOOL = ".progress", MANIFEST, MANIFEST_TOOL


def is_prepared_output(folder: Path) -> bool:
    """Whether `folder` is (or is becoming) a deepmolm-prepare output."""
    if (folder / OUTPUT_PROGRESS).is_dir():
        return True
    try:
        manifest = read_manifest(folder)
    except ValueError:  # unreadable, or not JSON: a user's own file
        return False
    # Only a manifest that names the tool marks an output here (a user's own manifest.json
    # in an input folder, without a "tool", must not hide that folder's files).
    return manifest is not None and manifest.get("tool") == OUTPUT_TOOL


def visible_files(folder: Path) -> List[Tuple[Path, str]]:
    """(file, relative POSIX name) of every file under `folder` that is not hidden, sorted:
    the files that make up a folder input, for a reader and for the run's input checksums
    alike (a file one of them saw and the other did not would go unnoticed when edited).
    A deepmolm-prepare output folder inside it is another run's output, never input: its
    files counted in this run's input checksums, so whichever run wrote last made the
    other's rerun fail as "input changed". A link to nothing (or a loop of links) is an
    error naming it (FileNotFoundError), not a file left out."""
    files, walked, broken = [], set(), []
    # Links are followed (a folder of links to data is common on clusters; a linked folder
    # was skipped without a word), each real folder walked once (a link to an ancestor is
    # no loop) and each real file listed once, under its first name in sorted order (a
    # link to a file also in the input read its records twice, under two ids).
    for root, dirs, names in os.walk(folder, followlinks=True):
        here = Path(root)
        if os.path.realpath(here) in walked:
            dirs[:] = []
            continue
        walked.add(os.path.realpath(here))
        dirs[:] = sorted(d for d in dirs if not is_hidden(Path(d)) and not is_prepared_output(here / d))
        for name in names:
            path = here / name
            relative = path.relative_to(folder)
            if is_hidden(relative):
                continue
            if path.is_file():
                files.append((path, relative.as_posix()))
                continue
            problem = broken_link(path)
            if problem:
                broken.append(f"{relative.as_posix()} {problem}")
    if broken:  # was left out without a word: a folder of links into storage since expired lost files
        more = f" and {len(broken) - 3} more" if len(broken) > 3 else ""
        raise FileNotFoundError(f"{'; '.join(broken[:3])}{more}: remove the link or make what it names available")
    unique = {}
    for path, name in sorted(files):
        unique.setdefault(os.path.realpath(path), (path, name))
    return sorted(unique.values())


_UNDECODABLE = re.compile("[\udc80-\udcff]")  # what errors="surrogateescape" makes of a non-UTF-8 byte


def without_trailing_blanks(fields: list, width: int) -> list:
    """A row's fields without the blank ones past the `width` a table has: a separator at
    the end of a line (``a<TAB>b<TAB>c<TAB>``, ``a,b,c,``, a common export artefact) ends
    the row; it does not start a field. A row that is still too wide holds text where no
    column is (`field_count_problem` names it)."""
    end = len(fields)
    while end > width and not (isinstance(fields[end - 1], str) and fields[end - 1].strip()):
        end -= 1
    return fields[:end]


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def field_count_problem(fields: list, names: Sequence[str], quoted: bool = False) -> Optional[str]:
    """What is wrong with a row of `len(fields)` fields in a table of the columns `names`,
    worded to follow "N fields, expected M": the text past the last column ("a 4th field 'x'
    after the description") or the columns missing ("no description"); None when it fits.
    `quoted`: column names of a user's table, written "column 'y'"."""
    width = len(names)
    names = [f"column {n!r}" if quoted else n for n in names]
    if len(fields) == width:
        return None
    if len(fields) < width:
        return "no " + ", ".join(names[len(fields):])
    extra = fields[width:]
    shown = ", ".join(repr(v if len(v) <= 40 else v[:40] + "...") for v in extra[:3])
    shown += ", ..." if len(extra) > 3 else ""
    what = f"a {_ordinal(width + 1)} field {shown}" if len(extra) == 1 else f"{len(extra)} more fields ({shown})"
    return f"{what} after the {names[-1]}"


# What a table or export writes for a missing text value: pandas' ``astype(str)`` of a
# missing cell ("nan", "None", "<NA>"), Excel's "#N/A", hand-written "N/A", "-", "?".
# Compared case-insensitively with the white space around the text aside; "NA" only in
# capitals ("Na" is sodium). Was: each was kept as the answer to learn and score.
MISSING_MARKERS = frozenset(["n/a", "nan", "none", "null", "-", "--", "?", "#n/a", "<na>"])


def missing_marker(text: str) -> Optional[str]:
    """The missing-value marker that `text` is (as written, trimmed), or None."""
    stripped = text.strip()
    return stripped if stripped.casefold() in MISSING_MARKERS or stripped == "NA" else None


def answer_problem(text: str, field: str) -> Optional[str]:
    """Why the text of `field` is no answer, or None: the one rule of every reader for a
    text answer. Blank (nothing but white space), or only a missing-value marker
    (`missing_marker`): "nan" was trained as the description of a molecule. A reader that
    skips a blank cell (csv, sdf, chebi20-mm's iupacname) asks `missing_marker` alone."""
    if not text.strip():
        return f"blank {field}"
    marker = missing_marker(text)
    return None if marker is None else f"{field} is {marker!r}, a missing-value marker, not an answer"


def undecodable(text: str) -> bool:
    """Whether text read with ``errors="surrogateescape"`` held a byte that is not UTF-8:
    readers open files that way so that such a byte is its own row's failure, where a
    strict decode would end the whole read (naming neither the file nor the line)."""
    return _UNDECODABLE.search(text) is not None


def fields_control_problem(fields) -> Optional[str]:
    """The first `control_problem` of a row's (field name, value) pairs, or None; a value
    that is not text (a JSON number) is skipped."""
    return next((problem for name, value in fields if isinstance(value, str)
                 for problem in [control_problem(value, name)] if problem), None)


def option_list(fmt: str, name: str, value) -> Optional[list]:
    """An option that names one or several things (``splits``, ``tasks``): None, a string
    (one name, or names separated by commas, as the column options take them: ``--option
    splits=train,test`` was looked for as one split named "train,test") or a list of
    strings; anything else (``--option splits=1`` arrives as the int 1) is a configuration
    error, not a TypeError from deep inside the reader. No split or task name holds a comma.
    An empty list names nothing and is refused like ``splits=`` (was: read as "not given",
    so ``--option 'splits=[]'`` from a filter that matched nothing prepared every split, the
    test split included); None is "not given" (JSON null in --option is refused earlier,
    `check_options`)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and not value:
        raise ValueError(f"{fmt}: option {name} is an empty list and names nothing: name at least one, "
                         f"or leave the option out for all")
    values = value.split(",") if isinstance(value, str) else value
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{fmt}: option {name} must be a name or a list of names, got {value!r}")
    if any(not v.strip() for v in values):
        raise ValueError(f"{fmt}: option {name} holds a blank name: {value!r}")
    return list(dict.fromkeys(v.strip() for v in values))  # a name given twice is read once, not duplicated


def option_bool(fmt: str, name: str, value, default: bool) -> bool:
    """A yes/no option: JSON true/false (or the words); ``bool("False")`` would be True."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("true", "yes", "1", "false", "no", "0"):
        return word in ("true", "yes", "1")
    raise ValueError(f"{fmt}: option {name} must be true or false, got {value!r}")


def all_files(folder: Path, options: dict) -> List[Tuple[Path, str]]:
    """A reader's input files when it names none: every visible file of the folder."""
    return visible_files(folder)


def input_files_of(fmt: str, folder: Path, options: dict) -> List[Tuple[Path, str]]:
    """The files of the folder input `folder` that the reader `fmt` reads with `options`:
    what identifies the input (`prepare.identity`). Every visible file did, so a log
    written into the folder (nohup.out) failed the run that wrote it as "input changed"."""
    return READER_FILES[fmt](folder, options)


def register_reader(name: str, *, options: Iterable[str], files: InputFiles = all_files,
                    check: Optional[Callable[[str, dict], None]] = None,
                    locations: Iterable[str] = ()) -> Callable[[Reader], Reader]:
    """Register a reader under a ``--format`` name with the option names it takes, the
    files of a folder input it reads (`files`; default: all of them), an optional
    `check(name, options)` of option values that needs no input (raises ValueError), run
    with the option names (`check_options`), and the options that are only `locations`
    (`READER_LOCATIONS`).

    ``options`` is required (``()`` for none) so that no reader can forget it: the
    registered reader checks its options when called, before it reads anything.
    """
    allowed = frozenset(options)

    def deco(fn: Reader) -> Reader:
        if name in READERS:
            raise ValueError(f"reader {name!r} registered twice")

        @functools.wraps(fn)
        def checked(input_path: str, reader_options: dict):
            check_options(name, reader_options)
            return fn(input_path, reader_options)

        READERS[name] = checked
        READER_OPTIONS[name] = allowed
        READER_FILES[name] = files
        if check is not None:
            READER_CHECKS[name] = check
        READER_LOCATIONS[name] = frozenset(locations)
        return checked

    return deco
