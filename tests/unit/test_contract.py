"""The gRPC contract: generated code is fresh, the methods exist, no pixels reach the aggregator."""

from __future__ import annotations

import subprocess
import sys

from google.protobuf.descriptor import FieldDescriptor

from ferlite.base.labels import EMOTIONS
from ferlite.v1 import aggregator_pb2, classifier_pb2, facedetect_pb2
from tests.support.procs import ROOT


def test_generated_code_matches_protos() -> None:
    result = subprocess.run([sys.executable, "scripts/gen_protos.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _methods(module, service: str) -> dict[str, tuple[bool, bool]]:
    desc = module.DESCRIPTOR.services_by_name[service]
    return {m.name: (m.client_streaming, m.server_streaming) for m in desc.methods}


def test_services_expose_the_designed_methods() -> None:
    assert _methods(facedetect_pb2, "FaceDetection") == {
        "Detect": (False, False), "Process": (False, False), "ProcessStream": (True, True)}
    assert _methods(classifier_pb2, "Classifier") == {"Classify": (False, False)}
    assert _methods(classifier_pb2, "ABAdmin") == {
        "GetPolicy": (False, False), "SetPolicy": (False, False)}
    assert _methods(aggregator_pb2, "Aggregator") == {
        "RecordEvents": (False, False), "GetSummary": (False, False),
        "StreamEvents": (False, True), "SubmitFeedback": (False, False), "EraseClassroom": (False, False)}


def _bytes_fields(message, seen=None) -> list[str]:
    seen = set() if seen is None else seen
    if message.full_name in seen:
        return []
    seen.add(message.full_name)
    found = []
    for f in message.fields:
        if f.type == FieldDescriptor.TYPE_BYTES:
            found.append(f"{message.full_name}.{f.name}")
        elif f.type == FieldDescriptor.TYPE_MESSAGE:
            found += _bytes_fields(f.message_type, seen)
    return found


def test_aggregator_messages_carry_no_pixels() -> None:
    service = aggregator_pb2.DESCRIPTOR.services_by_name["Aggregator"]
    for method in service.methods:
        for message in (method.input_type, method.output_type):
            assert _bytes_fields(message) == [], f"{method.name} can carry bytes"


def test_crops_and_frames_do_carry_bytes() -> None:
    # The opposite check keeps the privacy test honest: it does find bytes where they belong.
    assert _bytes_fields(facedetect_pb2.DetectRequest.DESCRIPTOR)
    assert _bytes_fields(classifier_pb2.ClassifyRequest.DESCRIPTOR)


def test_canonical_label_order_is_the_documented_one() -> None:
    assert EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    comment = (ROOT / "protos/ferlite/v1/common.proto").read_text()
    assert "[" + ", ".join(EMOTIONS) + "]" in comment


def test_readme_environment_tables_match_the_config_classes() -> None:
    result = subprocess.run([sys.executable, "scripts/gen_env_docs.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_readme_is_short_and_its_links_resolve() -> None:
    """Issue 26: the README is what it is, the two commands, the data path, the layout and links
    (at most 250 lines); the reference lives in docs/, and every relative link points at a file."""
    import re

    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    links = re.findall(r"\]\(([^)#]+)\)", text)
    assert links and all((ROOT / link).exists() for link in links if "://" not in link), links
    for top in ("protos", "services", "training", "deploy", "helm", "tests", "pyproject.toml", "README.md"):
        assert (ROOT / top).exists(), top  # the design card's top level
