#!/usr/bin/env bash
# Reproduce the embedded `speech-llm-default` variant on CPU (one torch thread; about 2.5 CPU-hours in all).
#   bash examples/speech_llm/make_default.sh [OUT]        # default OUT: runs/speech_llm_default
# Each step skips itself when its result exists and the training steps resume from their last checkpoint, so a
# rerun after an interruption continues. The last step copies the variant into hf_slm/default_speech_llm_pipeline.
set -euo pipefail
OUT=${1:-runs/speech_llm_default}
HERE=$(dirname "$0")
PY=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"

# 1. the CTC encoder: the 13-minute run, then a warm-started run on 12k sentences (config_encoder_default.json)
[ -f "$OUT/encoder_cpu/results.json" ] || $PY "$HERE/pretrain_encoder_ctc.py" "$HERE/config_encoder_cpu.json" --output_dir "$OUT/encoder_cpu"
[ -f "$OUT/encoder/results.json" ] || $PY "$HERE/pretrain_encoder_ctc.py" "$HERE/config_encoder_default.json" \
    --init_from "$OUT/encoder_cpu" --output_dir "$OUT/encoder"
# 2. the text LM (tokenizer + tiny Llama) and the task data (ASR / spoken QA / intent / spoken answers with units)
$PY "$HERE/make_default.py" lm "$OUT"
$PY "$HERE/make_default.py" data "$OUT"
# 3. the three stages (stage 2 fine-tunes the whole 1.4M LM on all 12,000 ASR rows + the instruct mix: LoRA r=32 on
#    an LM this small left the loss at 4.1 and WER at 2.8, see docs/speech_llm.md)
[ -f "$OUT/stage1/results.json" ] || $PY "$HERE/train.py" "$HERE/default_stage1.json" --encoder_name_or_path "$OUT/encoder" \
    --lm_name_or_path "$OUT/lm" --dataset_path "$OUT/data/asr" --output_dir "$OUT/stage1"
[ -f "$OUT/stage2/results.json" ] || $PY "$HERE/train.py" "$HERE/default_stage2.json" --model_name_or_path "$OUT/stage1" \
    --dataset_path "$OUT/data/asr,$OUT/data/instruct" --output_dir "$OUT/stage2"
#    stage 2, second and third pass: warm restarts of the cosine schedule (new data order each), as the shipped model
#    was trained (the run was extended while its loss still fell)
[ -f "$OUT/stage2b/results.json" ] || $PY "$HERE/train.py" "$HERE/default_stage2b.json" --model_name_or_path "$OUT/stage2" \
    --dataset_path "$OUT/data/asr,$OUT/data/instruct" --output_dir "$OUT/stage2b"
[ -f "$OUT/stage2c/results.json" ] || $PY "$HERE/train.py" "$HERE/default_stage2c.json" --model_name_or_path "$OUT/stage2b" \
    --dataset_path "$OUT/data/asr,$OUT/data/instruct" --output_dir "$OUT/stage2c"
[ -f "$OUT/stage3/results.json" ] || $PY "$HERE/train.py" "$HERE/default_stage3.json" --model_name_or_path "$OUT/stage2c" \
    --dataset_path "$OUT/data/spoken" --output_dir "$OUT/stage3"
# 4. the variant (+ the embedded default's vocoder), its figures, and the embedded copy
$PY "$HERE/make_default.py" assemble "$OUT"
[ -f "$OUT/asr.json" ] || hf-slm evaluate asr --pipeline "$OUT/variant" --texts open-eval --limit 100 --output "$OUT/asr.json"
[ -f "$OUT/tasks.json" ] || hf-slm evaluate speech-llm-tasks --pipeline "$OUT/variant" --num-examples 40 --output "$OUT/tasks.json"
$PY "$HERE/make_default.py" ship "$OUT"
