"""The rerun of a finished job: an --output_dir whose final model is saved at or past the
end this command sets (main exits 0, changing nothing), a last checkpoint at the end
without that final save (refused), and a finished run a new one would overwrite.

Separate because it decides whether there is a run to go on with at all, before the
resume rules ask whether it can be gone on with."""

from __future__ import annotations

import json
import os

from deepmolm_plugin import usage
from deepmolm_plugin.training.checkpoint_problems import RESUMED_WEIGHTS
from deepmolm_plugin.training.checkpoints import resumed_checkpoint, resumes
from deepmolm_plugin.training.options import PROG


def check_finished_run(output: str, output_dir: str, unfinished: "str | None" = None) -> None:
    """An --output_dir holding a saved model (a finished run) and no checkpoint to resume:
    the run would write over it without a word (another projector's model replaced a
    finished one, exit 0). Refused. `unfinished`: its only checkpoint, a save that was cut
    short (unfinished_save), named so the message says why there is none to resume."""
    saved = [name for name in ("mm_projector.bin", *RESUMED_WEIGHTS) if os.path.isfile(os.path.join(output, name))]
    if saved:
        cut = (f" ({os.path.basename(unfinished)} was cut short while being saved: no trainer_state.json)"
               if unfinished else "")
        raise usage.UsageError(f"--output_dir {output_dir} holds a finished run ({saved[0]}) and no checkpoint to "
                               f"resume{cut}: this run would overwrite it; give another --output_dir, or move that "
                               "run away first")


def saved_state(folder: str) -> "dict | None":
    """`folder`'s trainer_state.json as an object holding an integer global_step, else None
    (none there, or not such a file: a resumed checkpoint's is checked by
    checkpoint_files_problem)."""
    try:
        with open(os.path.join(folder, "trainer_state.json"), encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(state, dict) or isinstance(state.get("global_step"), bool) or not isinstance(
            state.get("global_step"), int):
        return None
    return state


def run_end(options) -> str:
    """The end this command sets, in its options' words."""
    return (f"--max_steps {options.max_steps}" if options.max_steps > 0
            else f"--num_train_epochs {options.num_train_epochs:g}")


def reached_end(state: dict, options) -> bool:
    """Whether a Trainer state is at or past the end this command sets: its step against
    --max_steps when that is > 0 (the Trainer's rule), else its epoch (the Trainer's own
    count, fractions of an epoch included) against --num_train_epochs, so no step count per
    epoch is worked out here."""
    if options.max_steps > 0:
        return state["global_step"] >= options.max_steps
    epoch = state.get("epoch")
    return isinstance(epoch, (int, float)) and epoch >= options.num_train_epochs - 1e-6


def finished_final_save(options) -> "str | None":
    """finished_run_line's line when --output_dir holds the final save of a run at or past
    the end this command sets (its trainer_state.json and model), else None; never refuses."""
    output = os.path.expanduser(options.output_dir or "")
    final = saved_state(output)
    saved = ("mm_projector.bin", *RESUMED_WEIGHTS)  # as check_finished_run tells a saved model
    model = next((name for name in saved if os.path.isfile(os.path.join(output, name))), None)
    if final is None or model is None or not reached_end(final, options):
        return None
    return (f"{PROG}: --output_dir {options.output_dir} holds a finished run: its final model ({model}) was saved "
            f"at step {final['global_step']}, at or past the end this command sets ({run_end(options)}); nothing "
            "to train, nothing changed (a larger --max_steps or --num_train_epochs trains it on)")


def finished_run_line(options) -> "str | None":
    """For a command whose --output_dir already holds the end of its run (the rerun of a
    finished job from a queue): the line saying so, and main exits 0 changing nothing. Was:
    the host resumed the last checkpoint and trained one step past --max_steps at learning
    rate 0, wrote checkpoint-N+1 and replaced trainer_state.json's train_loss with that
    step's. Finished: the final model saved (the host writes trainer_state.json into
    --output_dir, then the model) at or past the end. A last checkpoint at or past the end
    without that final save (the run stopped while saving it) is refused: the step past the
    end would be trained again. Called once the resume checks have passed."""
    output = os.path.expanduser(options.output_dir or "")
    checkpoint = resumed_checkpoint(output) if resumes(output) else None
    if checkpoint is None:
        return None
    line = finished_final_save(options)
    if line:
        return line
    state = saved_state(checkpoint)
    if state is not None and reached_end(state, options):
        name = os.path.basename(checkpoint)
        raise usage.UsageError(f"--output_dir {options.output_dir}: {name} is at step {state['global_step']}, at or "
                               f"past the end this command sets ({run_end(options)}), but no final model was saved in "
                               "--output_dir (the run stopped during its last save): the host would train a step past "
                               f"the end; use {name} as the model, or give a larger --max_steps or --num_train_epochs "
                               "to train on")
    return None
