"""`ferlite ab`: show and set the classifier's A/B weights in a Kubernetes cluster.

The Helm chart renders the policy into a ConfigMap (`<release>-ab-policy`, key `policy.json`)
mounted into every classifier pod, which hot-reloads it; this command reads and patches that
ConfigMap with the official `kubernetes` client, so every replica converges on the new policy
without a restart. Weights are validated before anything is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ferlite.base.architectures import ARCHITECTURES
from ferlite.base.cli import HelpFormatter
from ferlite.services.classifier.policy import ABPolicy, PolicyError

KEY = "policy.json"


class AbError(RuntimeError):
    pass


def core_api(kubeconfig: str | None, context: str | None):
    from kubernetes import client, config

    try:
        config.load_kube_config(config_file=kubeconfig, context=context)
    except (config.ConfigException, OSError, TypeError) as exc:
        if kubeconfig:
            raise AbError(f"cannot use kubeconfig {kubeconfig}: {exc}") from exc
        try:
            config.load_incluster_config()
        except config.ConfigException:
            raise AbError("no Kubernetes cluster configured: pass --kubeconfig, set KUBECONFIG, or run in a pod") \
                from exc
    return client.CoreV1Api()


def _call(fn, what: str, namespace: str, name: str):
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return fn()
    except ApiException as exc:
        if exc.status == 404:
            raise AbError(f"ConfigMap {namespace}/{name} not found: is the chart installed in {namespace!r}? "
                          "(--namespace, --configmap)") from None
        raise AbError(f"{what} {namespace}/{name} failed: HTTP {exc.status} {exc.reason}") from None
    except HTTPError as exc:
        raise AbError(f"cannot reach the Kubernetes API: {exc}") from None


def read_policy(api, namespace: str, name: str) -> ABPolicy:
    cm = _call(lambda: api.read_namespaced_config_map(name, namespace, _request_timeout=10), "reading", namespace,
               name)
    text = (cm.data or {}).get(KEY)
    if text is None:
        raise AbError(f"ConfigMap {namespace}/{name} has no {KEY!r} key")
    try:
        return ABPolicy.from_dict(json.loads(text))
    except (ValueError, PolicyError) as exc:
        raise AbError(f"ConfigMap {namespace}/{name} holds an invalid policy: {exc}") from None


def write_policy(api, namespace: str, name: str, policy: ABPolicy) -> None:
    body = {"data": {KEY: json.dumps(policy.settings(), sort_keys=True)}}
    _call(lambda: api.patch_namespaced_config_map(name, namespace, body, _request_timeout=10), "patching",
          namespace, name)


def parse_weights(items: Sequence[str]) -> dict[str, float]:
    weights: dict[str, float] = {}
    for item in items:
        arch, sep, value = item.partition("=")
        if not sep:
            raise PolicyError(f"{item!r}: write ARCHITECTURE=WEIGHT, e.g. mobilenet_v2=3")
        try:
            weights[arch] = float(value)
        except ValueError:
            raise PolicyError(f"{item!r}: {value!r} is not a number") from None
    return weights


def show(policy: ABPolicy) -> None:
    total = sum(policy.weights.values())
    for arch in ARCHITECTURES:
        w = policy.weights.get(arch, 0.0)
        print(f"  {arch:<20} weight {w:g}  ({w / total:.0%} of traffic)")
    print(f"  sticky {policy.sticky}, shadow fraction {policy.shadow_fraction:g}, revision {policy.revision}")


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="ferlite ab", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--namespace", "-n", default="default", help="namespace of the ferlite release")
    p.add_argument("--configmap", default="ferlite-ab-policy", help="the chart's <release>-ab-policy ConfigMap")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--context", default=None, help="kubeconfig context (default: the current one)")
    sub = p.add_subparsers(dest="action", required=True, help="show the live policy, or set new weights")
    sub.add_parser("show", help="print the live policy")
    s = sub.add_parser("set", help="replace the weights (and optionally stickiness and shadow share)")
    s.add_argument("weights", nargs="+", metavar="ARCH=WEIGHT")
    s.add_argument("--merge", action="store_true", help="change only the given architectures' weights")
    s.add_argument("--sticky", action=argparse.BooleanOptionalAction, default=None)
    s.add_argument("--shadow", type=float, default=None, help="share of requests also scored by all arms, 0..1")
    args = p.parse_args(argv)
    try:
        api = core_api(args.kubeconfig, args.context)
        current = read_policy(api, args.namespace, args.configmap)
        if args.action == "show":
            print(f"A/B policy in {args.namespace}/{args.configmap}:")
            show(current)
            return 0
        weights = parse_weights(args.weights)
        if args.merge:
            weights = {**current.weights, **weights}
        policy = ABPolicy(weights, current.sticky if args.sticky is None else args.sticky,
                          current.shadow_fraction if args.shadow is None else args.shadow).validate().with_revision()
        write_policy(api, args.namespace, args.configmap, policy)
        print(f"updated {args.namespace}/{args.configmap}; classifiers reload it within a minute or so:")
        show(policy)
        return 0
    except (AbError, PolicyError) as exc:
        print(f"ferlite ab: error: {exc}", file=sys.stderr)
        return 2
