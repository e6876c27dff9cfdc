"""Package mapping only; all metadata lives in pyproject.toml.

The design's folders `services/` and `training/` install as `ferlite.services` and
`ferlite.training`, so a generic top-level name like `services` never collides with another
distribution in site-packages. setuptools cannot express "find the subpackages of a remapped
folder" declaratively, hence these few lines.
"""

from setuptools import find_packages, setup

MAPPED = {"ferlite.services": "services", "ferlite.training": "training"}


def _mapped_packages(prefix: str, folder: str) -> list[str]:
    return [prefix] + [f"{prefix}.{name}" for name in find_packages(folder)]


packages = find_packages(include=["ferlite", "ferlite.*"])
for prefix, folder in MAPPED.items():
    packages += _mapped_packages(prefix, folder)

setup(packages=packages, package_dir={"ferlite": "ferlite", **MAPPED})
