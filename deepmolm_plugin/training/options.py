"""The launcher's command line as the host's parser reads it: the program name its
messages start with (PROG) and an option's value or presence in argv, in any spelling.

Separate because every check reads argv before any argument class exists, and the other
training modules say their lines under PROG; it imports nothing of ours."""

from __future__ import annotations

PROG = "python -m deepmolm_plugin.train"


def occurrences(argv, name: str):
    """(position, "=" or "", the value after "=") of each `--name` in argv, in every spelling
    HfArgumentParser takes: `--name`, `--na-me`, `--name=V`. The one reading of an option
    that option_value and gives_option share, so the two never disagree on a spelling."""
    spellings = {f"--{name}", f"--{name.replace('_', '-')}"}
    for i, arg in enumerate(argv):
        option, sep, inline = arg.partition("=")
        if option in spellings:
            yield i, sep, inline


def option_value(argv, name):
    """The last value given to `--name` (also spelled `--name=V`, `--na-me V`), else None:
    as the host's HfArgumentParser reads it (the last occurrence wins)."""
    value = None
    for i, sep, inline in occurrences(argv, name):
        if sep:
            value = inline
        elif i + 1 < len(argv):
            value = argv[i + 1]
    return value


def gives_option(argv, name: str) -> bool:
    """Whether `--name` is on the command line in any spelling (`--na-me`, `--name=V`, or
    bare, as HfArgumentParser takes a boolean)."""
    return next(occurrences(argv, name), None) is not None
