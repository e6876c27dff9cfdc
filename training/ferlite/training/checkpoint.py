"""Where an interrupted training job stands, so that running the same command again continues it.

A long CPU run (a whole model on two cores takes hours) is interrupted by the machine, the session
or the user; its best epoch alone (kept separately) cannot continue the learning-rate schedule or
Adam's moments. This file holds the state at the end of the last finished epoch: every weight, the
optimizer's variables (its step count drives an in-graph schedule), and the loop's own state.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class EpochCheckpoint:
    """One job's `.npz` file. `key` names the job (architecture, size, initialisation): a file
    another job wrote is ignored, not loaded into the wrong model."""

    def __init__(self, path: Path, key: str) -> None:
        self.path, self.key = Path(path), key

    def save(self, model, optimizer, epoch: int, state: dict) -> None:
        """After `epoch` (1-based) finished; `state` is JSON the loop needs back (history, best...)."""
        tmp = self.path.with_name(self.path.stem + ".tmp.npz")
        arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
        arrays.update({f"o{i}": np.asarray(v) for i, v in enumerate(optimizer.variables)})
        np.savez(tmp, state=json.dumps({"key": self.key, "epoch": epoch, **state}), **arrays)
        tmp.replace(self.path)  # a kill mid-write leaves the previous epoch's file whole

    def load(self, model, optimizer, trainable_variables) -> dict | None:
        """Restore weights and optimizer; return the saved state (`epoch` included), or None when
        there is no file or it is another job's."""
        if not self.path.exists():
            return None
        with np.load(self.path) as f:
            state = json.loads(str(f["state"]))
            if state.get("key") != self.key:
                return None
            model.set_weights([f[f"w{i}"] for i in range(len(model.get_weights()))])
            optimizer.build(trainable_variables)
            for i, var in enumerate(optimizer.variables):
                var.assign(f[f"o{i}"])
        return state
