"""Names of the four architectures the paper compares.

The same strings key the training registry, the Triton model repository, the A/B policy,
metrics labels and the Helm chart. This module has no TensorFlow dependency so serving code can
import it; the Keras builders live in `ferlite.training.models`.
"""

from __future__ import annotations

from ferlite.base.event_rules import shown

ARCHITECTURES: tuple[str, ...] = (
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
)


def check_architecture(name: str) -> str:
    """Return `name` if it is a known architecture, else raise ValueError listing the choices."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {shown(name)}; choose one of {', '.join(ARCHITECTURES)}")
    return name
