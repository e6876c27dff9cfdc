#!/usr/bin/env python3
"""Write docs/configuration.md's environment-variable tables from the services' config dataclasses.

The tables sit between `<!-- env:begin -->` and `<!-- env:end -->`; `--check` (run by the tests)
fails when they are stale, so the reference cannot drift from the code.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BEGIN, END = "<!-- env:begin -->", "<!-- env:end -->"


def tables() -> str:
    from ferlite.services.aggregator.config import AggregatorConfig
    from ferlite.services.classifier.config import ClassifierConfig
    from ferlite.services.common.config import ServerConfig
    from ferlite.services.dashboard.config import DashboardConfig
    from ferlite.services.facedetect.config import FaceDetectConfig

    shared = {f.name for f in dataclasses.fields(ServerConfig)}
    out = ["Every service reads these shared settings (`<SERVICE>` is `FACEDETECT`, `CLASSIFIER` or "
           "`AGGREGATOR`; each is also a `--flag`):", "",
           "| variable | default | meaning |", "|---|---|---|"]
    for f in dataclasses.fields(ServerConfig):
        out.append(f"| `FERLITE_<SERVICE>_{f.name.upper()}` | `{f.default!r}` | {f.metadata.get('help', '')} |")
    for cls in (FaceDetectConfig, ClassifierConfig, AggregatorConfig):
        out += ["", f"`ferlite serve {cls.SERVICE}`:", "", "| variable | default | meaning |", "|---|---|---|"]
        for f in dataclasses.fields(cls):
            if f.name in shared and f.name not in ("port", "metrics_port"):
                continue
            out.append(f"| `{cls.env_name(f.name)}` | `{f.default!r}` | {f.metadata.get('help', '')} |")
    # The dashboard is HTTP, not a gRPC service: none of the shared settings above, all of its own.
    out += ["", f"`ferlite serve {DashboardConfig.SERVICE}` (HTTP; its own settings only):", "",
            "| variable | default | meaning |", "|---|---|---|"]
    for f in dataclasses.fields(DashboardConfig):
        out.append(f"| `{DashboardConfig.env_name(f.name)}` | `{f.default!r}` | {f.metadata.get('help', '')} |")
    return "\n".join(out)


def render(readme: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"docs/configuration.md lacks the {BEGIN} ... {END} markers")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{tables()}\n{END}{tail}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    path = ROOT / "docs" / "configuration.md"
    current = path.read_text()
    fresh = render(current)
    if args.check:
        if fresh != current:
            print("gen_env_docs: docs/configuration.md's environment tables are stale; "
                  "run: python scripts/gen_env_docs.py",
                  file=sys.stderr)
            return 1
        print("gen_env_docs: docs/configuration.md is up to date")
        return 0
    path.write_text(fresh)
    print("gen_env_docs: docs/configuration.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
