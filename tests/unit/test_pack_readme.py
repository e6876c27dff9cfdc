"""The model pack's README is generated: the committed page is what its generator renders from the
pack's metadata and the training record, so a hand edit or a model swapped without it shows here."""

from __future__ import annotations

from pathlib import Path

from ferlite.base.model_metadata import find_models
from ferlite.training.pack import pack_record, render_index

ROOT = Path(__file__).resolve().parents[2]


def test_the_pack_readme_is_what_its_generator_renders() -> None:
    pack = ROOT / "modelpack"
    page = render_index(pack, find_models(pack), pack_record(ROOT / "benchmarks" / "results" / "pack.json"))
    assert (pack / "README.md").read_text() == page, (
        "modelpack/README.md differs from its generator's page: run `python benchmarks/train_pack.py report`")
