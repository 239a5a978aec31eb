#!/usr/bin/env bash
# Everything this project checks on a lent GPU, in one short script (about 6 minutes on an H200):
#   bash tools/gpu_checks.sh CIFAR_TARBALL OUT [STEPS]
# CIFAR_TARBALL: the training JPEGs as a .tar.gz that unpacks to train/<class>/<n>.jpg;
# OUT: where the logs, the benchmark tables and the runs' small files go (runs.tar.gz).
# STEPS: a comma list of tests,bench,ddp,fast,airbench,cifar10 (default: these, in this order), or
# arms: every arm of tools/airbench_steps.py at seeds 0,1,2 (27 runs, about 10 minutes on an H200);
# search: its `cifar10` set (alexnet-cifar, c1 and each change) at seed 0 (9 runs, about 7 minutes);
# amx: the CPU benchmarks on 2 cores of the GPU's host when it has AMX (paper_vs_owt, cifar_recipe_step).
# Each step has its own time limit, so one that hangs does not take the others with it.
# GPU_CHECKS_CPU=1 runs the same commands on the CPU with tiny sizes (to check the script itself).
set -u
TARBALL=$1; OUT=$2; STEPS=${3:-tests,bench,ddp,fast,airbench,cifar10}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
WORK=${GPU_CHECKS_WORK:-/tmp/gpu-checks}; RUNS=$WORK/runs; mkdir -p "$RUNS"
T0=$(date +%s)
log() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$OUT/steps.txt"; }
want() { [[ ",$STEPS," == *",$1,"* ]]; }
py=${PYTHON:-python3}
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1
mkdir -p "$WORK/bin"; printf '#!/bin/sh\nexec %s -m alexnet "$@"\n' "$py" > "$WORK/bin/alexnet"
chmod +x "$WORK/bin/alexnet"; export PATH=$WORK/bin:$PATH
if [ "${GPU_CHECKS_CPU:-0}" = 1 ]; then
  DEV=cpu; TINY=(--model-arg width=0.125 --model-arg fc_width=64 --epochs 1 --max-steps 2); EPOCHS=(--epochs 1 --max-steps 2)
else
  DEV=cuda; TINY=(--epochs 5); EPOCHS=()
fi
pack() { (cd "$RUNS" && find . -type f ! -name '*.safetensors' ! -name '*.pt' ! -name '*.npy' ! -name '*.bin' \
  -size -2M | tar czf "$OUT/runs.tar.gz" -T -) ; }

log "machine: $(nvidia-smi -L 2>/dev/null | head -1) · $(nproc) CPUs · $($py -c 'import torch; print("torch", torch.__version__)')"
[ -d "$WORK/cifar/train" ] || { mkdir -p "$WORK/cifar" && tar xzf "$TARBALL" -C "$WORK/cifar" & }

if want tests; then
  log "cuda tests"
  timeout 300 $py -m pytest -m cuda tests/test_cuda.py tests/data/test_resident_device.py -q -p no:cacheprovider \
    -o addopts="-ra --strict-markers" > "$OUT/pytest.txt" 2>&1; log "cuda tests: rc $? · $(tail -1 "$OUT/pytest.txt")"
fi
if want bench; then
  log "paper network vs torchvision's layout, bf16 and fp32"
  extra=(); [ "$DEV" = cpu ] && extra=(--quick)
  timeout 150 $py benchmarks/paper_vs_owt.py --device $DEV --batch 128 --steps 20 --repeats 5 --former-lrn "${extra[@]}" \
    -o "$OUT/paper_vs_owt_gpu" > "$OUT/bench.txt" 2>&1; log "bench: rc $?"
fi
wait  # the CIFAR JPEGs
if want ddp; then
  log "the paper's recipe under torchrun with NCCL (world size 1), against the same run without"
  # 2,000 of the JPEGs (upscaled to 256 by the recipe); Caffe's init: the paper's bias 1 went nan in
  # the first epoch on a set this small (docs/distributed.md)
  for d in "$WORK"/cifar/train/*; do mkdir -p "$WORK/sub/${d##*/}"; ls "$d" | head -200 | sed "s|^|$d/|" \
    | xargs cp -t "$WORK/sub/${d##*/}"; done
  common=(--recipe paper --data-path "$WORK/sub" --data-device $DEV --device $DEV -j 8 --no-ten-crop
          --model-arg init=caffe --output-dir "$RUNS" "${TINY[@]}")
  timeout 120 $py tools/ema_measure.py run "$RUNS" paper-plain -- alexnet train "${common[@]}" --name paper-plain
  log "plain: rc $?"
  timeout 150 $py tools/ema_measure.py run "$RUNS" paper-ddp-nccl -- $py -m torch.distributed.run --standalone \
    --nproc_per_node=1 -m alexnet train "${common[@]}" --name paper-ddp-nccl; log "torchrun: rc $?"
  pack
fi
if want fast; then
  log "cifar10-fast, seed 0"
  timeout 150 $py tools/ema_measure.py run "$RUNS" fast-s0 -- alexnet train --recipe cifar10-fast \
    --data-path "$WORK/cifar" --seed 0 --output-dir "$RUNS" --name fast-s0 "${EPOCHS[@]}"; log "fast: rc $?"
  pack
fi
if want airbench; then
  log "airbench94's choices, seed 0"
  timeout 150 $py tools/airbench_steps.py run "$WORK/cifar" "$RUNS" --seeds 0 --arms airbench; log "airbench: rc $?"
  pack
fi
if want cifar10; then
  log "alexnet-cifar, the c1 try of the cifar10 recipe on the fast engine, seed 0"
  timeout 200 $py tools/ema_measure.py run "$RUNS" c1-s0 -- alexnet train --config docs/runs/cifar10-recipe/c1/c1.yaml \
    --data-path "$WORK/cifar" --seed 0 --output-dir "$RUNS" --name c1-s0 "${EPOCHS[@]}"; log "c1: rc $?"
  pack
fi
if want arms; then
  log "airbench94's choices and each difference, seeds 0-2"
  timeout 900 $py tools/airbench_steps.py run "$WORK/cifar" "$RUNS" --seeds 0,1,2; log "arms: rc $?"
  $py tools/airbench_steps.py summarize "$RUNS" "$OUT/airbench_steps.json" > /dev/null; pack
fi
if want search; then
  log "the cifar10 recipe's search: c1 and each change, seed 0"
  timeout 600 $py tools/airbench_steps.py run "$WORK/cifar" "$RUNS" --set cifar10 --seeds 0; log "search: rc $?"
  $py tools/airbench_steps.py summarize "$RUNS" "$OUT/cifar10_search.json" --set cifar10 > /dev/null; pack
fi
if want amx; then
  if grep -q amx_tile /proc/cpuinfo; then
    C=$(lscpu -p=CPU,CORE | grep -v '^#' | sort -t, -k2,2n -u | head -2 | cut -d, -f1 | paste -sd,)
    log "CPU benchmarks on cores $C of the host (AMX)"
    note="2 cores of the GPU machine's host (taskset $C, distinct cores), OMP_NUM_THREADS=2, the GPU idle"
    OMP_NUM_THREADS=2 timeout 200 taskset -c "$C" $py benchmarks/paper_vs_owt.py --steps 2 --repeats 3 --note "$note" \
      -o "$OUT/paper_vs_owt_amx" > "$OUT/amx.txt" 2>&1; log "paper_vs_owt: rc $?"
    OMP_NUM_THREADS=2 timeout 300 taskset -c "$C" $py benchmarks/cifar_recipe_step.py --note "$note" \
      -o "$OUT/cifar_recipe_step_amx" >> "$OUT/amx.txt" 2>&1; log "cifar_recipe_step: rc $?"
  else
    log "amx: this host has no AMX; skipped"
  fi
fi
log "done"
