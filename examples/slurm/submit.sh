#!/usr/bin/env bash
# Scores a corpus on Slurm: a job array of N `perplex score` tasks, then
# `perplex merge` as a job that runs only when every task succeeded.
#
#   examples/slurm/submit.sh N OUT_DIR -m MODEL --parquet corpus.parquet [SCORE FLAGS...]
#
# Writes OUT_DIR/scores-IIIII-of-NNNNN.parquet (one per task, with its
# .summary.json), OUT_DIR/merged.parquet, OUT_DIR/summary.json and the jobs'
# logs in OUT_DIR/logs. Prints the two job ids (array, merge) on stdout.
# SBATCH_ARGS adds sbatch options to both jobs (e.g. "--partition=cpu
# --time=2:00:00"); SCORE_SBATCH_ARGS to the array only (e.g.
# "--cpus-per-task=8 --mem=16G"). PERPLEX names the binary (default:
# perplex on PATH), and is passed to the jobs with the rest of the environment.
#
# Run it again with the same arguments after a failure: the tasks that had
# finished find their output complete and stop at once, the others resume
# from their last committed block.
set -euo pipefail

if (($# < 3)); then
    sed -n '2,9p' "$0" >&2
    exit 2
fi
count=$1 out_dir=$2
shift 2
if ! [[ $count =~ ^[1-9][0-9]*$ ]]; then
    echo "submit.sh: the number of tasks must be a positive integer, not '$count'" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out_dir/logs"
export PERPLEX_OUT_DIR=$out_dir

# shellcheck disable=SC2086 # the *_ARGS are lists of options
array=$(sbatch --parsable ${SBATCH_ARGS:-} ${SCORE_SBATCH_ARGS:-} --array="0-$((count - 1))" \
    --output="$out_dir/logs/score-%A_%a.out" "$here/score-array.sbatch" "$@")
array=${array%%;*} # --parsable prints JOBID[;CLUSTER]
# shellcheck disable=SC2086
merge=$(sbatch --parsable ${SBATCH_ARGS:-} --dependency="afterok:$array" --kill-on-invalid-dep=yes \
    --output="$out_dir/logs/merge-%j.out" "$here/merge.sbatch" "$count")
merge=${merge%%;*}
echo "$array $merge"
echo "submit.sh: score array $array ($count tasks), merge $merge after it; logs in $out_dir/logs" >&2
