"""Spoken-chat decoding: `SpokenChatPipeline`'s own token loop vs transformers' `generate` with a streamer.

Both decode the same assistant turn of the same pipeline (default: the shipped `instruct-default`) in one process,
runs interleaved, with the same logits processors (`token_picker`'s: suppressed tags, `min_new_tokens`, one modality):
  (a) ours      - `pipe.chat(...)`: a forward per token over the KV cache, the reply's text and units re-read
                  after every token (what `stream_chat` needs to yield events);
  (b) generate  - `language_model.generate(...)` with a `BaseStreamer` that does the same per-token reading.
Greedy, a speech reply of `--tokens` tokens (`min_new_tokens` = `max_new_tokens`, so both run the same length),
no vocoder. Checks that both produce the same tokens, prints the best of `--repeats` seconds per turn and last
`ratio: X` = generate / ours (> 1: ours is faster). `generate` pays per-step work a cached loop does not (attention
mask and cache-position bookkeeping, the generation-config machinery), which dominates at small model sizes.

    python benchmarks/bench_spoken_chat.py --tokens 100 --repeats 5
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from transformers import GenerationConfig
from transformers.generation.streamers import BaseStreamer

from hf_slm.pipelines import SpokenChatPipeline
from hf_slm.pipelines.spoken_chat import KeepOnlyModality


class ReadEveryToken(BaseStreamer):
    """Reads the reply's text and units after every new token, as `stream_chat` does between its events."""

    def __init__(self, pipe: SpokenChatPipeline):
        self.pipe, self.tokens, self.prompt_seen = pipe, [], False

    def put(self, value):
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.tokens.append(int(value.reshape(-1)[0]))
        self.pipe.chat_template.decode_response(self.tokens)
        self.pipe.chat_template.layout.token_ids_to_units(torch.tensor(self.tokens), strict=False)

    def end(self):
        pass


def generate_turn(pipe: SpokenChatPipeline, user: str, tokens: int) -> list[int]:
    layout = pipe.chat_template.layout
    messages = [pipe.user_message(user)]
    prompt = pipe.chat_template.encode(messages, add_generation_prompt=True, return_labels=False)["input_ids"]
    input_ids = torch.tensor([prompt + [layout.speech_token_id]], device=pipe.device)
    banned = [layout.pad_token_id, layout.bos_token_id] + [layout.token_id(t) for t in layout.task_tokens]
    config = GenerationConfig(max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, suppress_tokens=banned,
                              eos_token_id=layout.eos_token_id, pad_token_id=layout.pad_token_id)  # fmt: skip
    streamer = ReadEveryToken(pipe)
    streamer.tokens.append(layout.speech_token_id)
    pipe.language_model.generate(input_ids=input_ids, generation_config=config, streamer=streamer,
                                 logits_processor=[KeepOnlyModality(layout, "speech")])  # fmt: skip
    return streamer.tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default="instruct-default")
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = SpokenChatPipeline.from_pretrained(args.pipeline)
    user = "what is two plus three"
    ours = dict(response_modality="speech", strict_modality=True, max_new_tokens=args.tokens,
                min_new_tokens=args.tokens, vocode=False)  # fmt: skip
    same = pipe.chat(user, **ours).token_ids == generate_turn(pipe, user, args.tokens)  # also the warm-up
    times = {"ours": [], "generate": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        pipe.chat(user, **ours)
        times["ours"].append(time.perf_counter() - start)
        start = time.perf_counter()
        generate_turn(pipe, user, args.tokens)
        times["generate"].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    print(f"{platform.processor() or platform.machine()}, torch threads {args.threads}, {args.pipeline}, "
          f"{args.tokens} tokens, best of {args.repeats}")  # fmt: skip
    print(f"ours {best['ours']:.3f} s/turn, generate {best['generate']:.3f} s/turn, same tokens: {same}")
    print(f"ratio: {best['generate'] / best['ours']:.2f}")


if __name__ == "__main__":
    main()
