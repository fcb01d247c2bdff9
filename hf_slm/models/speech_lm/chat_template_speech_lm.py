"""A chat template for speech-text conversations, built on `SpeechLMProcessor`'s vocabulary layout.

One conversation becomes one sequence::

    <s> [tag] [User] [Text] t.. [Speech] u.. [Assistant] [Text] t.. [Speech] u.. </s> [User] ... [Assistant] ... </s>

Roles are the tags ``[User]`` / ``[Assistant]`` (task tokens of the layout, `CHAT_TOKENS`), each content
item opens with its modality marker (``[Text]`` / ``[Speech]``, as in the processor's segments) and every assistant
turn ends with ``</s>``. Labels are -100 everywhere except on the assistant's content and its ``</s>``: the model
learns to answer (including which modality to answer in, and when to stop) and never to imitate the user. An empty
assistant turn (silence mode) is ``[Assistant] </s>``: its only label is the immediate ``</s>``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers.feature_extraction_utils import BatchFeature

USER_TOKEN = "[User]"
ASSISTANT_TOKEN = "[Assistant]"
CHAT_TOKENS = (USER_TOKEN, ASSISTANT_TOKEN)
ROLES = ("user", "assistant")


class SpeechChatTemplate:
    """Turns ``messages`` conversations into ``input_ids`` / ``attention_mask`` / ``labels`` (assistant-only loss).

    Args:
        processor (`SpeechLMProcessor`): gives the vocabulary layout and the text tokenizer; its layout must hold
            ``[User]`` and ``[Assistant]`` among its task tokens (`hf_slm.instruct.add_task_tokens` extends a model).

    Messages follow transformers' multimodal chat format: ``{"role": "user" | "assistant", "content": [...]}``
    where content is a string (text) or a list of ``{"type": "text", "text": ...}`` /
    ``{"type": "speech", "units": [...]}`` items (extra ``None`` keys, as stored by ``datasets``, are ignored).

    >>> import torch
    >>> from hf_slm import SpeechLMConfig, SpeechLMProcessor
    >>> from hf_slm.models.speech_lm import CHAT_TOKENS, SpeechChatTemplate
    >>> processor = SpeechLMProcessor.from_config(SpeechLMConfig(num_units=10, task_tokens=list(CHAT_TOKENS)))
    >>> chat = SpeechChatTemplate(processor)
    >>> out = chat.encode([{"role": "user", "content": [{"type": "speech", "units": [3, 4]}]},
    ...                    {"role": "assistant", "content": [{"type": "speech", "units": [5]}]}])
    >>> processor.decode(out["input_ids"])
    '<s>[User][Speech]<unit_3><unit_4>[Assistant][Speech]<unit_5></s>'
    >>> [i if i < 0 else processor.decode([i]) for i in out["labels"]]
    [-100, -100, -100, -100, -100, -100, '[Speech]', '<unit_5>', '</s>']
    """

    def __init__(self, processor):
        layout = processor.layout
        missing = [t for t in CHAT_TOKENS if t not in layout.task_tokens]
        if missing:
            raise ValueError(
                f"the vocabulary has no chat role tokens {missing} (task_tokens={list(layout.task_tokens)}); extend "
                "the model with hf_slm.instruct.add_task_tokens(model, INSTRUCT_TOKENS) first"
            )
        if not layout.use_modality_tokens:
            raise ValueError("the chat template needs [Speech] / [Text] markers: use_modality_tokens=False models "
                             "cannot mark the modality of a turn")  # fmt: skip
        self.processor = processor
        self.layout = layout
        self.user_token_id = layout.token_id(USER_TOKEN)
        self.assistant_token_id = layout.token_id(ASSISTANT_TOKEN)

    # ------------------------------------------------------------------ one conversation
    def encode(
        self,
        messages: Sequence[dict],
        task: str | None = None,
        add_generation_prompt: bool = False,
        return_labels: bool = True,
    ) -> dict[str, list[int]]:
        """One conversation -> ``{"input_ids", "attention_mask"[, "labels"]}`` as lists (unpadded).

        Args:
            messages: the turns; with ``add_generation_prompt=True`` the last turn must be the user's and the
                sequence ends with ``[Assistant]`` (a prompt for `generate`).
            task: a task tag written after ``<s>`` (``"[ASR]"``; ``None`` or ``""`` for none).
            return_labels: add ``labels`` (-100 except on assistant content and the ``</s>`` that closes it).
        """
        if not messages:
            raise ValueError("a conversation needs at least one message")
        layout = self.layout
        ids = [layout.bos_token_id, *layout.task_ids(task or None)]
        learn = [False] * len(ids)
        for index, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role not in ROLES:
                raise ValueError(f"message {index}: role must be one of {ROLES}, got {role!r}")
            is_assistant = role == "assistant"
            ids.append(self.assistant_token_id if is_assistant else self.user_token_id)
            learn.append(False)
            for kind, content in self._items(message.get("content"), index):
                marker = layout.text_token_id if kind == "text" else layout.speech_token_id
                ids += [marker, *content]
                learn += [is_assistant] * (1 + len(content))
            if is_assistant:
                ids.append(layout.eos_token_id)
                learn.append(True)
        if add_generation_prompt:
            if messages[-1]["role"] != "user":
                raise ValueError("add_generation_prompt=True needs the conversation to end with a user turn")
            ids.append(self.assistant_token_id)
            learn.append(False)
        out = {"input_ids": ids, "attention_mask": [1] * len(ids)}
        if return_labels:
            out["labels"] = [i if keep else -100 for i, keep in zip(ids, learn)]
        return out

    def _items(self, content, index: int) -> list[tuple[str, list[int]]]:
        if content is None:
            return []
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        items = []
        for item in content:
            kind = item.get("type")
            if kind == "text":
                if not isinstance(item.get("text"), str):
                    raise ValueError(f"message {index}: a text item needs a string 'text', got {item!r}")
                items.append(("text", self._tokenize(item["text"])))
            elif kind == "speech":
                if item.get("units") is None:
                    raise ValueError(f"message {index}: a speech item needs 'units' (encode audio first)")
                items.append(("speech", self.layout.units_to_token_ids(item["units"]).tolist()))
            else:
                raise ValueError(f"message {index}: content type must be 'text' or 'speech', got {kind!r}")
        return items

    def _tokenize(self, text: str) -> list[int]:
        tokenizer = self.processor.tokenizer
        if tokenizer is None:
            raise ValueError("this processor has no text tokenizer (a speech-only model); it cannot encode text")
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        bad = [i for i in ids if not 0 <= i < self.layout.text_vocab_size]
        if bad:
            raise ValueError(f"the tokenizer produced id {bad[0]} outside [0, {self.layout.text_vocab_size})")
        return ids

    # ------------------------------------------------------------------ batches
    def __call__(
        self,
        conversations: Sequence[Sequence[dict]],
        tasks: Sequence[str | None] | None = None,
        add_generation_prompt: bool = False,
        return_labels: bool = True,
        padding_side: str | None = None,
    ) -> BatchFeature:
        """A batch of conversations, padded by `SpeechLMProcessor.pad` (left padding for generation prompts)."""
        tasks = [None] * len(conversations) if tasks is None else list(tasks)
        if len(tasks) != len(conversations):
            raise ValueError(f"got {len(tasks)} tasks for {len(conversations)} conversations")
        rows = [
            self.encode(m, task=t, add_generation_prompt=add_generation_prompt, return_labels=return_labels)
            for m, t in zip(conversations, tasks)
        ]
        if padding_side is None:
            padding_side = "left" if add_generation_prompt else self.processor.padding_side
        return self.processor.pad(rows, padding_side=padding_side)

    def map_function(self, max_length: int | None = None):
        """A function for ``dataset.map`` over rows with ``messages`` (and ``tag``): adds the model inputs."""

        def tokenize(row):
            out = self.encode(row["messages"], task=row.get("tag") or None)
            if max_length is not None and len(out["input_ids"]) > max_length:
                out = {k: v[:max_length] for k, v in out.items()}
            return out

        return tokenize

    def decode_response(self, token_ids) -> list[tuple[str, object]]:
        """Generated assistant tokens -> ``[("text", str) | ("speech", LongTensor)]`` (stops at ``</s>``)."""
        token_ids = torch.as_tensor(token_ids).long().flatten().tolist()
        if self.layout.eos_token_id in token_ids:
            token_ids = token_ids[: token_ids.index(self.layout.eos_token_id)]
        return self.processor.decode_segments(token_ids)


__all__ = ["ASSISTANT_TOKEN", "CHAT_TOKENS", "USER_TOKEN", "SpeechChatTemplate"]
