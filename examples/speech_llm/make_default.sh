#!/usr/bin/env bash
# Reproduce the embedded `speech-llm-default` variant on CPU (one torch thread; about 3 CPU-hours in all).
#   bash examples/speech_llm/make_default.sh [OUT]        # default OUT: runs/speech_llm_default
# Each step skips itself when its result exists and the training steps resume from their last checkpoint, so a
# rerun after an interruption continues. The last step copies the variant into hf_slm/default_speech_llm_pipeline.
set -euo pipefail
OUT=${1:-runs/speech_llm_default}
HERE=$(dirname "$0")
PY=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"

# 1. the CTC encoder: the 13-minute run, then warm-started runs on 12k sentences (config_encoder_default.json, 50
#    minutes; config_encoder_long.json, 3,000 more steps at half the learning rate)
[ -f "$OUT/encoder_cpu/results.json" ] || $PY "$HERE/pretrain_encoder_ctc.py" "$HERE/config_encoder_cpu.json" --output_dir "$OUT/encoder_cpu"
[ -f "$OUT/encoder/results.json" ] || $PY "$HERE/pretrain_encoder_ctc.py" "$HERE/config_encoder_default.json" \
    --init_from "$OUT/encoder_cpu" --output_dir "$OUT/encoder"
[ -f "$OUT/encoder_long/results.json" ] || $PY "$HERE/pretrain_encoder_ctc.py" "$HERE/config_encoder_long.json" \
    --init_from "$OUT/encoder" --output_dir "$OUT/encoder_long"
# 2. the text LM (a character vocabulary), taught to read spelled frames (the plain copy task, then CTC-like frames
#    with blanks and errors: make_default.py spell), and the task data (ASR / spoken QA / intent / spoken answers)
$PY "$HERE/make_default.py" lm-chars "$OUT"
$PY "$HERE/make_default.py" spell "$OUT"
$PY "$HERE/make_default.py" data "$OUT"
# 3. the three stages: stage 1 trains the ctc_posterior projector (the encoder's CTC head + one LM-embedding row per
#    CTC symbol) on the spelled LM; stage 2 the projector and the whole LM; stage 3 the speech decoder
[ -f "$OUT/stage1/results.json" ] || $PY "$HERE/train.py" "$HERE/default_stage1.json" --encoder_name_or_path "$OUT/encoder_long" \
    --lm_name_or_path "$OUT/lm_spelled" --dataset_path "$OUT/data/asr" --output_dir "$OUT/stage1"
[ -f "$OUT/stage2/results.json" ] || $PY "$HERE/train.py" "$HERE/default_stage2.json" --model_name_or_path "$OUT/stage1" \
    --dataset_path "$OUT/data/asr,$OUT/data/instruct" --output_dir "$OUT/stage2"
[ -f "$OUT/stage3/results.json" ] || $PY "$HERE/train.py" "$HERE/default_stage3.json" --model_name_or_path "$OUT/stage2" \
    --dataset_path "$OUT/data/spoken" --output_dir "$OUT/stage3"
# 4. the variant (+ the embedded default's vocoder), its figures, and the embedded copy
$PY "$HERE/make_default.py" assemble "$OUT"
[ -f "$OUT/asr.json" ] || hf-slm evaluate asr --pipeline "$OUT/variant" --texts open-eval --limit 100 --output "$OUT/asr.json"
[ -f "$OUT/tasks.json" ] || hf-slm evaluate speech-llm-tasks --pipeline "$OUT/variant" --num-examples 40 --output "$OUT/tasks.json"
[ -f "$OUT/asr_librivox.json" ] || hf-slm evaluate asr --pipeline "$OUT/variant" --real-speech librivox --output "$OUT/asr_librivox.json"
$PY "$HERE/make_default.py" ship "$OUT"
