"""model_vqa `--resume`: answers an earlier run made are kept, the other questions asked.

Every answer line a run writes carries, in its `metadata`, the run's `settings` (model
folder, template, decoding options, conformer policy: `run_settings`; and, for the report's
check across chunks, the bytes of every image and structure file the question file names:
`data_files_digest`) and three digests: of the settings (without the data files: each
question's digest holds its own) with the model folder's files by size and time (`settings_digest`), of
its question as the model saw it (`question_digest`: the line the host got, the bytes of
its image and structure files, the molecule tokens) and of the line itself
(`content_digest`). With `--resume`, an earlier answer is kept only when all equal this run's;
every other question is asked again. Earlier answers are read from the answers file (a
finished run), from `<answers>.partial` (what a run stopped by Ctrl-C, SIGTERM or a
failure had answered) and from the host's `.<answers>.partial-<pid>` of a run killed
outright (SIGKILL, the OOM killer: no handler runs), whose digests the run wrote beside it
when it started (`host_partial`), and alike from each `--resume-from` file, its `.partial` and
its killed runs' files (another chunk's answers: `run_eval.sh` with another chunk count or
record order moves questions between chunks, whose answers were asked again). Lines without
the digests (a run before them), or edited by hand, are never kept. The property head's
predictions are kept with their answers, alike.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .. import usage
from ..molecule.inputs import MOLECULE_KEYS
from ..result_files import file_sha256
from .jsonl import REPORT_FILES, aux_path, failures_path

SETTINGS, QUESTION, SHOWN, CONTENT = "settings_digest", "question_digest", "settings", "content_digest"
# What each answer was asked about, field by field, as the question file wrote it
# (`asked_digests`): the report holds it against its references file's lines.
ASKED = "asked"
ASKED_FIELDS = ("image", *MOLECULE_KEYS)
# Whether generation stopped at --max-new-tokens (no end token: the answer may be cut mid-number),
# in each answer's metadata (model_vqa's `QuestionInputs.stopped_at_cap`); null where not known
CAPPED = "capped"
# The files of a model folder that make the model (weights, configs, tokenizer): the run's own
# outputs written beside them (answers, failures) changed the digest on every run.
MODEL_FILES = (".json", ".safetensors", ".bin", ".model", ".txt", ".pt", ".pth", ".tiktoken", ".py")


def run_settings(args) -> dict:
    """The options an answer depends on besides the model's files, as the answer lines
    show them (`metadata.settings`): the report refuses shards made with different ones.
    The host's `model_id` (the folder's name as typed) too: a resume through another name
    of the folder (a `latest` link) kept the answers under the first name, and the report
    refused the file as answers of two models."""
    from llava.mm_utils import get_model_name_from_path

    return {"model": str(usage.real_path(os.path.expanduser(args.model_path))),
            "model_id": get_model_name_from_path(args.model_path), "model_base": args.model_base,
            "conv_mode": args.conv_mode, "temperature": args.temperature, "top_p": args.top_p,
            "num_beams": args.num_beams, "max_new_tokens": args.max_new_tokens,
            "conformer_policy": args.conformer_policy}


def data_files_digest(files: List[Tuple[str, str]]) -> Optional[str]:
    """One digest of the files the whole question file names, as `(name in the question
    line, path read)` pairs: each name with its file's bytes (a missing file as missing).
    In the run settings (`image_files`, `structure_files`), so that the report refuses
    chunks whose --image-folder or --structure-folder held other pictures or structures
    under the same names (was: the folders were no setting, and `asked.image` digests the
    name alone); --resume needs no more than each question's own digest. Names, not paths: the same data
    moved to another folder is the same data. None when no line names a file. Every chunk
    digests every line's file, not only its own: the chunks' digests are compared."""
    if not files:
        return None
    digest, seen = hashlib.sha256(), {}
    for name, path in files:
        if path not in seen:
            seen[path] = file_sha256(path) if os.path.isfile(path) else "missing"
        digest.update(json.dumps([name, seen[path]]).encode())
    return digest.hexdigest()[:24]


def settings_digest(settings: dict, answers: Path) -> str:
    """`settings` and the model folder's files by size and time (a model retrained into the
    same folder is another model); the files this run writes beside its answers are not the
    model's, named exactly (was: every name starting with the answers' stem and a dot, so
    answers `model.jsonl` left `model.safetensors` out, and a model retrained in place kept
    the old weights' answers)."""
    folder = Path(settings["model"])
    listed = sorted(folder.iterdir()) if folder.is_dir() else []  # (a Hub name has no folder here)
    ours = set(REPORT_FILES)  # `eval.report --out MODEL` writes metrics.json beside the weights
    if usage.real_path(answers.parent) == usage.real_path(folder):  # the answers written inside the model folder
        ours |= {p.name for p in (answers, partial_path(answers), failures_path(answers), aux_path(answers),
                                  partial_path(aux_path(answers)))}
    # Hidden files are no model's: a run's `.<answers>.partial-<pid>.digests.json` inside the
    # model folder changed the digest, so --resume kept none of a killed run's answers and
    # chunks running at once were refused by the report as "retrained in place?".
    files = {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in listed
             if p.is_file() and p.suffix in MODEL_FILES and p.name not in ours and not p.name.startswith(".")}
    return hashlib.sha256(json.dumps([settings, files], sort_keys=True).encode()).hexdigest()[:24]


def question_digest(line: dict, files: List[str], molecule_fp) -> str:
    """One question as the model sees it: its line, the bytes of its files (image, structure:
    not their size and time, which a picture copied with its time kept shares) and its
    tokens."""
    digest = hashlib.sha256(json.dumps(line, sort_keys=True, default=str).encode())
    for path in files:
        if os.path.isfile(path):
            digest.update(bytes.fromhex(file_sha256(path)))
    if molecule_fp is not None:
        digest.update(molecule_fp.cpu().numpy().tobytes())
    return digest.hexdigest()[:24]


def asked_digests(line: dict) -> Dict[str, str]:
    """{field: digest} of a question-file line's image and molecule fields (ASKED_FIELDS),
    those it has. Carried by its answer (`metadata.asked`), so that the report can tell
    answers to another question file whose ids and prompt match (two splits numbered alike,
    one fixed prompt for every record) from answers to its references: per field, since a
    references file may hold fewer of them."""
    return {name: hashlib.sha256(json.dumps(line[name], sort_keys=True, default=str).encode()).hexdigest()[:16]
            for name in ASKED_FIELDS if line.get(name) is not None}


def content_digest(line: dict) -> str:
    """A line's own content (not its metadata): an answer edited by hand is not kept."""
    body = {k: v for k, v in line.items() if k != "metadata"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:24]


def partial_path(answers: Path) -> Path:
    """Where a stopped run keeps what it made (answers, or the property head's predictions)."""
    return answers.with_name(answers.name + ".partial")


def answer_lines(path: Path) -> List[dict]:
    """The whole lines of `path` that are JSON objects with a question_id (answers, or the
    property head's predictions); none when it is missing. The others are skipped with a
    note naming the file and their line numbers (`unreadable_note`): their questions are
    asked again. Was: skipped without a word, and bytes that are not UTF-8 replaced.
    Skipped, not refused, also in the middle of a file: a line kept must carry its own
    content digest (`kept_lines`), so a damaged file cannot pass a changed answer, and the
    question whose line is lost is asked again; the note says the file is not as written."""
    if not path.is_file():
        return []
    lines, unreadable = [], []
    raw_lines = path.read_bytes().splitlines()
    for number, raw in enumerate(raw_lines, 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # (RecursionError: nested ~1000 deep)
            line = None
        if isinstance(line, dict) and "question_id" in line:
            lines.append(line)
        else:
            unreadable.append(number)
    if unreadable:
        print(unreadable_note(path, unreadable, len(raw_lines)), file=sys.stderr)
    return lines


def unreadable_note(path: Path, numbers: List[int], total: int) -> str:
    """'note: FILE: line(s) 2, 5 of 9 ...': the lines `answer_lines` could not read. A last
    line alone is a run killed while writing it; another is a file damaged since (an editor,
    a copy)."""
    cut = numbers == [total]
    why = ("the last line, cut off: a run killed while writing it?" if cut
           else "a file damaged since it was written (an editor, a copy)?")
    shown = ", ".join(str(n) for n in numbers[:20]) + (f", ... ({len(numbers)} in all)" if len(numbers) > 20 else "")
    return (f"note: {path}: line(s) {shown} of {total} are not answer lines (not UTF-8 JSON objects with a "
            f"question_id; {why}): skipped, and a question whose answer was there is asked again")


def kept_lines(lines: List[dict], settings: str, digests: Dict[str, str], wanted=None) -> List[dict]:
    """The lines made with `settings` for a question that now has the digest they carry
    (and, given `wanted`, whose question_id is in it), the first one per question."""
    kept: Dict[str, dict] = {}
    for line in lines:
        qid, made = str(line["question_id"]), line.get("metadata")
        if (qid not in kept and isinstance(made, dict) and made.get(SETTINGS) == settings
                and qid in digests and made.get(QUESTION) == digests[qid] and (wanted is None or qid in wanted)
                and made.get(CONTENT) == content_digest(line)):
            kept[qid] = line
    return list(kept.values())


def changed_settings(lines: List[dict], shown: dict, settings: str, wanted) -> List[str]:
    """Why earlier answer `lines` for questions in `wanted` were not kept, as far as their run
    settings say it: each setting (`metadata.settings`) whose value differs from this run's
    `shown`, as "name old -> new", or, where none does but the settings digest differs, that
    the model folder's files changed. Empty when every such line was made with `settings`.
    Was: `--resume: 0 of 40 questions keep ...` with no reason (a --dtype or
    --max-new-tokens that differs, a model retrained in place)."""
    found: List[str] = []
    for line in lines:
        made = line.get("metadata") if isinstance(line.get("metadata"), dict) else {}
        if str(line.get("question_id")) not in wanted or made.get(SETTINGS) == settings:
            continue
        earlier = made.get(SHOWN) if isinstance(made.get(SHOWN), dict) else {}
        differ = [f"{key} {earlier[key]!r} -> {shown.get(key)!r}" if key in earlier
                  else f"{key} {shown[key]!r}, which the earlier run did not record (a run of an older version)"
                  for key in sorted(set(earlier) | set(shown)) if earlier and earlier.get(key) != shown.get(key)]
        for reason in differ or ["the model folder's files (retrained or edited in place?)" if earlier
                                 else "settings this version no longer reads (an older run)"]:
            if reason not in found:
                found.append(reason)
    return found


def earlier_lines(files: List[Path]) -> List[dict]:
    """The lines of each of `files` and of its `.partial`, in that order."""
    return [line for path in files for line in answer_lines(path) + answer_lines(partial_path(path))]


def kept_answers(lines: List[dict], settings: str, digests: Dict[str, str], killed: List[dict] = ()) -> Dict[str, dict]:
    """{question_id as text: earlier answer line} from the lines of the answers files (this
    run's, then those of `--resume-from`, with their `.partial`: `earlier_lines`) and the
    ``killed`` runs' lines (``killed_lines``)."""
    return {str(line["question_id"]): line for line in kept_lines(list(lines) + list(killed), settings, digests)}


# --- a run killed outright ----------------------------------------------------------------------
def host_partial(answers: Path, pid: int) -> Path:
    """Where process `pid` has the host write its answers (put into place when it finishes)."""
    return answers.parent / f".{answers.name}.partial-{pid}"


def _digests_beside(partial: Path) -> Path:
    return partial.with_name(partial.name + ".digests.json")


def start_host_partial(partial: Path, settings: str, digests: Dict[str, str]) -> None:
    """Beside the host's partial file, before the host writes it: the digests a later
    --resume tags its lines with, should this process be killed outright (the host writes
    and flushes an answer a line, but carries no digests). `digests`: the questions whose
    answer alone is the result (not those the property head predicts for as well, whose
    predictions are held in memory until the end)."""
    from ..result_files import write_atomic

    write_atomic(_digests_beside(partial), json.dumps({SETTINGS: settings, "digests": digests,
                                                       "started": _started(os.getpid())}))


def remove_host_partial(partial: Path) -> None:
    partial.unlink(missing_ok=True)
    _digests_beside(partial).unlink(missing_ok=True)


def host_partials(answers: Path) -> List[Path]:
    """The host partial files for `answers` (`host_partial` of any process), and their digests."""
    return sorted(answers.parent.glob(glob.escape(f".{answers.name}.partial-") + "*"))


def killed_partials(answers: Path) -> List[Path]:
    """The host partial files for `answers` whose process is gone (killed outright), also
    where only their digests are left (a run killed while its model loaded, before the host
    opened its file: the digests stayed for good). A live process of the same number that
    started at another time (a container restarted, numbers given again) is not the run."""
    found = set()
    for path in host_partials(answers):
        name = path.name[:-len(".digests.json")] if path.name.endswith(".digests.json") else path.name
        pid = name.rsplit("-", 1)[1]
        partial = path.with_name(name)
        if pid.isdigit() and not (_alive(int(pid)) and _made_by(partial, int(pid))):
            found.add(partial)
    return sorted(found)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _started(pid: int) -> Optional[str]:
    """When process `pid` started (Linux: /proc/<pid>/stat's start time in clock ticks since
    boot, with the boot's id); None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"  # field 22; the name in (...) may hold spaces


def _read_digests(partial: Path) -> Optional[dict]:
    """What `start_host_partial` wrote beside `partial`, or None (none, unreadable, or not
    the object it writes)."""
    try:
        made = json.loads(_digests_beside(partial).read_text())
    except (OSError, ValueError):
        return None
    return made if isinstance(made, dict) else None


def _made_by(partial: Path, pid: int) -> bool:
    """Whether the live process `pid` is the one that wrote `partial` (its digests record
    its start; without them, or where starts cannot be read, it is taken to be)."""
    made = _read_digests(partial)
    recorded = made.get("started") if made is not None else None
    now = _started(pid)
    return recorded is None or now is None or recorded == now


def killed_lines(partials: List[Path], shown: dict, asked: Dict[str, Dict[str, str]]) -> List[dict]:
    """The answers in killed runs' partial files, tagged as those runs would have tagged
    them (``kept_lines`` then keeps those made with this run's settings for the same
    question). A file without its digests (a run before them) gives none; a line cut by the
    kill is no JSON and not read; an empty text is a question that failed while generating."""
    lines = []
    for partial in partials:
        made = _read_digests(partial)
        digests = made.get("digests") if made is not None else None
        if not isinstance(digests, dict):
            continue
        answered = [line for line in answer_lines(partial) if line.get("text")
                    and str(line["question_id"]) in digests and str(line["question_id"]) in asked]
        lines += tagged(answered, made.get(SETTINGS), digests, shown, asked)
    return lines


def tagged(lines: List[dict], settings: str, digests: Dict[str, str], shown: Optional[dict] = None,
           asked: Optional[Dict[str, Dict[str, str]]] = None) -> List[dict]:
    """This run's lines with the digests a later `--resume` checks (and, given `shown`, the
    run's settings as the report compares them across shards; given `asked`, each
    question's `asked_digests`)."""
    out = []
    for line in lines:
        qid = str(line["question_id"])
        metadata = line.get("metadata") if isinstance(line.get("metadata"), dict) else {}
        metadata = {**metadata, SETTINGS: settings, QUESTION: digests[qid], CONTENT: content_digest(line)}
        if shown is not None:
            metadata[SHOWN] = shown
        if asked is not None:
            metadata[ASKED] = asked[qid]
        out.append(dict(line, metadata=metadata))
    return out


def write_lines(path: Path, lines: List[dict]) -> None:
    """Answer lines, whole or not at all (`result_files.write_atomic`)."""
    from ..result_files import write_atomic

    write_atomic(path, "".join(json.dumps(line) + "\n" for line in lines))
