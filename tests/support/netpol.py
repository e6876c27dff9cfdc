"""A NetworkPolicy evaluator for rendered manifests: a double of a CNI's policy engine (no cluster
runs here), following the Kubernetes semantics (networking.k8s.io/v1):

- a pod selected by any policy with Ingress in its policyTypes is isolated for ingress, and then
  admits a connection only if some ingress rule of some such policy matches its source and port
  (Egress likewise, for the source pod);
- a peer is a podSelector (in the policy's namespace unless a namespaceSelector says otherwise), a
  namespaceSelector, both (pods matching in matching namespaces), or an ipBlock (cidr minus except),
  which matches only endpoints outside the cluster's pods;
- a rule without `from`/`to` matches every peer; without `ports`, every port; a named port is
  resolved against the destination pod's container ports; protocol defaults to TCP.

What only a real cluster shows is not modelled: SNAT by kube-proxy is (a connection through a
Service with `externalTrafficPolicy: Cluster` arrives from a node's address), but not the CNI's own
quirks (hostNetwork pods, policies on node-local DNS in some CNIs).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Endpoint:
    """A pod (labels, namespace, container ports) or an address outside the pods (ip)."""

    name: str
    namespace: str = ""
    labels: dict = field(default_factory=dict)
    ports: dict = field(default_factory=dict)  # named container port -> number
    ip: str = ""  # set for an endpoint that is not a pod (a camera, a node-local DNS address)

    @property
    def is_pod(self) -> bool:
        return not self.ip


def _matches(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector (matchLabels and matchExpressions); {} matches everything."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


class Cluster:
    def __init__(self, docs: list[dict], namespace: str = "ferlite",
                 namespaces: dict[str, dict] | None = None) -> None:
        self.namespace = namespace
        self.policies = [d for d in docs if d and d.get("kind") == "NetworkPolicy"]
        # namespace name -> labels (kubernetes.io/metadata.name is set by the API server on every one)
        self.namespaces = {n: {"kubernetes.io/metadata.name": n, **labels}
                           for n, labels in {namespace: {}, **(namespaces or {})}.items()}

    def _peer_matches(self, peer: dict, policy_ns: str, other: Endpoint) -> bool:
        if "ipBlock" in peer:
            if other.is_pod:
                return False  # the pods' own addresses are not meant to be matched by ipBlock
            block = peer["ipBlock"]
            ip = ipaddress.ip_address(other.ip)
            if ip not in ipaddress.ip_network(block["cidr"]):
                return False
            return not any(ip in ipaddress.ip_network(e) for e in block.get("except") or [])
        if not other.is_pod:
            return False
        if "namespaceSelector" in peer:
            if not _matches(peer["namespaceSelector"], self.namespaces.get(other.namespace, {})):
                return False
        elif other.namespace != policy_ns:
            return False
        if "podSelector" in peer:
            return _matches(peer["podSelector"], other.labels)
        return True

    @staticmethod
    def _port_matches(rule_ports: list | None, port: int, protocol: str, dst: Endpoint) -> bool:
        if not rule_ports:
            return True
        for p in rule_ports:
            if p.get("protocol", "TCP") != protocol:
                continue
            value = p.get("port")
            if value is None:
                return True
            number = dst.ports.get(value) if isinstance(value, str) else int(value)
            end = p.get("endPort", number)
            if number is not None and number <= port <= end:
                return True
        return False

    def _allowed(self, direction: str, subject: Endpoint, peer: Endpoint, port: int, protocol: str,
                 dst: Endpoint) -> bool:
        kind, key = ("Ingress", "ingress") if direction == "in" else ("Egress", "egress")
        selecting = [p for p in self.policies
                     if p["metadata"].get("namespace", self.namespace) == subject.namespace
                     and _matches(p["spec"].get("podSelector", {}), subject.labels)
                     and kind in p["spec"].get("policyTypes", ["Ingress"])]
        if not selecting:
            return True  # not isolated in this direction
        side = "from" if direction == "in" else "to"
        for policy in selecting:
            ns = policy["metadata"].get("namespace", self.namespace)
            for rule in policy["spec"].get(key) or []:
                peers = rule.get(side)
                if peers is not None and not any(self._peer_matches(p, ns, peer) for p in peers):
                    continue
                if self._port_matches(rule.get("ports"), port, protocol, dst):
                    return True
        return False

    def allows(self, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> bool:
        """Whether a connection from `src` to `dst`:`port` is admitted by egress at the source (when it
        is a pod) and ingress at the destination (when it is a pod)."""
        if src.is_pod and not self._allowed("out", src, dst, port, protocol, dst):
            return False
        return not dst.is_pod or self._allowed("in", dst, src, port, protocol, dst)


def pod_of(docs: list[dict], name: str, namespace: str = "ferlite") -> Endpoint:
    """The pod a rendered workload (Deployment, StatefulSet, CronJob) or Pod makes."""
    doc = next(d for d in docs if d and d["metadata"]["name"] == name and d["kind"] in
               ("Deployment", "StatefulSet", "CronJob", "Pod", "Job"))
    if doc["kind"] == "Pod":
        spec, labels = doc["spec"], doc["metadata"].get("labels", {})
    elif doc["kind"] == "CronJob":
        template = doc["spec"]["jobTemplate"]["spec"]["template"]
        spec, labels = template["spec"], template["metadata"].get("labels", {})
    else:
        template = doc["spec"]["template"]
        spec, labels = template["spec"], template["metadata"].get("labels", {})
    ports = {p["name"]: p["containerPort"] for c in spec["containers"] for p in c.get("ports", []) if "name" in p}
    return Endpoint(name, namespace, labels, ports)
