"""The A/B routing policy: weights per architecture, sticky assignment, shadow scoring.

Sticky routing uses weighted rendezvous hashing: each arm scores a key by -w / ln(u), with u a
hash of (key, arm) in (0, 1), and the highest score wins. A key always lands on the same arm,
keys spread over arms in proportion to the weights, and changing one weight moves only the keys
that must move. Non-sticky requests draw arms at random by weight. Arms that are not ready are
left out of both, so routing skips an unready arm rather than failing.

Out of the box (no policy file, no SetPolicy) the policy is `champion_policy` of the served models:
the one with the best validation accuracy takes CHAMPION_SHARE of the traffic and the others share
the rest as a small canary, so a new user's classrooms get the best model and the comparison still
collects figures. An equal split would hand a third of the classes to a model 14 points worse.

The policy hot-reloads from a JSON file (a mounted ConfigMap in Kubernetes) and can be set
through the admin RPC; the latest change wins, whichever source it came from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ferlite.base.architectures import ARCHITECTURES, CHAMPION_SHARE, champion_weights
from ferlite.base.event_rules import shown

log = logging.getLogger("ferlite.classifier.policy")


class PolicyError(ValueError):
    """An invalid policy; the message says which field."""


@dataclass(frozen=True)
class ABPolicy:
    weights: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ARCHITECTURES, 1.0))
    sticky: bool = True
    shadow_fraction: float = 0.0
    revision: str = ""

    def validate(self) -> ABPolicy:
        if not self.weights:
            raise PolicyError("weights: give at least one architecture")
        for arch, w in self.weights.items():
            if arch not in ARCHITECTURES:
                raise PolicyError(f"weights: unknown architecture {shown(arch)}; choose from "
                                  f"{', '.join(ARCHITECTURES)}")
            if not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                raise PolicyError(f"weights[{shown(arch)}]={shown(w)} must be a non-negative number")
        if sum(self.weights.values()) <= 0:
            raise PolicyError("weights: at least one weight must be > 0")
        if not 0.0 <= self.shadow_fraction <= 1.0:
            raise PolicyError(f"shadow_fraction={self.shadow_fraction} must be in [0, 1]")
        return self

    def with_revision(self) -> ABPolicy:
        body = json.dumps({"w": sorted(self.weights.items()), "s": self.sticky, "f": self.shadow_fraction})
        return ABPolicy(dict(self.weights), self.sticky, self.shadow_fraction,
                        hashlib.sha1(body.encode()).hexdigest()[:12])

    @classmethod
    def from_dict(cls, data: dict) -> ABPolicy:
        if not isinstance(data, dict):
            raise PolicyError("the policy must be a JSON object")
        unknown = set(data) - {"weights", "sticky", "shadow_fraction", "revision"}
        if unknown:
            raise PolicyError(f"unknown policy field(s): {', '.join(sorted(unknown))}")
        weights = data.get("weights", dict.fromkeys(ARCHITECTURES, 1.0))
        if not isinstance(weights, dict):
            raise PolicyError("weights must be an object mapping architecture to weight")
        return cls({str(k): v for k, v in weights.items()}, bool(data.get("sticky", True)),
                   float(data.get("shadow_fraction", 0.0))).validate().with_revision()

    def settings(self) -> dict:
        """What a policy file or ConfigMap holds: the policy without its derived revision."""
        return {"weights": dict(self.weights), "sticky": self.sticky, "shadow_fraction": self.shadow_fraction}

    def to_dict(self) -> dict:
        return {**self.settings(), "revision": self.revision}


def champion_policy(validation: Mapping[str, float], share: float = CHAMPION_SHARE) -> ABPolicy:
    """The default policy: `champion_weights` of the models that may serve (gate passed), sticky,
    no shadow scoring; the equal default without models."""
    weights = champion_weights(validation, share)
    if not weights:
        return ABPolicy().validate().with_revision()
    return ABPolicy(weights, sticky=True, shadow_fraction=0.0).validate().with_revision()


def _unit_hash(key: str, arm: str) -> float:
    digest = hashlib.blake2b(f"{key}\x00{arm}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / 2**64


def choose(policy: ABPolicy, ready: Iterable[str], key: str = "", rng: random.Random | None = None) -> str | None:
    """The arm for one request, or None when no arm with weight > 0 is ready."""
    arms = [(a, policy.weights.get(a, 0.0)) for a in ARCHITECTURES if a in set(ready)]
    arms = [(a, w) for a, w in arms if w > 0]
    if not arms:
        return None
    if policy.sticky and key:
        return max(arms, key=lambda aw: -aw[1] / math.log(_unit_hash(key, aw[0])))[0]
    rng = rng or random
    pick = rng.random() * sum(w for _, w in arms)
    for arm, w in arms:
        pick -= w
        if pick < 0:
            return arm
    return arms[-1][0]


class PolicyReadOnly(PolicyError):
    """The policy file is read-only here: SetPolicy cannot be the writer."""


class PolicyStore:
    """The live policy; reloads `path` when its content changes; settable at run time."""

    def __init__(self, path: str | Path | None = None, on_change: Callable[[ABPolicy], None] = lambda p: None,
                 interval: float = 1.0, default: ABPolicy | None = None) -> None:
        self.path = Path(path) if path else None
        self.on_change = on_change
        self.interval = interval
        self._lock = threading.Lock()
        self._file_text: str | None = None
        self._policy = (default or ABPolicy()).validate().with_revision()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rejected = 0  # invalid files seen (each logged); the policy in force stays
        if self.path:
            self.reload(initial=True)

    @property
    def policy(self) -> ABPolicy:
        with self._lock:
            return self._policy

    def set(self, policy: ABPolicy) -> ABPolicy:
        """Make `policy` the live one. With a policy file, the file is the one writer: the policy is
        written there (atomically) and every replica watching it applies the same policy; a file
        this process cannot write (a ConfigMap mount) refuses, naming the tool that can."""
        policy = policy.validate().with_revision()
        if self.path:
            self._write(policy)
        return self._apply(policy)

    def _apply(self, policy: ABPolicy) -> ABPolicy:
        with self._lock:
            self._policy = policy
        log.info("policy set", extra={"policy": policy.to_dict()})
        self.on_change(policy)
        return policy

    def _write(self, policy: ABPolicy) -> None:
        assert self.path is not None
        text = json.dumps(policy.settings(), indent=1) + "\n"
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(text)
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise PolicyReadOnly(f"the A/B policy comes from {self.path}, which cannot be written here "
                                 f"({exc.strerror}); change it where it lives (in a cluster: `ferlite ab set`, "
                                 "which patches the ConfigMap every replica reads)") from exc
        self._file_text = text  # our own write: the watcher need not apply it again

    def reload(self, initial: bool = False) -> bool:
        """Apply the file if its content changed; keep the current policy if it is invalid."""
        assert self.path is not None
        try:
            text = self.path.read_text()
        except OSError as exc:
            if initial:
                raise PolicyError(f"cannot read policy file {self.path}: {exc}") from exc
            return False
        if text == self._file_text:
            return False
        self._file_text = text
        try:
            policy = ABPolicy.from_dict(json.loads(text))
        except (ValueError, TypeError) as exc:
            if initial:
                raise PolicyError(f"policy file {self.path}: {exc}") from exc
            self.rejected += 1
            log.error("ignoring invalid policy file", extra={"path": str(self.path), "error": str(exc)})
            return False
        self._apply(policy)
        return True

    def start(self) -> PolicyStore:
        if self.path:
            self._thread = threading.Thread(target=self._watch, name="policy-reload", daemon=True)
            self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self.reload()

    def stop(self) -> None:
        self._stop.set()
