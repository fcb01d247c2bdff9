#!/usr/bin/env bash
# Codec -> codec-LM, AudioLM and VALL-E variants -> measurements, on ~1 h of multi-voice espeak-ng speech, on a CPU.
#
#   bash examples/audiolm/train_small.sh [OUTPUT_DIR]        (default runs/acoustic_small; PYTHON=... to pick python)
#   CODEC=mel bash examples/audiolm/train_small.sh runs/acoustic_mel     (the log-mel RVQ codec instead)
#   CODEC=mel UTTERANCES=4000 CODEC_LM_STEPS=4000 bash examples/audiolm/train_small.sh runs/codec_default
#       (4.2 h of speech: what the embedded `codec-default` is; docs/audiolm.md)
#   VALLE_CONFIG=examples/audiolm/small/valle_long.json OMP_NUM_THREADS=2 ...  (VALL-E AR 8,000 steps, ~40 min,
#       checkpointed: the AR model learns to read its phonemes; then fine-tune it on longer speech: docs/tts.md)
#
# Each stage is skipped when its output exists, so rerunning the command resumes after the last finished stage (the
# codec also resumes from its last checkpoint). Stages and outputs, all under OUTPUT_DIR:
#   data/       make_voice_corpus.py: train_corpus (712 voices, pitches 35/50/65) and unseen_voices (104 held-out
#               voice variants at pitches 42/80), voice_split.json
#   codec/      examples/codec/train_codec.py with small/codec.json (RVQ, 4 x 256 codes at 50 Hz = 1.6 kbps), or
#               with CODEC=mel examples/codec/fit_mel_codec.py with config_mel.json (log-mel RVQ, k-means codebooks,
#               Griffin-Lim decoder; the same 4 x 256 codes at 50 Hz)
#   codec_lm/   examples/codec_lm/train_codec_lm.py with small/codec_lm.json (delay pattern, 1.3M-parameter LM)
#   audiolm/    examples/audiolm/train_audiolm.py with small/audiolm.json (the embedded default's units and semantic
#               LM; coarse and fine acoustic LMs trained here)
#   valle/      examples/valle/train_valle.py with small/valle.json or $VALLE_CONFIG (AR + NAR; each resumes)
#   eval/       hf-slm evaluate voice / tts / codec on the unseen voices (JSON + Markdown reports)
set -euo pipefail
OUT=${1:-runs/acoustic_small}
PY=${PYTHON:-python}
HERE=$(dirname "$0")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
DATA=$OUT/data/train_corpus
UNSEEN=$OUT/data/unseen_voices

stage() { echo "== $1 ($(date +%H:%M:%S))"; }

[ -f "$OUT/data/voice_split.json" ] || { stage data; $PY "$HERE/make_voice_corpus.py" "$OUT/data" \
    --num_utterances "${UTTERANCES:-1000}"; }
case ${CODEC:-rvq} in
  rvq) [ -f "$OUT/codec/results.json" ] || { stage codec; $PY examples/codec/train_codec.py "$HERE/small/codec.json" \
           --dataset_path "$DATA" --output_dir "$OUT/codec"; } ;;
  mel) [ -f "$OUT/codec/results.json" ] || { stage "codec (log-mel RVQ)"; $PY examples/codec/fit_mel_codec.py \
           examples/codec/config_mel.json --dataset_path "$DATA" --output_dir "$OUT/codec"; } ;;
  *) echo "CODEC must be rvq or mel, got '$CODEC'" >&2; exit 2 ;;
esac
[ -f "$OUT/codec_lm/variant/pipeline_index.json" ] || { stage codec_lm; $PY examples/codec_lm/train_codec_lm.py \
    "$HERE/small/codec_lm.json" --dataset_path "$DATA" --codec "$OUT/codec" --output_dir "$OUT/codec_lm" \
    --max_steps "${CODEC_LM_STEPS:-400}"; }
[ -f "$OUT/audiolm/variant/pipeline_index.json" ] || { stage audiolm; $PY "$HERE/train_audiolm.py" \
    "$HERE/small/audiolm.json" --dataset_path "$DATA" --codec "$OUT/codec" --output_dir "$OUT/audiolm"; }
[ -f "$OUT/valle/variant/pipeline_index.json" ] || { stage valle; $PY examples/valle/train_valle.py \
    "${VALLE_CONFIG:-$HERE/small/valle.json}" --dataset_path "$DATA" --codec "$OUT/codec" --output_dir "$OUT/valle"; }

EVAL="$PY -m hf_slm.cli evaluate"
[ -f "$OUT/eval/codec.json" ] || { stage "evaluate codec"; $EVAL codec --dataset "$UNSEEN" \
    --pipelines "default,codec=$OUT/codec_lm/variant" --output "$OUT/eval/codec.json"; }
[ -f "$OUT/eval/voice.json" ] || { stage "evaluate voice"; $EVAL voice --dataset "$UNSEEN" --prompt-seconds 1.5 \
    --pipelines "default,codec_lm=$OUT/codec_lm/variant,audiolm=$OUT/audiolm/variant" --output "$OUT/eval/voice.json"; }
[ -f "$OUT/eval/tts.json" ] || { stage "evaluate tts"; $EVAL tts --dataset "$UNSEEN" --pipeline "$OUT/valle/variant" \
    --output "$OUT/eval/tts.json"; }
stage done
