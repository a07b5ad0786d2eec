#!/usr/bin/env bash
# The full-mode runs that are designed but not yet measured (docs/results.md), one after
# the other. Each resumes from its out/nets/ folder, so the script can be stopped and
# started again at any point; each appends its log beside its JSON.
#
#   bash examples/full_runs.sh                  # cache in $WOBBLEDETECT_CACHE or ~/.cache
#   WOBBLEDETECT_CACHE=/work/cache bash examples/full_runs.sh
#   AGAIN=1 bash examples/full_runs.sh          # also rerun the finished ones (reads nets back)
#
# About 15 hours on 2 CPU cores, alone on them (docs/lab.md has the costs; two torch jobs side by side
# slow each other about sixfold);
# far less on a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
DATA="${WOBBLEDETECT_DATA:-../shared/data}"
run() {  # run OUT FIGURE ARGS...   (skipped once OUT holds the figure's JSON; AGAIN=1 reruns)
  local out=$1 figure=$2; shift 2
  if [ -z "${AGAIN:-}" ] && [ -f "$out/${figure//-/_}.json" ]; then
    echo "done before $figure $out"; return
  fi
  mkdir -p "$out"
  echo "--- $figure started $(date -u +%FT%TZ) ---" >> "$out/$figure.log"
  .venv/bin/wobbledetect reproduce "$figure" "$@" --out "$out" --data-dir "$DATA" \
      ${WOBBLEDETECT_CACHE:+--cache-dir "$WOBBLEDETECT_CACHE"} >> "$out/$figure.log" 2>&1
  echo "exit $? $figure $out $(date -u +%FT%TZ)"
}
# Issue 13: why Fig. 6 does not reproduce.
run examples/results/fig6-e16 fig6 --epochs 16 --snapshots 4
run examples/results/set-size-zoo-e16 set-size-zoo --epochs 16
# Issue 15: W beside STRIP, calibrated false-positive rates (on the 4-epoch snapshots of the
# 16-epoch zoo above; run before the rest of issue 13's runs, as the shortest whole issue).
run examples/results/detectors detectors
# Issue 13, continued.
run examples/results/set-size-zoo-e4 set-size-zoo --epochs 4
run examples/results/fig6-e4-null fig6 --epochs 4
run examples/results/fig6-separated-e16 fig6 --trigger-set separated --epochs 16 --snapshots 4
run examples/results/fig6-separated-e4 fig6 --trigger-set separated --epochs 4
# Issue 14: the paper's section 5 on Fashion-MNIST; Fig. 7 first (about 2 h).
run examples/results/fig7 fig7
# Issue 17: weak and adaptive attacks (about 2.5 h). Run before issue 14's Neural Cleanse
# runs, which take about 10 h on 2 CPU cores (docs/lab.md): this way issue 17 lands
# sessions earlier and issue 14 waits 2.5 h longer.
run examples/results/attacks attacks
# Issue 14, continued: Neural Cleanse on every net (~9 min per net on 2 cores).
run examples/results/nc-candidates nc-candidates
run examples/results/screen-zoo-fashion-mnist screen-zoo --dataset fashion-mnist
