"""Trainer batches for the acoustic LMs (AudioLM's coarse and fine stages)."""

from __future__ import annotations

import torch


class AcousticLMCollator:
    """Rows of `codes` (`[Q][T]` lists: a codec's codes of one utterance) and, for a coarse model, `units` (`[T_u]`)
    -> `AcousticLMForCausalLM.prepare_inputs` batches.

    Args:
        model: the `AcousticLMForCausalLM` being trained (its config decides the prefix and the target codebooks).
        max_frames (`int`, *optional*): a fine model (`condition="codes"`) trains on a random window of at most this
            many frames of each utterance (AudioLM's fine stage reads 3 s windows); `None` keeps whole utterances.
        seed (`int`): seed of the window draws.
    """

    def __init__(self, model, max_frames: int | None = None, seed: int = 0):
        if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 1):
            raise ValueError(f"max_frames must be an int >= 1 or None, got {max_frames!r}")
        if max_frames is not None and model.config.condition != "codes":
            raise ValueError("max_frames windows a fine model's codes; a coarse model reads the whole utterance")
        self.model, self.max_frames = model, max_frames
        self.generator = torch.Generator().manual_seed(seed)

    def _window(self, codes: torch.Tensor) -> torch.Tensor:
        frames = codes.shape[-1]
        if self.max_frames is None or frames <= self.max_frames:
            return codes
        start = int(torch.randint(0, frames - self.max_frames + 1, (1,), generator=self.generator))
        return codes[:, start : start + self.max_frames]

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        if not rows:
            raise ValueError("cannot collate an empty batch")
        codes = [self._window(torch.as_tensor(r["codes"], dtype=torch.long)) for r in rows]
        units = None
        if self.model.config.condition == "units":
            missing = [i for i, r in enumerate(rows) if r.get("units") is None]
            if missing:
                raise ValueError(f"a coarse acoustic LM needs a 'units' column; rows {missing} have none")
            units = [torch.as_tensor(r["units"], dtype=torch.long) for r in rows]
        return self.model.prepare_inputs(codes, units)


__all__ = ["AcousticLMCollator"]
