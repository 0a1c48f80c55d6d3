#!/usr/bin/env bash
# Evaluate a DeepMoLM checkpoint on a prepared split, through the host's model_vqa.
#
#   scripts/eval/run_eval.sh MODEL DATA OUT [NUM_CHUNKS] [-- MODEL_VQA_ARGS...]
#
# MODEL       checkpoint folder (what `python -m deepmolm_plugin.eval.model_vqa` loads)
# DATA        prepared split: JSON list of host records (deepmolm-prepare's <split>.json)
# OUT         output folder: questions.jsonl, answers/<i>.jsonl, logs/chunk-<i>.log,
#             metrics.json, metrics.md, per_question.jsonl, plots/
# NUM_CHUNKS  processes run in parallel, one per GPU when there are GPUs (round robin
#             over the visible ones); default: the number of visible GPUs, else 1
# -- ARGS     extra options for model_vqa (e.g. --max-new-tokens 256 --conformer-policy auto);
#             they come last, so they override --conv-mode auto --temperature 0
#
# Environment: PYTHON (default python), IMAGE_FOLDER and STRUCTURE_FOLDER (default: DATA's
# folder, which deepmolm-prepare's image paths are relative to), REPORT_ARGS (extra options
# for deepmolm_plugin.eval.report, e.g. "--tokenizer words --no-plots"), NLTK_DATA (where
# WordNet is; default <venv>/nltk_data, see deepmolm_plugin.eval.metrics.wordnet), RESUME=1
# (keep the answers an earlier run into OUT made with the same settings, also those of a
# stopped run, and ask only the other questions: model_vqa --resume, each chunk reading every
# earlier chunk's answers, so another NUM_CHUNKS or record order asks nothing again. They are
# copied to OUT/answers/earlier/<n>/ first, since chunks rewrite their files while others read
# them; once every chunk succeeded, that copy and the earlier chunks numbered NUM_CHUNKS or
# higher are removed, so answers/*.jsonl is this run's chunks; a failed run keeps them all),
# STOP_WAIT (seconds a Ctrl-C or SIGTERM waits for the running step to end; default 30).
#
# Steps: DATA -> OUT/questions.jsonl (deepmolm_plugin.eval.questions); one model_vqa
# process per chunk (--num-chunks N --chunk-idx i, greedy); a chunk that failed is shown
# with its log and stops the run, except one that finished with questions it could not ask
# (a bad molecule: listed in answers/<i>.failures.jsonl); then deepmolm_plugin.eval.report
# merges the chunks (a missing or duplicated question is an error; one model_vqa could not
# ask is counted as not asked, the others scored) and scores them per task.
#
# One run per OUT: the run holds OUT/.lock (as deepmolm-prepare and training do) and a
# second run_eval.sh, or an eval.report into OUT, is refused in one line while it runs
# (was: two runs mixed their questions and answers, each exit 0). Ctrl-C or SIGTERM stops
# the running step (chunks, questions, report) and waits up to STOP_WAIT seconds (default
# 30) for it to end (model_vqa keeps its answers in <answers>.partial) before the lock is
# removed; a process still running then is named, and OUT/.lock is left: it stays locked
# until that process ends (was: removed at once, and a second run started beside it).
#
# Exit status: 0 when every question was answered and scored; 1 when a chunk failed or
# the report refused its inputs, and also when the report was written but some questions
# could not be asked (the report says which and why); 2 for bad arguments or an OUT
# another run holds.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

[[ $# -ge 3 ]] || usage
MODEL=$1 DATA=$2 OUT=$3
shift 3
NUM_CHUNKS=""
if [[ $# -gt 0 && $1 != "--" ]]; then
    NUM_CHUNKS=$1
    shift
fi
EXTRA=()
if [[ $# -gt 0 ]]; then
    [[ $1 == "--" ]] || usage
    shift
    EXTRA=("$@")
fi

PYTHON=${PYTHON:-python}
# A relative path starting with "-" (OUT "-results") was read as options by dirname, mkdir,
# rm and the Python tools ("dirname: invalid option -- 'r'", exit 1): "./" in front, once,
# here, makes every later use a path. (dirname and cd also get "--" below.)
# (printf -v, not $(...), which would drop a newline at a name's end)
dashless() { local name; for name; do [[ ${!name} != -* ]] || printf -v "$name" './%s' "${!name}"; done; }
dashless MODEL DATA OUT
[[ -d $MODEL ]] || { echo "error: MODEL $MODEL is not a folder" >&2; exit 2; }
[[ -f $DATA ]] || { echo "error: DATA $DATA is not a file" >&2; exit 2; }
# (mkdir's own two lines and exit 1, before)
[[ -e $OUT && ! -d $OUT ]] && { echo "error: OUT $OUT is a file, not a folder" >&2; exit 2; }
# OUT missing: the nearest existing folder above it must be one (a file there was mkdir's
# error twice, once per folder it makes, and exit 1)
ABOVE=$(dirname -- "$OUT")
while [[ ! -e $ABOVE && $ABOVE != "$(dirname -- "$ABOVE")" ]]; do ABOVE=$(dirname -- "$ABOVE"); done
[[ -e $OUT || -d $ABOVE ]] || { echo "error: OUT $OUT: $ABOVE is a file, not a folder" >&2; exit 2; }
DATA_DIR=$(cd -- "$(dirname -- "$DATA")" && pwd)

# OUT/.lock, the lock deepmolm_plugin.output_lock takes for an output folder: flock(1) on
# the file, our pid in it, the file removed when the run ends. The open file is inherited
# by the chunks and handed to the report ($DEEPMOLM_OUTPUT_LOCK_FD), which takes the same
# lock. A holder removes the file as it ends: a lock taken on a file no longer at the path
# guards nothing, and the path is opened again (output_lock.FileLock._lock does the same).
hold_out() {
    local lock=$OUT/.lock rc pid
    if ! command -v flock > /dev/null 2>&1; then
        echo "warning: no flock command: nothing stops another run from writing $OUT at the same time" >&2
        return
    fi
    while true; do
        exec {LOCK_FD}<> "$lock"
        rc=0
        flock -n -E 75 "$LOCK_FD" 2> /dev/null || rc=$?
        if [[ $rc == 75 ]]; then
            pid=$(head -n 1 "$lock" 2> /dev/null | tr -cd 0-9 || true)
            echo "error: another run_eval.sh (or eval.report) is writing $OUT (pid ${pid:-unknown})" >&2
            exit 2
        elif [[ $rc != 0 ]]; then  # a filesystem without flock (some network mounts)
            echo "warning: cannot lock $lock: nothing stops another run from writing $OUT at the same time" >&2
            exec {LOCK_FD}>&-
            return
        fi
        # the file locked is still the one at the path: bash's -ef compares device and inode
        # (was: GNU `stat -c`, which macOS/BSD stat lacks: "" == "" there, never a reopen)
        [[ /dev/fd/$LOCK_FD -ef $lock ]] && break
        exec {LOCK_FD}>&-
    done
    echo $$ > "/dev/fd/$LOCK_FD"
    export DEEPMOLM_OUTPUT_LOCK_FD=$LOCK_FD
    trap 'rm -f "$OUT/.lock"' EXIT  # while still holding it, as output_lock's release does
}
# The processes of the step now running (chunks, questions, report): Ctrl-C or SIGTERM
# stops them and waits for them to end before the lock file is removed (the EXIT trap).
PIDS=()
STOP_WAIT=${STOP_WAIT:-30}
[[ $STOP_WAIT =~ ^[0-9]+$ ]] || { echo "error: STOP_WAIT must be a number of seconds, got $STOP_WAIT" >&2; exit 2; }
stop_children() {
    local pid alive waited=0
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do kill "$pid" 2> /dev/null || true; done
    while true; do
        alive=()  # bash reaps its children as they end, so kill -0 fails for an ended one
        for pid in ${PIDS[@]+"${PIDS[@]}"}; do if kill -0 "$pid" 2> /dev/null; then alive+=("$pid"); fi; done
        # `return 0`: a bare return in a trap gives the interrupted wait's status (143), and
        # set -e then exits with it before the trap's `exit 130`
        if [[ ${#alive[@]} -eq 0 ]]; then return 0; fi
        if (( waited >= STOP_WAIT * 10 )); then
            trap - EXIT  # leave OUT/.lock: the process holds the lock until it ends
            # ... and name it there, for the next run's refusal (it named this script's pid: review)
            if [[ -n ${LOCK_FD:-} ]]; then printf '%s\n' "${alive[@]}" > "/dev/fd/$LOCK_FD" 2> /dev/null || true; fi
            echo "error: stopped, but pid(s) ${alive[*]} still run $STOP_WAIT s after SIGTERM;" \
                "$OUT/.lock is left in place and stays locked until they end (kill them, or wait)" >&2
            return 0
        fi
        sleep 0.1
        waited=$(( waited + 1 ))
    done
}
# "$@" as a child that stop_children stops; its exit status
in_background() {
    local rc=0
    "$@" &
    PIDS=($!)
    wait "${PIDS[0]}" || rc=$?
    PIDS=()  # ended: its pid may be another process's from now on
    return "$rc"
}

mkdir -p "$OUT"
hold_out
trap 'stop_children; exit 130' INT TERM
trap 'stop_children; exit 129' HUP  # a closed terminal or ssh session: the same (review: the EXIT trap
# removed the lock at once while the chunks still ran)
IMAGE_FOLDER=${IMAGE_FOLDER:-$DATA_DIR}
STRUCTURE_FOLDER=${STRUCTURE_FOLDER:-$DATA_DIR}
dashless IMAGE_FOLDER STRUCTURE_FOLDER  # model_vqa's options take them as values

# Visible GPUs: CUDA_VISIBLE_DEVICES when set (empty or -1: none), else nvidia-smi's list.
GPUS=()
if [[ -n ${CUDA_VISIBLE_DEVICES+set} ]]; then
    if [[ -n $CUDA_VISIBLE_DEVICES && $CUDA_VISIBLE_DEVICES != "-1" ]]; then
        IFS=, read -r -a GPUS <<< "$CUDA_VISIBLE_DEVICES"
    fi
elif command -v nvidia-smi > /dev/null 2>&1; then
    # Index lines only, and only when it succeeds: on a CPU node of a CUDA image it prints "No
    # devices were found" on stdout (exit 6), which was taken for a GPU "Nodeviceswerefound".
    if LISTED=$(nvidia-smi --query-gpu=index --format=csv,noheader 2> /dev/null); then
        mapfile -t GPUS < <(tr -d ' ' <<< "$LISTED" | grep -E '^[0-9]+$' || true)
    fi
fi
NUM_CHUNKS=${NUM_CHUNKS:-$(( ${#GPUS[@]} > 0 ? ${#GPUS[@]} : 1 ))}
[[ $NUM_CHUNKS =~ ^[1-9][0-9]*$ ]] || { echo "error: NUM_CHUNKS must be a positive integer, got $NUM_CHUNKS" >&2; exit 2; }

# The files of chunks numbered $2 or higher in folder $1, in CHUNK_FILES: answers, .partial,
# failures, property predictions (and their .partial), a killed run's hidden partial and digests.
chunk_files() {
    CHUNK_FILES=()
    local path name
    # exactly the names model_vqa writes for chunk N (a user's 0.jsonl.bak or 3.jsonl~ was removed)
    local ours='^([0-9]+)\.(jsonl|jsonl\.partial|failures\.jsonl|aux_properties\.jsonl(\.partial)?|jsonl\.partial-[0-9]+(\.digests\.json)?)$'
    for path in "$1"/[0-9]*.jsonl* "$1"/.[0-9]*.jsonl.partial-*; do
        name=${path##*/}
        name=${name#.}
        if [[ -f $path && $name =~ $ours ]] && (( 10#${BASH_REMATCH[1]} >= $2 )); then CHUNK_FILES+=("$path"); fi
    done
}

mkdir -p "$OUT/answers" "$OUT/logs"
EARLIER=$OUT/answers/earlier
RESUME_ARGS=()
if [[ ${RESUME:-0} == 1 ]]; then
    # model_vqa keeps only answers made with these settings for these questions, from any chunk
    # file: another NUM_CHUNKS or record order puts questions in other chunks (they were asked
    # again, and an earlier chunk numbered NUM_CHUNKS or higher stayed, a duplicate for the
    # report). Copied first: a chunk rewrites its files while the others read them. Earlier
    # copies stay until a run succeeds (chunks that succeeded in a failed run rewrote theirs).
    chunk_files "$OUT/answers" 0
    if [[ ${#CHUNK_FILES[@]} -gt 0 ]]; then
        n=1
        while [[ -e $EARLIER/$n ]]; do n=$(( n + 1 )); done
        mkdir -p "$EARLIER/$n"
        cp -p "${CHUNK_FILES[@]}" "$EARLIER/$n/"
    fi
    RESUME_ARGS=(--resume)
    declare -A SEEN=()
    for copy in "$EARLIER"/*/; do
        chunk_files "${copy%/}" 0
        for path in ${CHUNK_FILES[@]+"${CHUNK_FILES[@]}"}; do
            name=${path##*/}
            # a chunk's answers file, from it, its .partial or a killed run's partial (not failures, aux)
            [[ ${name#.} =~ ^([0-9]+)\.jsonl(\.partial.*)?$ ]] || continue
            name=$copy${BASH_REMATCH[1]}.jsonl
            if [[ -z ${SEEN[$name]+set} ]]; then SEEN[$name]=1; RESUME_ARGS+=(--resume-from "$name"); fi
        done
    done
else
    chunk_files "$OUT/answers" 0  # an earlier run's chunks
    rm -f ${CHUNK_FILES[@]+"${CHUNK_FILES[@]}"}
    rm -rf "$EARLIER"
fi
rm -f "$OUT"/logs/chunk-*.log
# An earlier run's report, metrics.json first (callers that resume take it as "finished"):
# a rerun that failed or was stopped left another model's scores beside its questions.
rm -f "$OUT/metrics.json" "$OUT/metrics.md" "$OUT/per_question.jsonl" "$OUT"/plots/text_metrics.png \
    "$OUT"/plots/parity_*.png

in_background "$PYTHON" -m deepmolm_plugin.eval.questions "$DATA" "$OUT/questions.jsonl"

if [[ ${#GPUS[@]} -eq 0 && -z ${OMP_NUM_THREADS:-} ]]; then  # CPU: share the cores between chunks
    CORES=$(nproc 2> /dev/null || echo 1)
    export OMP_NUM_THREADS=$(( CORES / NUM_CHUNKS > 0 ? CORES / NUM_CHUNKS : 1 ))
fi

# A descriptor open on each chunk's answers file from before the chunks run, "" if none:
# model_vqa replaces the file whole (write_atomic: a new inode) only once its chunk is done,
# and the open descriptor keeps the old inode from being reused. Compared with bash's -ef
# (device and inode; was: GNU `stat -c`, absent on macOS/BSD, where every chunk that finished
# with questions it could not ask counted as failed).
BEFORE=()
for (( i = 0; i < NUM_CHUNKS; i++ )); do
    if [[ -f $OUT/answers/$i.jsonl ]]; then
        exec {fd}< "$OUT/answers/$i.jsonl"
        BEFORE+=("$fd")
    else
        BEFORE+=("")
    fi
done

# Whether failed chunk $1 finished, only some questions not asked: it wrote its answers file
# (replaced it, with RESUME) and a failures file. A chunk stopped midway (a crash, the model
# not loading) leaves the earlier answers file, or none, and stops the run as before.
finished_with_failures() {
    local now=$OUT/answers/$1.jsonl before=${BEFORE[$1]}
    [[ -s $OUT/answers/$1.failures.jsonl && -f $now ]] || return 1
    [[ -z $before ]] || ! [[ /dev/fd/$before -ef $now ]]
}

for (( i = 0; i < NUM_CHUNKS; i++ )); do
    (
        if [[ ${#GPUS[@]} -gt 0 ]]; then export CUDA_VISIBLE_DEVICES=${GPUS[i % ${#GPUS[@]}]}; fi
        exec "$PYTHON" -m deepmolm_plugin.eval.model_vqa \
            --model-path "$MODEL" --question-file "$OUT/questions.jsonl" \
            --image-folder "$IMAGE_FOLDER" --structure-folder "$STRUCTURE_FOLDER" \
            --answers-file "$OUT/answers/$i.jsonl" --num-chunks "$NUM_CHUNKS" --chunk-idx "$i" \
            --conv-mode auto --temperature 0 ${RESUME_ARGS[@]+"${RESUME_ARGS[@]}"} ${EXTRA[@]+"${EXTRA[@]}"}
    ) > "$OUT/logs/chunk-$i.log" 2>&1 &
    PIDS+=($!)
done
echo "running $NUM_CHUNKS chunk(s)${GPUS[0]+ on GPUs ${GPUS[*]}}; logs in $OUT/logs/" >&2

FAILED=()
UNASKED=()  # chunks that finished with questions model_vqa could not ask (its exit status 1)
for (( i = 0; i < NUM_CHUNKS; i++ )); do
    rc=0
    wait "${PIDS[i]}" || rc=$?
    unset "PIDS[i]"  # ended: its pid may be another process's from now on
    if [[ $rc != 0 ]]; then
        if finished_with_failures "$i"; then UNASKED+=("$i"); else FAILED+=("$i"); fi
    fi
done
for fd in ${BEFORE[@]+"${BEFORE[@]}"}; do if [[ -n $fd ]]; then exec {fd}<&-; fi; done
if [[ ${#FAILED[@]} -gt 0 ]]; then
    for i in "${FAILED[@]}"; do
        echo "error: chunk $i of $NUM_CHUNKS failed; the end of $OUT/logs/chunk-$i.log:" >&2
        tail -n 30 "$OUT/logs/chunk-$i.log" >&2
    done
    exit 1
fi
for i in ${UNASKED[@]+"${UNASKED[@]}"}; do
    echo "warning: chunk $i of $NUM_CHUNKS could not ask $(wc -l < "$OUT/answers/$i.failures.jsonl") question(s)," \
        "listed in $OUT/answers/$i.failures.jsonl (reasons in $OUT/logs/chunk-$i.log); the report counts them as" \
        "not asked and scores the others" >&2
done

# Every earlier answer kept (same settings, a current question) is in this run's chunks now;
# earlier chunks past NUM_CHUNKS made `report answers/*.jsonl` refuse duplicated questions.
chunk_files "$OUT/answers" "$NUM_CHUNKS"
rm -f ${CHUNK_FILES[@]+"${CHUNK_FILES[@]}"}
rm -rf "$EARLIER"

ANSWERS=()
for (( i = 0; i < NUM_CHUNKS; i++ )); do ANSWERS+=("$OUT/answers/$i.jsonl"); done
# shellcheck disable=SC2086  # REPORT_ARGS is a list of options
in_background "$PYTHON" -m deepmolm_plugin.eval.report "${ANSWERS[@]}" --references "$OUT/questions.jsonl" \
    --out "$OUT" ${REPORT_ARGS:-}
if [[ ${#UNASKED[@]} -gt 0 ]]; then  # the scores are written, but not of every question
    echo "error: chunk(s) ${UNASKED[*]} could not ask some questions (see the warning above and" \
        "$OUT/answers/<i>.failures.jsonl); the other questions are scored in $OUT/metrics.json" >&2
    exit 1
fi
