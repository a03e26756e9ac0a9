#!/usr/bin/env bash
# Regenerate ImageNet-Think on a Ray cluster made of a SLURM job's nodes (one raylet per node).
#
#   sbatch --nodes=4 builder_scripts/slurm_ray.sh /shared/imagenet21k /shared/imagenet-think -n 250000 \
#       --engine vllm --trust-remote-code --replicas glm=16 --replicas kimi=16
#
# The batch script runs on the first node: it becomes the Ray head and the driver, the others
# join with `srun` (see ray_cluster.sh for NODES, ports, resources).  Resubmit the same job to
# resume: rows already written are skipped.  One driver writes shard 0 (add --num-shards and
# --shard-index for several clusters on one OUT_DIR).
#
#SBATCH --job-name=imagenet-think-ray
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --mem=0
#SBATCH --exclusive
#SBATCH --time=24:00:00
#SBATCH --output=regenerate-ray-%j.out
set -euo pipefail

: "${SLURM_JOB_NODELIST:?not in a SLURM job: submit with sbatch --nodes=N}"
NODES=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | tr '\n' ' ')
LAUNCH=${LAUNCH:-"srun --nodes=1 --ntasks=1 --overlap -w"}
CPUS_PER_NODE=${CPUS_PER_NODE:-${SLURM_CPUS_PER_TASK:-}}
GPUS_PER_NODE=${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-}}
export NODES LAUNCH CPUS_PER_NODE GPUS_PER_NODE
# sbatch runs a copy of this script from its spool directory: find ray_cluster.sh beside the
# submitted file (scontrol's Command), else under the submit directory's builder_scripts/.
here=$(dirname "$0")
if [ ! -f "$here/ray_cluster.sh" ]; then
  submitted=$(scontrol show job "${SLURM_JOB_ID:-}" 2>/dev/null | sed -n 's/^ *Command=\([^ ]*\).*/\1/p')
  here=$(dirname "${submitted:-${SLURM_SUBMIT_DIR:-.}/builder_scripts/slurm_ray.sh}")
fi
exec bash "$here/ray_cluster.sh" "$@"
