"""`ferlite serve SERVICE [flags]`: run one of the services in the foreground."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

SERVICES = {
    "facedetect": ("ferlite.services.facedetect.server", "face detection and the per-frame pipeline (:50051)"),
    "classifier": ("ferlite.services.classifier.server", "classification on Triton with A/B routing (:50052)"),
    "aggregator": ("ferlite.services.aggregator.server", "emotion events in Redis, summaries, drift (:50053)"),
    "dashboard": ("ferlite.services.dashboard.server", "the teachers' classroom view over HTTP (:8080)"),
}


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in SERVICES:
        listing = "\n".join(f"  {name:<11} {text}" for name, (_, text) in SERVICES.items())
        print(f"usage: ferlite serve SERVICE [flags]\n\nservices:\n{listing}\n\n"
              "Run `ferlite serve SERVICE --help` for its flags (each also a FERLITE_<SERVICE>_<FLAG> variable).",
              file=sys.stdout if argv and argv[0] in {"-h", "--help"} else sys.stderr)
        if argv and argv[0] not in {"-h", "--help"}:
            print(f"ferlite serve: error: unknown service {argv[0]!r}", file=sys.stderr)
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    module = importlib.import_module(SERVICES[argv[0]][0])
    return int(module.main(argv[1:]))
