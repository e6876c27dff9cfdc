"""A/B policy: validation, weighted and sticky routing in statistical bounds, hot reload."""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter

import pytest

from ferlite.base.architectures import ARCHITECTURES
from ferlite.services.classifier.policy import ABPolicy, PolicyError, PolicyStore, choose

ALL = set(ARCHITECTURES)


def _within(count: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1


@pytest.mark.parametrize(("data", "needle"), [
    ({"weights": {"resnet50": 1}}, "unknown architecture 'resnet50'"),
    ({"weights": {"mobilenet_v2": -1}}, "must be a non-negative number"),
    ({"weights": {"mobilenet_v2": 0, "efficientnet_b0": 0}}, "at least one weight must be > 0"),
    ({"shadow_fraction": 1.5}, "shadow_fraction=1.5"),
    ({"weigths": {}}, "unknown policy field(s): weigths"),
])
def test_invalid_policies_are_named(data, needle) -> None:
    with pytest.raises(PolicyError) as err:
        ABPolicy.from_dict(data)
    assert needle in str(err.value)


def test_weighted_random_routing_matches_weights() -> None:
    policy = ABPolicy.from_dict({"weights": {"mobilenet_v2": 3, "mobilenet_v3_small": 1}, "sticky": False})
    rng = random.Random(1)
    counts = Counter(choose(policy, ALL, rng=rng) for _ in range(4000))
    assert set(counts) == {"mobilenet_v2", "mobilenet_v3_small"}
    assert _within(counts["mobilenet_v2"], 4000, 0.75)


def test_sticky_routing_is_stable_proportional_and_minimal_on_change() -> None:
    policy = ABPolicy.from_dict({"weights": {a: 1 for a in ARCHITECTURES}})
    keys = [f"stream-{i}" for i in range(4000)]
    first = {k: choose(policy, ALL, k) for k in keys}
    assert all(choose(policy, ALL, k) == first[k] for k in keys[:200])
    counts = Counter(first.values())
    assert all(_within(counts[a], 4000, 0.25) for a in ARCHITECTURES), counts
    heavier = ABPolicy.from_dict({"weights": {**{a: 1 for a in ARCHITECTURES}, "efficientnet_b0": 2}})
    moved = [k for k in keys if choose(heavier, ALL, k) != first[k]]
    # only keys moving TO efficientnet_b0 should move: its share goes from 1/4 to 2/5
    assert all(choose(heavier, ALL, k) == "efficientnet_b0" for k in moved)
    assert _within(len(moved), 4000, 0.4 - 0.25, sigmas=5)


def test_unready_arms_are_skipped() -> None:
    policy = ABPolicy.from_dict({"weights": {"mobilenet_v2": 1, "efficientnet_b0": 1}})
    ready = {"mobilenet_v2", "mobilenet_v3_small"}
    assert {choose(policy, ready, f"k{i}") for i in range(200)} == {"mobilenet_v2"}
    assert choose(policy, {"mobilenet_v3_small"}, "k") is None


def test_policy_file_hot_reload_keeps_last_good(tmp_path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"weights": {"mobilenet_v2": 1}}))
    seen = []
    store = PolicyStore(path, on_change=seen.append, interval=0.05).start()
    try:
        assert store.policy.weights == {"mobilenet_v2": 1}
        path.write_text(json.dumps({"weights": {"efficientnet_b0": 2}, "shadow_fraction": 0.5}))
        deadline = time.monotonic() + 5
        while store.policy.weights != {"efficientnet_b0": 2} and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.policy.shadow_fraction == 0.5 and seen
        path.write_text("{not json")
        deadline = time.monotonic() + 5
        while store.rejected == 0 and time.monotonic() < deadline:  # the watcher must have read it
            time.sleep(0.02)
        assert store.rejected == 1
        assert store.policy.weights == {"efficientnet_b0": 2}  # an invalid file never replaces a good policy
        path.write_text(json.dumps({"weights": {"mobilenet_v3_small": 1}}))  # and the watcher goes on
        deadline = time.monotonic() + 5
        while store.policy.weights != {"mobilenet_v3_small": 1} and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.policy.weights == {"mobilenet_v3_small": 1}
    finally:
        store.stop()
    path.write_text(json.dumps({"weights": {"x": 1}}))
    with pytest.raises(PolicyError, match="unknown architecture"):
        PolicyStore(path)


def test_the_policy_file_is_the_one_writer(tmp_path, monkeypatch) -> None:
    """SetPolicy on one replica writes the shared file, so every replica watching it applies the
    same policy; where the file is a read-only mount (a ConfigMap), SetPolicy refuses and says which
    tool writes it, instead of changing one replica only."""
    import os

    from ferlite.services.classifier.policy import ABPolicy, PolicyReadOnly

    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"weights": {"mobilenet_v2": 1}}))
    one, two = PolicyStore(path, interval=0.05).start(), PolicyStore(path, interval=0.05).start()
    try:
        one.set(ABPolicy({"mobilenet_v3_small": 2}, True, 0.0))
        deadline = time.monotonic() + 5
        while two.policy.weights != {"mobilenet_v3_small": 2} and time.monotonic() < deadline:
            time.sleep(0.02)
        assert two.policy.weights == {"mobilenet_v3_small": 2} and two.policy.revision == one.policy.revision
        assert json.loads(path.read_text())["weights"] == {"mobilenet_v3_small": 2}
        assert one.rejected == two.rejected == 0  # its own write is not applied twice, nor refused

        def read_only(*args, **kwargs):
            raise OSError(30, "Read-only file system")

        monkeypatch.setattr(os, "replace", read_only)
        with pytest.raises(PolicyReadOnly, match="ferlite ab set"):
            one.set(ABPolicy({"efficientnet_b0": 1}, True, 0.0))
        assert one.policy.weights == {"mobilenet_v3_small": 2}  # nothing changed anywhere
        assert not list(tmp_path.glob(".policy.json.*"))
    finally:
        one.stop()
        two.stop()


def test_champion_policy_routes_most_keys_to_the_best_validated_model() -> None:
    from ferlite.services.classifier.policy import CHAMPION_SHARE, champion_policy

    validation = {"mobilenet_v2": 0.66, "mobilenet_v3_small": 0.63, "mobilenet_v3_large": 0.68,
                  "efficientnet_b0": 0.60}
    policy = champion_policy(validation)
    assert max(policy.weights, key=policy.weights.get) == "mobilenet_v3_large"
    assert policy.weights["mobilenet_v3_large"] == CHAMPION_SHARE >= 0.9
    assert sum(policy.weights.values()) == pytest.approx(1.0, abs=1e-3)
    n = 20_000
    counts = Counter(choose(policy, ALL, key=f"class-{i}") for i in range(n))
    assert _within(counts["mobilenet_v3_large"], n, CHAMPION_SHARE)
    assert all(counts[a] > 0 for a in ALL)  # each other arm still gets its canary
    # A gated model is simply not offered; a single model takes everything.
    assert champion_policy({"mobilenet_v2": 0.66}).weights == {"mobilenet_v2": 1.0}
    assert champion_policy(validation).revision == policy.revision  # same pack, same revision


def test_store_starts_from_the_given_default_until_a_file_or_set_replaces_it(tmp_path) -> None:
    from ferlite.services.classifier.policy import champion_policy

    default = champion_policy({"mobilenet_v2": 0.7, "mobilenet_v3_small": 0.6})
    assert PolicyStore(default=default).policy.weights == default.weights
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"weights": {"mobilenet_v3_small": 1}}))
    assert PolicyStore(path, default=default).policy.weights == {"mobilenet_v3_small": 1}


def test_the_charts_default_policy_is_the_shipped_packs_champion() -> None:
    """The chart and the local stack agree out of the box: the chart's `abPolicy` (a ConfigMap the
    classifier always reads in a cluster) is what the classifier would build from the shipped pack
    without a policy file."""
    from pathlib import Path

    import yaml

    from ferlite.base.model_metadata import PACK_DIR, find_models
    from ferlite.services.classifier.config import ClassifierConfig
    from ferlite.services.classifier.policy import champion_policy

    values = yaml.safe_load((Path(__file__).resolve().parents[2] / "helm/ferlite/values.yaml").read_text())
    chart = ABPolicy.from_dict(values["classifier"]["abPolicy"])
    gate = ClassifierConfig().min_val_accuracy
    expected = champion_policy({m.architecture: m.val_accuracy for m in find_models(PACK_DIR)
                                if m.val_accuracy is not None and m.val_accuracy >= gate})
    assert chart.settings() == expected.settings()


def test_a_huge_weight_name_is_not_echoed_whole() -> None:
    with pytest.raises(PolicyError) as err:
        ABPolicy.from_dict({"weights": {"m" * 1_000_000: 1}})
    assert "(1000000 characters)" in str(err.value) and len(str(err.value)) < 300
