#!/usr/bin/env bash
# Regenerate ImageNet-Think on every GPU of one node: one process per GPU, each on its own data
# shard (CUDA_VISIBLE_DEVICES=<gpu>, --shard-index), all writing to the same OUT_DIR; then the
# dataset card, once.  vLLM runs one model replica per process (data parallel, no scheduler).
#
#   builder_scripts/regenerate_multi_gpu.sh /data/imagenet21k out/ -n 250000 --engine vllm
#   GPUS="0 1" PUSH_TO_HUB=me/corpus builder_scripts/regenerate_multi_gpu.sh /data/imagenet21k out/ -n 250000
#
# GPUS: GPU indices to use (default: every GPU nvidia-smi lists).  Across several nodes, set
# NUM_NODES and NODE_INDEX (0-based) so shard = NODE_INDEX * GPUs + local index; no node then
# writes the card: when all are done, run `python -m imagenet_think.regenerate SOURCE OUT_DIR
# --card-only` (with --accept-failed if the shards had it).  PUSH_TO_HUB: repo to upload the
# finished corpus to (one node only).  Logs: OUT_DIR/regenerate/log-<shard>.txt.  Rerun the same
# command after a crash: rows already written are skipped.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: [GPUS='0 1'] builder_scripts/regenerate_multi_gpu.sh SOURCE OUT_DIR [regenerate options]" >&2
  exit 2
fi
source_dir=$1
out_dir=$2
shift 2
python=${PYTHON:-python}
if [ -z "${GPUS:-}" ]; then
  GPUS=$(nvidia-smi --query-gpu=index --format=csv,noheader | tr '\n' ' ')
fi
read -r -a gpus <<< "$GPUS"
if [ ${#gpus[@]} -eq 0 ]; then
  echo "no GPUs found; set GPUS='0 1 ...'" >&2
  exit 2
fi
num_nodes=${NUM_NODES:-1}
node_index=${NODE_INDEX:-0}
num_shards=$((num_nodes * ${#gpus[@]}))
mkdir -p "$out_dir/regenerate"
options=("$@")
card_options=()  # what the card step shares with the shards: which failed images are accepted
for index in "${!options[@]}"; do
  case "${options[$index]}" in
    --accept-failed | --max-failure-rate=*) card_options+=("${options[$index]}") ;;
    --max-failure-rate) card_options+=("${options[$index]}" "${options[$((index + 1))]:-}") ;;
  esac
done

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' INT TERM
for local_index in "${!gpus[@]}"; do
  shard=$((node_index * ${#gpus[@]} + local_index))
  log="$out_dir/regenerate/log-$(printf %05d "$shard").txt"
  echo "GPU ${gpus[$local_index]}: shard $shard of $num_shards, log $log"
  CUDA_VISIBLE_DEVICES=${gpus[$local_index]} "$python" -m imagenet_think.regenerate "$source_dir" "$out_dir" \
    --num-shards "$num_shards" --shard-index "$shard" --no-progress "$@" > "$log" 2>&1 &
  pids+=($!)
done

failed=0
for index in "${!pids[@]}"; do
  if ! wait "${pids[$index]}"; then
    echo "shard $((node_index * ${#gpus[@]} + index)) failed: see its log" >&2
    failed=1
  fi
done
if [ "$failed" -ne 0 ]; then
  echo "some shards failed; rerun the same command to resume them" >&2
  exit 1
fi
if [ "$num_nodes" -eq 1 ]; then
  "$python" -m imagenet_think.regenerate "$source_dir" "$out_dir" --card-only ${card_options[@]+"${card_options[@]}"} \
    ${PUSH_TO_HUB:+--push-to-hub "$PUSH_TO_HUB"}
fi
