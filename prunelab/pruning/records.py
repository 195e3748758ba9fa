"""Plain records of pruning, with no project import: the per-channel statistics every ranking
criterion reads (`prunelab.pruning.activations` stores and loads them, `prunelab.checks.arrays`
checks them). NumPy only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ActivationStats:
    """Means over the ranking split; every array is per output channel of the pruned conv."""

    conv_mean: np.ndarray  # P: raw conv output (what the handout ranks on)
    act_mean: np.ndarray  # P: after BN and ReLU (the default ranking signal)
    feature_maps: np.ndarray  # P×M×N: mean map after BN and ReLU
    apoz: np.ndarray  # P: share of zeros after ReLU, over samples × positions
    taylor: np.ndarray  # P: mean over samples of |mean over positions of a · dL/da|
    # P×P, float64: the centred Gram matrix of the channels' contributions to the consumer's
    # pre-activation (fc1, or the next conv: then its C'·h'·w' outputs), G[c, c'] = Σ_n <ũ_c(n), ũ_c'(n)>
    # with u_c(n) = W_c z_c(n) (W_c: the consumer's weights for channel c, z_c(n): the layer's output)
    # and ũ_c = u_c − mean_n u_c. A sum over samples, not a mean: removing a set R (its mean folded into
    # what the consumer adds) costs Σ_{c,c'∈R} G[c, c'] in squared error over the split.
    contribution_gram: np.ndarray
    n_samples: int

    @property
    def channels(self) -> int:
        return len(self.act_mean)
