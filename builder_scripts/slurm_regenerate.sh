#!/usr/bin/env bash
# Regenerate ImageNet-Think as a SLURM job array: array task i runs data shard i of N on one GPU.
#
#   sbatch --array=0-63 builder_scripts/slurm_regenerate.sh /data/imagenet21k /scratch/imagenet-think -n 250000
#   sbatch --array=0-63%16 ...        # at most 16 tasks at once; still 64 shards
#
# Every task runs `python -m imagenet_think.regenerate SOURCE OUT_DIR --num-shards N --shard-index i`
# with the remaining arguments passed through (engine, teachers, --model-path, --engine-arg ...).
# N is the array's highest index + 1 (array indices must start at 0); set NUM_SHARDS to rerun
# only some shards of a larger array (NUM_SHARDS=64 sbatch --array=3,17 ...).  Resubmitting the
# same array resumes: rows already written are skipped.  When every task has finished, write the
# dataset card (and push) once:
#
#   sbatch --dependency=afterok:<JOBID> --wrap \
#     "python -m imagenet_think.regenerate /data/imagenet21k /scratch/imagenet-think --card-only --push-to-hub me/corpus"
#
#SBATCH --job-name=imagenet-think
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time=24:00:00
#SBATCH --output=regenerate-%A_%a.out
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: sbatch --array=0-N builder_scripts/slurm_regenerate.sh SOURCE OUT_DIR [regenerate options]" >&2
  exit 2
fi
: "${SLURM_ARRAY_TASK_ID:?not in a SLURM job array: submit with sbatch --array=0-N}"
if [ -z "${NUM_SHARDS:-}" ]; then
  if [ "${SLURM_ARRAY_TASK_MIN:-0}" != 0 ]; then
    echo "array indices must start at 0 (got ${SLURM_ARRAY_TASK_MIN}); or set NUM_SHARDS" >&2
    exit 2
  fi
  NUM_SHARDS=$((SLURM_ARRAY_TASK_MAX + 1))
fi
source_dir=$1
out_dir=$2
shift 2
exec "${PYTHON:-python}" -m imagenet_think.regenerate "$source_dir" "$out_dir" \
  --num-shards "$NUM_SHARDS" --shard-index "$SLURM_ARRAY_TASK_ID" --no-progress "$@"
