#!/usr/bin/env bash
# bench/gpu.sh: diffusers' memory and speed options side by side, per model family, on a GPU machine.
#
# WHAT IT MEASURES. For each family (sd, sdxl, sd3, flux, flux-schnell; the tiny random models of
# tests/tiny_models.py, plus the SD 1.5-shaped model of bench/models.py, or real local folders you name) and for
# each option of DiffusionTool, every arm generates through ideaforge's own DiffusionTool path and reports:
#   - s/image    median wall time per image over REPEATS calls, after one warm-up call (the warm-up is timed
#                apart as `first s`, which is where torch.compile pays its compilation);
#   - peak MiB   torch.cuda.max_memory_allocated during those calls (reset after loading), i.e. GPU memory;
#   - vs base    s/image and peak memory relative to the family's `baseline` arm (offload none, no extras).
# The arms:
#   baseline             offload none, the model on the GPU, at SIZE (default 512, tiny models: 256)
#   offload=model        enable_model_cpu_offload (whole components move to the GPU when used)
#   offload=sequential   enable_sequential_cpu_offload (layer by layer: least memory, slowest)
#   offload=group        enable_group_offload, block level with CUDA streams
#   base@1024            baseline at 1024x1024, VAE tiling forced off (the reference for the next arm)
#   vae_tiling@1024      VAE tiling (and slicing) on at 1024x1024
#   compile              torch.compile of the denoiser, regional (compile_repeated_blocks) where the model has it
#   attn=BACKEND         diffusers' attention backends (native, _native_flash, _native_efficient, _native_cudnn,
#                        flash, sage), only for models on diffusers' attention dispatcher (FLUX); others: n/a
#   cache=first_block    diffusers' FirstBlockCache (denoisers with cache hooks: FLUX)
#   fp8                  enable_layerwise_casting(float8_e4m3fn storage, bf16/fp16 compute) of the denoiser
# An option a family or machine cannot run is reported as `n/a` with ideaforge's one-line reason, not skipped
# silently. Results: a Markdown table on stdout and in $OUT_DIR/gpu-options.md, raw rows in gpu-options.jsonl.
#
# Usage:
#   bash bench/gpu.sh                                  # tiny models of every family + SD 1.5-shaped
#   FAMILIES="flux sd3" REPEATS=5 bash bench/gpu.sh
#   MODELS="flux=/models/FLUX.1-schnell sd3=/models/sd3.5-medium" SIZE=1024 bash bench/gpu.sh   # real folders
#   DEVICE=cpu FAMILIES=sd REPEATS=1 bash bench/gpu.sh   # a dry run of the script's logic on CPU (GPU arms: n/a)
# Environment: FAMILIES, ARMS (arm names to run, default all), MODELS (family=DIR pairs), SIZE, STEPS (default 4), REPEATS (default 3), DTYPE
# (default bfloat16), DEVICE (default cuda), OUT_DIR (default bench/results), PYTHON (default .venv/bin/python).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[[ -x "$PYTHON" ]] || PYTHON="$(command -v python3)"
FAMILIES="${FAMILIES:-sd sdxl sd3 flux flux-schnell sd15-shaped}"
MODELS="${MODELS:-}"
STEPS="${STEPS:-4}"
REPEATS="${REPEATS:-3}"
DTYPE="${DTYPE:-bfloat16}"
DEVICE="${DEVICE:-cuda}"
OUT_DIR="${OUT_DIR:-$ROOT/bench/results}"
WORK="$(mktemp -d -t ideaforge-gpu-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT_DIR"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1

if [[ "$DEVICE" == cuda* ]]; then
  "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' || {
    echo "bench/gpu.sh: torch finds no CUDA GPU here; run it on a GPU machine, or DEVICE=cpu for a dry run" >&2
    exit 2
  }
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi

# The folder of each family: a real one from MODELS, else a tiny (or SD 1.5-shaped) one built now.
declare -A DIRS=()
for pair in $MODELS; do DIRS["${pair%%=*}"]="${pair#*=}"; done
for family in $FAMILIES; do
  if [[ -z "${DIRS[$family]:-}" ]]; then
    if [[ "$family" == sd15-shaped ]]; then
      (cd "$ROOT/bench" && "$PYTHON" -c "import sys; sys.path.insert(0, '../tests'); from models import build_sd15_shaped; build_sd15_shaped('$WORK/$family')") >/dev/null
    else
      (cd "$ROOT/tests" && "$PYTHON" tiny_models.py "$family" "$WORK/$family") >/dev/null
    fi
    DIRS["$family"]="$WORK/$family"
  fi
done

: > "$OUT_DIR/gpu-options.jsonl"
for family in $FAMILIES; do
  echo "== $family: ${DIRS[$family]}" >&2
  # One process per family: arms run one after another, each on a freshly loaded pipeline with the cache cleared.
  "$PYTHON" - "$family" "${DIRS[$family]}" "$STEPS" "$REPEATS" "$DTYPE" "$DEVICE" "${SIZE:-}" \
    >> "$OUT_DIR/gpu-options.jsonl" <<'PY'
import gc, json, os, statistics, sys, time

import torch

from ideaforge.errors import IdeaForgeError
from ideaforge.tools.diffusion import DiffusionTool, GenerationParams, ImageRequest, clear_cache

family, folder, steps, repeats, dtype, device, size = sys.argv[1:8]
steps, repeats = int(steps), int(repeats)
tiny = family != "sd15-shaped" and "/ideaforge-gpu-" in folder
side = int(size) if size else (256 if tiny else 512)
cuda = device.startswith("cuda")
if not cuda:
    dtype = "float32"
    torch.set_num_threads(max(1, torch.get_num_threads()))

ARMS = [
    ("baseline", {}, side),
    ("offload=model", {"offload": "model"}, side),
    ("offload=sequential", {"offload": "sequential"}, side),
    ("offload=group", {"offload": "group"}, side),
    ("base@1024", {"vae_tiling": False, "vae_slicing": False}, 1024),
    ("vae_tiling@1024", {"vae_tiling": True, "vae_slicing": True}, 1024),
    ("compile", {"compile": True}, side),
    *[(f"attn={b}", {"attention_backend": b}, side)
      for b in ("native", "_native_flash", "_native_efficient", "_native_cudnn", "flash", "sage")],
    ("cache=first_block", {"cache": "first_block"}, side),
    ("fp8", {"layerwise_casting": "fp8"}, side),
]
if os.environ.get("ARMS"):
    ARMS = [a for a in ARMS if a[0] in os.environ["ARMS"].split()]
request = ImageRequest(positive="a red kitten sleeping in a wicker basket by a sunny window", seed=7)


def arm(name, options, px):
    clear_cache(); gc.collect()
    if cuda:
        torch.cuda.empty_cache(); torch.cuda.synchronize()
    row = {"family": family, "arm": name, "size": px, "steps": steps, "dtype": dtype}
    try:
        tool = DiffusionTool(folder, device=device, dtype=dtype, **options).load()
        params = GenerationParams(steps=steps, width=px, height=px)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter(); first = tool.generate([request], params)[0]
        if cuda:
            torch.cuda.synchronize()
        row["first_s"] = round(time.perf_counter() - started, 4)
        times = []
        for _ in range(repeats):
            started = time.perf_counter(); tool.generate([request], params)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - started)
        row["s_per_image"] = round(statistics.median(times), 4)
        row["peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None
        row["options"] = first.options
    except (IdeaForgeError, RuntimeError, ValueError, ImportError, NotImplementedError) as exc:
        row["na"] = str(exc).splitlines()[0][:160]
    print(json.dumps(row), flush=True)


for name, options, px in ARMS:
    arm(name, options, px)
PY
done

# The table: one row per family and arm, with ratios against the family's baseline (and base@1024 for tiling).
"$PYTHON" - "$OUT_DIR/gpu-options.jsonl" <<'PY' | tee "$OUT_DIR/gpu-options.md"
import json, sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print("| family | arm | size | s/image | first s | peak MiB | s vs base | mem vs base | note |")
print("|---|---|---|---|---|---|---|---|---|")
for row in rows:
    ref_arm = "base@1024" if row["arm"] == "vae_tiling@1024" else "baseline"
    ref = next((r for r in rows if r["family"] == row["family"] and r["arm"] == ref_arm and "na" not in r), None)
    if "na" in row:
        print(f"| {row['family']} | {row['arm']} | {row['size']} | n/a | | | | | {row['na']} |")
        continue
    speed = f"{row['s_per_image'] / ref['s_per_image']:.2f}x" if ref else ""
    memory = f"{row['peak_mib'] / ref['peak_mib']:.2f}x" if ref and row["peak_mib"] and ref["peak_mib"] else ""
    compiled = row.get("options", {}).get("compile", "off")
    note = f"compile: {compiled}" if compiled != "off" else ""
    print(f"| {row['family']} | {row['arm']} | {row['size']} | {row['s_per_image']} | {row['first_s']} "
          f"| {row['peak_mib'] if row['peak_mib'] is not None else ''} | {speed} | {memory} | {note} |")
PY
echo "bench/gpu.sh: wrote $OUT_DIR/gpu-options.md and $OUT_DIR/gpu-options.jsonl" >&2
