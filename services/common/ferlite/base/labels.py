"""The seven canonical emotion labels, in the one fixed order every component uses.

Probabilities in the gRPC contract, model outputs, Redis counters and metrics all follow this
order. Dataset folders may use other spellings (CK+ says `anger`, `sadness`); `ALIASES` maps
them here so that the order is defined exactly once.
"""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INDEX: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}
NUM_CLASSES = len(EMOTIONS)

ALIASES: dict[str, str] = {
    "anger": "angry",
    "angry": "angry",
    "mad": "angry",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "surprise": "surprise",
    "surprised": "surprise",
    "neutral": "neutral",
    "calm": "neutral",
}


def canonical(name: str) -> str | None:
    """Map a class name (any case, alias allowed) to its canonical label, or None if unknown."""
    return ALIASES.get(name.strip().lower())
