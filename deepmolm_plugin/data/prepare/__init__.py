"""deepmolm-prepare: a public dataset -> host training records, ready for the launcher.

    deepmolm-prepare --format csv --input ESOL.csv --out data/esol \\
        --label-columns "measured log solubility in mols per litre=log solubility" --workers 8

A reader (`deepmolm_plugin.data.sources`, one module per ``--format``) turns the input into
`SourceItem`s; this engine turns each into a record, in input order:

1. molecule: `MoleculeSpec` -> `MoleculeRecord` (SMILES: conformer per
   ``--conformer-policy``; structure file + index; atoms + coordinates), with bounded work:
   at most ``--max-atoms`` heavy atoms (default 256) and ``--embed-timeout`` seconds of
   conformer embedding (default 60), so one huge molecule becomes a failure line naming
   the limit instead of stalling the run;
2. ``molecule_fp`` E3FP tokens, stored in the split's sidecar (`sidecar.py`);
3. depiction: rendered with `render_molecule` (from the SMILES when the item has one, else
   from the structure), or the item's own image copied; stored content-addressed;
4. conversation: the shared prompt table's instruction (`prompts.py`) and the answer.

A record that cannot be made correct (`SourceError` from the reader, `MoleculeError` while
building, fingerprinting or drawing, an empty answer) becomes a line of the failures file
naming it and the stage; the run goes on. So does any other exception while one record is
made (a library's error: reason ``unexpected <Type>: ...`` with where it was raised), and a
copied picture that Pillow cannot decode completely (``load()``, not only ``verify()``) or
that exceeds its decompression-bomb limit. Readers make a row they cannot parse (a CSV field
over ``csv.field_size_limit()``, a damaged LMDB page) a `SourceError` and read on. Records
are made in worker processes (also with ``--workers 1``); a worker that dies (segfault,
OOM kill) breaks its pool, whose unfinished records are then made again one per fresh
process: the one whose process dies again is a failure (stage ``worker``, naming the
signal or exit code) committed with its chunk, so no resume meets that crash again. A
reader that breaks the contract (unknown task, bad split name, not a `SourceItem`) is a
bug and stops the run.

Output (``--out DIR``):

- ``<split>.json``: the host's JSON list of records ``{id, image, conversations, task,
  smiles, properties?, molecule_fp, conformer, notes?, source?}``; ``image`` and the
  sidecar path are relative to DIR: train with ``--data_path DIR/train.json --image_folder
  DIR`` (the host joins ``--image_folder`` with ``image``; sidecars resolve against the
  data file's folder);
- ``fp/<split>.npy``: int16 ``[total_atoms, 4]`` token rows; a record's ``molecule_fp`` is
  ``{"sidecar": "fp/<split>.npy", "offset": o, "atoms": n, "digest": d}`` (``d``: the rows'
  digest, checked when they are read);
- ``images/<h[:2]>/<h[2:32]>.png``: depictions named by the SHA-256 ``h`` of their bytes,
  so the several tasks of one molecule share one file and a rerun can never produce a
  different file under the same name;
- ``failures.jsonl``: ``{id, stage, reason}`` per failure, in input order;
- ``overlaps.jsonl`` (only when there is something to list): one molecule (deepmolm-kflm2's
  copy key: canonical SMILES of the largest fragment, neutralised) in several splits, or
  copies in one split whose property labels differ: ``{molecule, smiles, splits: {split:
  [ids]}, differing_labels?: {split: {property: [{id, value}]}}}``, in input order. Not
  failures (the records are written); counted in the manifest (``overlaps``) and the summary;
- ``manifest.json``: counts per split and task, failures per stage, overlaps, settings, package
  versions, input checksums, and the size and SHA-256 of every record, sidecar and
  failures and overlaps file (``files``; an image's checksum is its name). No timestamps: the same
  inputs and settings give the same bytes in every file, whatever ``--workers``/``--shard``,
  and whatever kills happened.

Resume. Items are numbered in input order and cut into chunks of ``--chunk-size``; chunk
``c`` is items ``[c*S, (c+1)*S)``. A finished chunk is committed to
``DIR/.progress/chunk-<c>.<run>.npy`` (its token rows), then ``chunk-<c>.<run>.json`` (its
records and failures: the commit point), each written to a temporary file and renamed;
``<run>`` is a digest of the run's identity, so chunks made with other settings are never
mixed in. A rerun of the same command checks that inputs (SHA-256, cached by size and
mtime), settings and package versions match the interrupted run's (``.progress/run.json``;
else it refuses, unless ``--overwrite``), skips committed chunks and computes the rest.
Once every chunk is committed the outputs are assembled from the chunk files alone (a pure
function of them, so identical however the chunks were produced), each written to a
temporary file, synced and renamed; the manifest goes last, once the files and the folders
holding them are synced, and marks the output complete, then ``.progress`` is removed. A
rerun on complete output checks the identity and the files against the manifest's
checksums (images against their names); it does nothing if they match, else it reports
what differs and redoes the run (intact images are kept). Images are written by the
workers (temporary file, synced, then rename) before their chunk commits; a killed chunk's
images are remade byte-identical under the same names. A run holds ``DIR/.lock``
(``fcntl.flock``; removed when it ends, dropped by the kernel if it dies): a second run on
the same folder is refused naming the holder's pid; ``--shard`` jobs share it.
``--overwrite`` deletes only what the tool wrote (the files its manifest and progress files
name, content-addressed images, ``.progress``): other files in DIR stay.

Exit status: 0 done (failures may exist: see the failures file), 1 no record at all,
2 a run that cannot start or finish (changed settings, foreign folder, reader
configuration); a reader that breaks the contract raises.

Shards. ``--shard I/N`` processes the chunks ``c`` with ``c % N == I`` (round robin over
chunks, so every shard gets a fair share wherever the slow molecules are) and commits
them into the same ``DIR/.progress`` (chunk names are global, images content-addressed:
array jobs never collide; each writes ``.progress/shard-I-of-N.json`` when done). Every
shard reads the whole input (readers stream; only its own chunks are computed). Then
``--merge`` (same command, no ``--shard``) assembles the final output without reading the
input; the same command without ``--shard`` or ``--merge`` also works, computing any chunk
a failed shard left. The result is byte-identical to a single unsharded run.
"""

from __future__ import annotations

from .common import PrepareError
from .output import summary

__all__ = ["main", "summary", "PrepareError"]


def __getattr__(name: str):
    """`main` (the command, in `.cli`), imported when asked for: imported with the package,
    `python -m deepmolm_plugin.data.prepare.cli` warned on every run that the module it was
    about to run was already in sys.modules ("may result in unpredictable behaviour")."""
    if name == "main":
        from .cli import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
