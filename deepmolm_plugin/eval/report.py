"""`python -m deepmolm_plugin.eval.report ANSWERS... --references QUESTIONS --out DIR`

Scores the host's model_vqa answer files (one per chunk/rank) against the reference
records, per task, and writes `DIR/metrics.json`, `DIR/metrics.md` (also printed),
`DIR/per_question.jsonl` and `DIR/plots/`.

The steps, one module each: `merge` (answer shards -> one answer per question, and the
reference records; its checks), `task_kinds` (how each question is scored), `scoring`
(the scores: metrics.json), `markdown` (the tables) and `outputs` (the files and figures).
Files named `*.aux_properties.jsonl` (model_vqa's property-head side files, which
`answers/*.jsonl` also matches) are skipped here with a note.

Questions model_vqa could not ask (listed in the `<answers stem>.failures.jsonl` beside an
answers file) are reported as not asked: rows `"scored": false, "not_asked": true` with
model_vqa's reason, `n_not_asked` per task and `counts.not_asked` in metrics.json, a line
under the tables and a warning on stderr; the answered questions are scored (was: the whole
report refused, "N question(s) have no answer in any shard"). A question with neither an
answer nor a failures entry (a chunk not run, a killed run) is still an error, and so is a
failures entry listed twice or written for a question the references now hold otherwise
(its prompt, molecule or image changed since: `merge.check_failures_pairing`). Such a report
says `"complete": false` in metrics.json: callers that take metrics.json as a finished
evaluation (scripts/experiment_fusion.py) run it again (was: taken as done, the questions
never asked again).

One report per --out at a time: it holds `<out>/.lock` (`output_lock`) from before anything
is read; a second report, or one into the OUT of a running `run_eval.sh` (which holds that
lock and hands it to the report it runs), is refused in one line, exit 2 (was: both wrote
the folder).

Exit status: 0 when the report is written, also with questions not asked (counted as
above) and with a task that is not scored (none of
its questions has a reference to score against: a warning names it, metrics.md a line
under its table, metrics.json its `not_scored`; the scores of the other tasks are kept,
as the scored questions beside left-out ones are); 1 with one `error:` line when the
inputs are refused (nothing is written), and when no task at all is left to score; 2 for
a bad argument, before anything is read (a path, an unknown tokenizer, an `hf:` one that
does not load or whose tokens hold white space).
"""

from __future__ import annotations

if __name__ == "__main__":  # before the imports below: a Ctrl-C while they load is one line too
    from deepmolm_plugin.entry_points import run_module

    run_module("deepmolm_plugin.eval.report", "python -m deepmolm_plugin.eval.report")

import argparse
import os
import sys
from pathlib import Path

from .. import output_lock, usage
from .jsonl import AUX_SUFFIX, failures_path
from .merge import ReportError, format_ids
from .outputs import overwritten_inputs, write_outputs
from .scoring import SAY_STAGES_FROM, build_report



def build_parser() -> argparse.ArgumentParser:
    from .metrics.text import DEFAULT_TOKENIZER, TOKENIZERS

    parser = argparse.ArgumentParser(prog="python -m deepmolm_plugin.eval.report",
                                     description="Merge model_vqa answer shards and score them per task.")
    parser.add_argument("answers", nargs="+", type=usage.user_path, help="answer JSONL files (one per chunk/rank)")
    parser.add_argument("--references", default=None, type=usage.user_path,
                        help="question file with question_id, task, answer, properties (eval.questions writes it)")
    parser.add_argument("--out", required=True, type=usage.user_path,
                        help="folder for metrics.json, metrics.md, per_question.jsonl, plots/")
    parser.add_argument("--tokenizer", default=DEFAULT_TOKENIZER, type=_tokenizer_name,
                        help=f"text-metric tokenizer: {', '.join(TOKENIZERS)} or hf:<local folder> "
                             f"(default {DEFAULT_TOKENIZER})")
    parser.add_argument("--nltk-data", default=None, type=usage.user_path, help="NLTK data folder holding corpora/wordnet "
                                                          "(default: $NLTK_DATA, else <venv>/nltk_data)")
    parser.add_argument("--no-plots", action="store_true")
    return parser


def _tokenizer_name(value: str) -> str:
    """--tokenizer as given, with `~` in an `hf:` folder expanded as in every path option
    (was: `hf:~/tok` passed the folder check, which expands it, and then the loader took
    `~/tok` for a Hub id and refused it)."""
    return f"hf:{usage.user_path(value[3:])}" if value.startswith("hf:") else value


def check_arguments(args: argparse.Namespace) -> None:
    """Paths and the tokenizer, before any file is read: a UsageError names the problem
    (missing answer files are reported by `merge.merge_answers`, all of them at once). An
    `hf:` tokenizer is loaded and tried on `metrics.text.PROBE`: one whose tokens hold white
    space is refused."""
    from .metrics.text import TOKENIZERS

    if args.references is not None:
        usage.existing_file(args.references, "--references")
    usage.output_folder(args.out, "--out")
    inputs = [*args.answers, *([args.references] if args.references is not None else [])]
    clash = overwritten_inputs(inputs, args.out)
    if clash:
        raise usage.UsageError(f"{', '.join(clash)}: this report's own output in --out {args.out} (an earlier "
                               f"report's file among the inputs?); it would be overwritten")
    if args.tokenizer.startswith("hf:"):
        usage.existing_folder(args.tokenizer[3:], "--tokenizer hf:")
        from .metrics.text import hf_tokenizer

        try:  # loaded now (and kept: the scorer reuses it), not in a traceback after the answers are read
            tok = hf_tokenizer(args.tokenizer[3:])
        except (OSError, ValueError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise usage.UsageError(f"--tokenizer {args.tokenizer}: no tokenizer loads from this folder ({reason})") from e
        from .metrics.text import PROBE, UnusableTokenizer, tokens_of

        try:  # a character-level tokenizer loads, and failed only after every file was read
            tokens_of(PROBE, tok)
        except UnusableTokenizer as e:
            raise usage.UsageError(f"--tokenizer {args.tokenizer}: {e}") from e
    elif args.tokenizer not in TOKENIZERS:
        raise usage.UsageError(f"--tokenizer {args.tokenizer!r}: use one of {', '.join(TOKENIZERS)} or hf:<folder>")


def _earlier_report(out: Path) -> str:
    """A note for a failed run whose --out holds an earlier report: its files are not this run's."""
    if (out / "metrics.json").is_file():
        return f"\nnote: nothing was written; the metrics.json in {out} is an earlier run's"
    return ""


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    usage.checked(parser, check_arguments, args)
    # the lock creates them; looked up by real path: `--out new/../keep` typed listed an existing,
    # empty `keep` as missing, and a refusal removed it
    made = _missing_folders(Path(os.path.realpath(args.out)))
    lock = usage.checked(parser, lambda a: output_lock.hold(output_lock.folder_lock(a.out, LOCK_TOOL)), args)
    try:
        _report(args)
    except BaseException:
        # a refused report writes nothing: it left behind the empty --out its lock had created
        lock.release()
        _remove_empty(made)
        raise
    lock.release()


def _missing_folders(folder: Path) -> list:
    """`folder` and those above it that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_empty(folders: list) -> None:
    """Remove `folders` (deepest first) while they are empty: never a file in them, nor a
    folder another run has put something in since."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


# who a refusal says holds --out: run_eval.sh takes the same lock for its OUT
LOCK_TOOL = "eval.report (or run_eval.sh)"


def _report(args: argparse.Namespace) -> None:
    """Read, score and write, holding --out's lock."""
    from .metrics.text import MAX_TOKENS, TextTooLong
    from .metrics.wordnet import WordNetMissing

    # `answers/*.jsonl` also matches model_vqa's side files: its property-head predictions, and
    # the failures file of an answers file given (read as answers: "question 'q3' has no text";
    # each answers file's own failures are read with it)
    listed = {failures_path(p) for p in args.answers}
    side_files = ((f"property-head file(s) (*{AUX_SUFFIX}): not answers", lambda p: str(p).endswith(AUX_SUFFIX)),
                  ("failures file(s) of the answer files given (*.failures.jsonl): read with their answers",
                   lambda p: Path(p) in listed))
    for what, is_side in side_files:
        side = [p for p in args.answers if is_side(p)]
        if side:
            print(f"note: skipping {len(side)} {what}", file=sys.stderr)
            args.answers = [p for p in args.answers if not is_side(p)]
    try:
        report, rows = build_report(args.answers, args.references, args.tokenizer, args.nltk_data,
                                    say=lambda line: print(line, file=sys.stderr, flush=True))
    except (ReportError, WordNetMissing, TextTooLong) as e:
        raise SystemExit(f"error: {e}{_earlier_report(Path(args.out))}") from e
    if len(rows) >= SAY_STAGES_FROM:
        print(f"writing the report in {args.out}{'' if args.no_plots else ', with plots'}", file=sys.stderr,
              flush=True)
    try:
        table = write_outputs(report, rows, Path(args.out), make_plots=not args.no_plots)
    except OSError as e:  # disk full, no permission: the earlier report's files are gone already
        raise SystemExit(f"error: writing the report in {args.out}: {e}\nnote: this run wrote no metrics.json; "
                         "the files there are no finished report") from e
    print(table)
    for key, what in (("empty", "are empty, scored as wrong"),
                      ("truncated", f"have more than {MAX_TOKENS} tokens; the text metrics scored their first "
                                    f"{MAX_TOKENS} (generation ran on to --max-new-tokens?)"),
                      ("capped", "stopped at --max-new-tokens before the model ended them, and may be cut short "
                                 "(raise --max-new-tokens)"),
                      ("value_may_be_cut", "are property answers stopped at --max-new-tokens with their number, "
                                           "or the unit after it, at the very end, which may be cut short (\"12\" "
                                           "of 1234.5, \"-0.19 Hart\"): scored invalid")):
        ids = [row["question_id"] for row in rows if row.get(key)]
        if ids:
            print(f"note: {len(ids)} answer(s) {what}: {format_ids(ids)}", file=sys.stderr)
    _warn_not_asked(rows)
    print(f"\nwrote {Path(args.out) / 'metrics.json'}", file=sys.stderr)


def _warn_not_asked(rows) -> None:
    """A warning naming the questions model_vqa could not ask, with the first one's reason:
    they are in no score (the exit status stays 0: the counts say it)."""
    unasked = [row for row in rows if row.get("not_asked")]
    if unasked:
        print(f"warning: {len(unasked)} question(s) could not be asked by model_vqa and are not scored "
              f"(counted as not asked in metrics.json and metrics.md): {format_ids([r['question_id'] for r in unasked])};"
              f" first, {unasked[0]['question_id']!r}: {unasked[0]['reason']}", file=sys.stderr)

