"""Names of the four architectures the paper compares.

The same strings key the training registry, the Triton model repository, the A/B policy,
metrics labels and the Helm chart. This module has no TensorFlow dependency so serving code can
import it; the Keras builders live in `ferlite.training.models`.
"""

from __future__ import annotations

from collections.abc import Mapping

from ferlite.base.event_rules import shown

ARCHITECTURES: tuple[str, ...] = (
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
)


# The default A/B policy: the best validated model's share of traffic; the others split the rest.
CHAMPION_SHARE = 0.94


def champion_weights(validation: Mapping[str, float], share: float = CHAMPION_SHARE) -> dict[str, float]:
    """The default A/B weights (the classifier's `champion_policy`, the pack's README): the
    architecture with the best validation accuracy gets `share`, the others split the rest equally
    (a canary each). `validation`: architecture -> validation accuracy of the models that may serve.
    Rounded to 4 decimals so the same pack always gives the same policy; {} without models."""
    if not validation:
        return {}
    best = max(sorted(validation), key=lambda a: validation[a])
    others = [a for a in sorted(validation) if a != best]
    weights = {best: round(share if others else 1.0, 4)}
    weights.update({a: round((1.0 - share) / len(others), 4) for a in others})
    return weights


def check_architecture(name: str) -> str:
    """Return `name` if it is a known architecture, else raise ValueError listing the choices."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {shown(name)}; choose one of {', '.join(ARCHITECTURES)}")
    return name
