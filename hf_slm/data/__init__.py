"""Speech we make ourselves (espeak-ng and Festival synthesis with word timestamps, text sources, dataset builder, two-speaker
dialogues on two channels) and real recorded speech with transcripts (installed Debian clips, audio folders, local
datasets), and voice activity detection (Silero VAD) to find the speech in long recordings.

Public names load on first use (`hf_slm.utils.lazy_exports`), so importing one submodule stays cheap.
"""

from __future__ import annotations

from ..utils import lazy_exports

_SUBMODULES = {
    ".speech_corpus": [
        "VOICE_KEYWORDS", "corpus_jobs", "corpus_voices", "english_voices", "open_vocabulary_speech",
        "synthesize_corpus", "voice_probabilities"
    ],
    ".builder": [
        "assign_voices", "cache_key", "dataset_features", "default_cache_dir", "make_synthesizer", "synthesize_dataset",
        "synthesize_to_wav", "write_wav"
    ],
    ".festival": [
        "FESTIVAL_PREFIX", "FestivalError", "FestivalSynthesizer", "festival_version", "festival_voices",
        "is_festival_voice"
    ],
    ".corpus": [
        "GRAMMAR", "OPEN_VOCABULARY_SOURCES", "OPEN_VOCABULARY_SPLITS", "TEMPLATES", "SentencePlan", "Slot",
        "TextSplit", "generate_sentences", "load_heldout_words", "load_sentences", "load_text_corpus",
        "load_text_split", "normalize_sentence",
        "read_fortunes", "read_text_file", "read_wordnet_definitions", "read_wordnet_examples", "read_wordnet_glosses",
        "read_wordnet_lexicon",
        "realize", "sample_plan",
        "split_texts", "text_words"
    ],
    ".dialogue": [
        "BACKCHANNELS", "Dialogue", "DialogueTiming", "dialogue_features", "dialogues_to_dataset", "generate_dialogue",
        "generate_dialogues", "write_dialogues"
    ],
    ".espeak": [
        "EspeakError", "EspeakSynthesizer", "SynthesisResult", "VoiceInfo", "espeak_version", "list_variants",
        "list_voices", "phoneme_stream", "phonemize"
    ],
    ".real_speech": [
        "REAL_SPEECH_SOURCES", "alsa_clips", "audio_text_columns", "cards_clips", "librivox_clips",
        "load_local_dataset", "load_real_speech", "read_audio_dir", "write_audio_dir"
    ],
    ".sentiment": ["PROSODY", "SENTIMENTS", "SentimentPrompt", "build_sentiment_prompts", "sentiment_texts"],
    ".vad": ["load_vad", "speech_segments", "split_audio_files", "split_utterances"],
}  # fmt: skip
__getattr__, __dir__ = lazy_exports(__name__, _SUBMODULES)

__all__ = [
    "voice_probabilities",
    "is_festival_voice",
    "festival_voices",
    "festival_version",
    "FestivalSynthesizer",
    "FestivalError",
    "FESTIVAL_PREFIX",
    "make_synthesizer",
    "corpus_voices",
    "VOICE_KEYWORDS",
    "PROSODY",
    "SENTIMENTS",
    "SentimentPrompt",
    "build_sentiment_prompts",
    "sentiment_texts",
    "BACKCHANNELS",
    "Dialogue",
    "DialogueTiming",
    "EspeakError",
    "EspeakSynthesizer",
    "GRAMMAR",
    "OPEN_VOCABULARY_SOURCES",
    "OPEN_VOCABULARY_SPLITS",
    "REAL_SPEECH_SOURCES",
    "SentencePlan",
    "Slot",
    "SynthesisResult",
    "TEMPLATES",
    "TextSplit",
    "VoiceInfo",
    "alsa_clips",
    "assign_voices",
    "audio_text_columns",
    "cache_key",
    "cards_clips",
    "corpus_jobs",
    "dataset_features",
    "default_cache_dir",
    "dialogue_features",
    "dialogues_to_dataset",
    "english_voices",
    "espeak_version",
    "generate_dialogue",
    "generate_dialogues",
    "generate_sentences",
    "librivox_clips",
    "list_variants",
    "list_voices",
    "load_local_dataset",
    "load_real_speech",
    "load_text_corpus",
    "load_text_split",
    "load_heldout_words",
    "load_sentences",
    "open_vocabulary_speech",
    "load_vad",
    "normalize_sentence",
    "phoneme_stream",
    "phonemize",
    "read_audio_dir",
    "read_fortunes",
    "read_text_file",
    "read_wordnet_definitions",
    "read_wordnet_examples",
    "read_wordnet_glosses",
    "read_wordnet_lexicon",
    "realize",
    "sample_plan",
    "speech_segments",
    "split_audio_files",
    "split_texts",
    "split_utterances",
    "synthesize_corpus",
    "synthesize_dataset",
    "synthesize_to_wav",
    "text_words",
    "write_audio_dir",
    "write_dialogues",
    "write_wav",
]
