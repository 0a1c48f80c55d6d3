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
# (keep the chunks' answers an earlier run into OUT made with the same settings, also those
# of a stopped run, and ask only the other questions: model_vqa --resume).
#
# Steps: DATA -> OUT/questions.jsonl (deepmolm_plugin.eval.questions); one model_vqa
# process per chunk (--num-chunks N --chunk-idx i, greedy); any failed chunk stops the run
# with its log; then deepmolm_plugin.eval.report merges the chunks (a missing or
# duplicated question is an error) and scores them per task.
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
[[ -d $MODEL ]] || { echo "error: MODEL $MODEL is not a folder" >&2; exit 2; }
[[ -f $DATA ]] || { echo "error: DATA $DATA is not a file" >&2; exit 2; }
# (mkdir's own two lines and exit 1, before)
[[ -e $OUT && ! -d $OUT ]] && { echo "error: OUT $OUT is a file, not a folder" >&2; exit 2; }
DATA_DIR=$(cd "$(dirname "$DATA")" && pwd)
IMAGE_FOLDER=${IMAGE_FOLDER:-$DATA_DIR}
STRUCTURE_FOLDER=${STRUCTURE_FOLDER:-$DATA_DIR}

# Visible GPUs: CUDA_VISIBLE_DEVICES when set (empty or -1: none), else nvidia-smi's list.
GPUS=()
if [[ -n ${CUDA_VISIBLE_DEVICES+set} ]]; then
    if [[ -n $CUDA_VISIBLE_DEVICES && $CUDA_VISIBLE_DEVICES != "-1" ]]; then
        IFS=, read -r -a GPUS <<< "$CUDA_VISIBLE_DEVICES"
    fi
elif command -v nvidia-smi > /dev/null 2>&1; then
    mapfile -t GPUS < <(nvidia-smi --query-gpu=index --format=csv,noheader 2> /dev/null | tr -d ' ' || true)
fi
NUM_CHUNKS=${NUM_CHUNKS:-$(( ${#GPUS[@]} > 0 ? ${#GPUS[@]} : 1 ))}
[[ $NUM_CHUNKS =~ ^[1-9][0-9]*$ ]] || { echo "error: NUM_CHUNKS must be a positive integer, got $NUM_CHUNKS" >&2; exit 2; }

mkdir -p "$OUT/answers" "$OUT/logs"
RESUME_ARGS=()
if [[ ${RESUME:-0} == 1 ]]; then
    RESUME_ARGS=(--resume)  # model_vqa keeps only answers made with these settings for these questions
else
    rm -f "$OUT"/answers/[0-9]*.jsonl "$OUT"/answers/[0-9]*.jsonl.partial  # stale chunks of an earlier run
fi
rm -f "$OUT"/logs/chunk-*.log
# An earlier run's report, metrics.json first (callers that resume take it as "finished"):
# a rerun that failed or was stopped left another model's scores beside its questions.
rm -f "$OUT/metrics.json" "$OUT/metrics.md" "$OUT/per_question.jsonl" "$OUT"/plots/text_metrics.png \
    "$OUT"/plots/parity_*.png

"$PYTHON" -m deepmolm_plugin.eval.questions "$DATA" "$OUT/questions.jsonl"

if [[ ${#GPUS[@]} -eq 0 && -z ${OMP_NUM_THREADS:-} ]]; then  # CPU: share the cores between chunks
    CORES=$(nproc 2> /dev/null || echo 1)
    export OMP_NUM_THREADS=$(( CORES / NUM_CHUNKS > 0 ? CORES / NUM_CHUNKS : 1 ))
fi

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
}
trap 'cleanup; exit 130' INT TERM

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
for (( i = 0; i < NUM_CHUNKS; i++ )); do
    if ! wait "${PIDS[i]}"; then FAILED+=("$i"); fi
done
trap - INT TERM
if [[ ${#FAILED[@]} -gt 0 ]]; then
    for i in "${FAILED[@]}"; do
        echo "error: chunk $i of $NUM_CHUNKS failed; the end of $OUT/logs/chunk-$i.log:" >&2
        tail -n 30 "$OUT/logs/chunk-$i.log" >&2
    done
    exit 1
fi

ANSWERS=()
for (( i = 0; i < NUM_CHUNKS; i++ )); do ANSWERS+=("$OUT/answers/$i.jsonl"); done
# shellcheck disable=SC2086  # REPORT_ARGS is a list of options
"$PYTHON" -m deepmolm_plugin.eval.report "${ANSWERS[@]}" --references "$OUT/questions.jsonl" \
    --out "$OUT" ${REPORT_ARGS:-}
