set -e
# As run on 2026-12-01 09:50-09:58 UTC: /tmp/w/old was `git worktree add /tmp/w/old 0e6e9ae` (the code before the
# generation-step fast paths) with the new benchmarks/generation_speed.py copied in; /work/main the new code.
for i in 1 2 3; do
  for side in old new; do
    if [ $side = old ]; then R=/tmp/w/old; else R=/work/main; fi
    echo "== $side $i $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
    (cd $R && OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/generation_speed.py --threads 1 --repeats 9 --output_dir /tmp/w/ab2_${side}_$i 2>&1 | grep -A5 "^| prompt")
  done
done
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
