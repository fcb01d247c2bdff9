#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md in one call: each benchmark that takes `--device` runs with `--device cuda`
# at its documented CUDA size, and its output goes to $OUT/<benchmark>.txt (default folder ./gpu_figures), headed by
# the command; $OUT/env.txt holds the GPU, driver and package versions. A benchmark that fails or outruns its limit
# (seconds, second column below) keeps its log and the next one runs. The other scripts in benchmarks/ time the CPU
# itself (imports, audio decoding, data workers) or need espeak-ng, which a bare GPU machine does not have.
#
#   bash benchmarks/gpu_figures.sh              # on a CUDA machine
#   TINY=1 bash benchmarks/gpu_figures.sh       # the same commands at tiny sizes on the CPU: checks the script
#   ONLY="generation vocoder" bash benchmarks/gpu_figures.sh   # these rows only
#
# Wheels in .whl/ (what a machine without registry access lacks, e.g. transformers>=5.24) are installed into
# /tmp/site first. Profiles (torch.profiler, CUDA kernels by GPU time) are part of the generation and pre-training
# rows, so that a missed goal comes with where its time went.
set -u
OUT=${OUT:-gpu_figures}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
if [[ -z "${TINY:-}" ]] && compgen -G ".whl/*.whl" > /dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "installing .whl/ failed" >&2; exit 1; }
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

# generation runs 500 tokens, not the docstring's 1,000: on a fresh machine the first generate call (CUDA start-up
# included) took 43-62 s and 1,000 tokens ran past the row's limit.
# name | limit (s) | CUDA arguments | TINY=1 arguments (CPU; - = skipped: FlexAttention has no CPU backward)
ROWS=(
"generation|120|--device cuda --size 115m --new-tokens 500 --repeats 1 --profile|--device cpu --size tiny --new-tokens 20 --repeats 1 --profile --threads 1"
"pretraining|160|--device cuda --size 115m --seq-len 2048 --batch-size 16 --compile --profile|--device cpu --size tiny --seq-len 128 --batch-size 4 --steps 2 --warmup 1 --profile --threads 1"
"tokenization|45|--device cuda --dtype bfloat16 --profile|--device cpu --size tiny --batch-size 2 --seconds 2 --repeats 1"
"tokenization_one_batch|40|--device cuda --dtype bfloat16 --max-padding 0.5|--device cpu --size tiny --batch-size 4 --seconds 2 --repeats 1 --max-padding 0.5"
"vocoder|90|--device cuda --size base --dtype bfloat16 --compile --baseline-dtype both|--device cpu --size tiny --units 40 --codec-seconds 1 --stream-units 60 --repeats 1 --threads 1 --baseline-dtype both"
"vocoder_throughput|80|--device cuda --size base --dtype bfloat16 --compile --compile-mode reduce-overhead --baseline-dtype both --skip-codecs --batch-size 16 --units 500|--device cpu --size tiny --units 40 --batch-size 8 --baseline-dtype both --skip-codecs --repeats 1 --threads 1"
"pretraining_flex|150|--device cuda --size 115m --seq-len 2048 --batch-size 16 --compile --attn flex_attention --variants ours|-"
)

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || echo "no nvidia-smi"
    "$PYTHON" -c "import torch, transformers; print('python', __import__('sys').version.split()[0], '| torch', torch.__version__, '| CUDA', torch.version.cuda, '| transformers', transformers.__version__, '| device', torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')"
    git log -1 --format='commit %h %s' 2>/dev/null
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

failed=0
for row in "${ROWS[@]}"; do
    IFS='|' read -r name limit cuda_args tiny_args <<< "$row"
    [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]] && continue
    args=$cuda_args
    [[ -n "${TINY:-}" ]] && args=$tiny_args
    [[ "$args" == "-" ]] && continue
    script=benchmarks/bench_${name%%_*}.py
    echo "== $(date -u +%H:%M:%S) $script $args (limit ${limit} s)" | tee "$OUT/$name.txt"
    # shellcheck disable=SC2086  # the argument strings are meant to split
    timeout "$limit" "$PYTHON" "$script" $args >> "$OUT/$name.txt" 2>&1
    status=$?
    echo "== exit status $status" >> "$OUT/$name.txt"
    grep -E "^(ratio|ours / bare|identical|generate:|fast:| +ours:| +plain-|\(.\) |baseline|ours )" "$OUT/$name.txt"
    [[ $status -ne 0 ]] && { failed=1; echo "!! $name: exit status $status"; tail -5 "$OUT/$name.txt"; }
done
exit $failed
