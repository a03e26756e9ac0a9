#!/usr/bin/env bash
# Regenerate ImageNet-Think on a Ray cluster made of a PBS (OpenPBS, PBS Pro, Torque) job's nodes.
#
#   qsub -l select=4:ncpus=32:ngpus=8 -- "$PWD/builder_scripts/pbs_ray.sh" /shared/imagenet21k /shared/imagenet-think \
#       -n 250000 --engine vllm --trust-remote-code --replicas glm=16 --replicas kimi=16
#
# The job script runs on the first node of $PBS_NODEFILE: it becomes the Ray head and the
# driver; the other nodes join through `pbsdsh -h` (set LAUNCH=ssh where pbsdsh is not allowed).
# CPUS_PER_NODE and GPUS_PER_NODE default to PBS's NCPUS and NGPUS.  Resubmit to resume.
# A job submitted with `--` is an executable: the #PBS lines below are not read, give them to qsub.
#
#PBS -N imagenet-think-ray
#PBS -l walltime=24:00:00
#PBS -j oe
set -euo pipefail

: "${PBS_NODEFILE:?not in a PBS job: submit with qsub}"
cd "${PBS_O_WORKDIR:-.}"
NODES=$(awk '!seen[$0]++' "$PBS_NODEFILE" | tr '\n' ' ')
LAUNCH=${LAUNCH:-"pbsdsh -h"}
CPUS_PER_NODE=${CPUS_PER_NODE:-${NCPUS:-}}
GPUS_PER_NODE=${GPUS_PER_NODE:-${NGPUS:-}}
export NODES LAUNCH CPUS_PER_NODE GPUS_PER_NODE
# qsub -- runs this file where it is (give its absolute path); a script submitted without --
# runs as a spool copy: then ray_cluster.sh is looked for under the submit directory's builder_scripts/.
here=$(dirname "$0")
if [ ! -f "$here/ray_cluster.sh" ]; then here=builder_scripts; fi
exec bash "$here/ray_cluster.sh" "$@"
