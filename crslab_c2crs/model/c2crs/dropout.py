"""Dropout with cheaper masks (``fast_dropout``): the same inverted dropout as ``nn.Dropout``, other random numbers.

On CPU, ``nn.Dropout`` draws one float per element (``bernoulli_``) and keeps a float mask for backward: in a
pre-training step of C2-CRS its 14 masks took a fifth of the time (``bench/results/c2crs-profile.md``).
:class:`FastDropout` draws 64 random bits per 4 elements from torch's generator (so ``torch.manual_seed`` seeds it
and ``torch.utils.checkpoint`` replays it), compares each 16-bit lane with ``p`` rounded to a multiple of 1/65536
and keeps a boolean mask: fewer random draws, 1 byte instead of 4 per element kept for backward. The masks differ
from ``nn.Dropout``'s, so a run with it is a different random draw of the same training.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

_LANES = 4  # 16-bit lanes in one 64-bit draw


class FastDropout(nn.Module):
    """Inverted dropout: in training, each element is zeroed with probability ``p`` (to 1/65536) and the others are
    scaled by ``1 / (1 - p)``; the identity in eval mode.

    Args:
        p: drop probability, in [0, 1).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        # a lane drops its element when its signed 16-bit value is below this threshold
        self.threshold = round(p * 65536) - 32768

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: Tensor) -> Tensor:
        """``x``: any shape -> the same shape."""
        if not self.training or self.p == 0.0:
            return x
        n = x.numel()
        draws = torch.empty(-(-n // _LANES), dtype=torch.int64, device=x.device)
        # the full 64-bit range: random_() alone draws in [0, 2^63), which would bias the top lane
        lanes = draws.random_(-(2**63), None).view(torch.int16)[:n].view(x.shape)
        return x.masked_fill(lanes < self.threshold, 0.0) * (1.0 / (1.0 - self.p))


def use_fast_dropout(model: nn.Module) -> None:
    """Replace every ``nn.Dropout`` inside ``model`` by a :class:`FastDropout` of the same ``p``, in place."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                setattr(parent, name, FastDropout(child.p))
