"""Maps tasks/ and kernels/ to jaxbench.tasks and jaxbench.kernels (pyproject.toml has the rest)."""

from setuptools import find_packages, setup

_ROOTS = {"jaxbench": "jaxbench", "jaxbench.tasks": "tasks", "jaxbench.kernels": "kernels"}

setup(
    packages=[
        name
        for package, folder in _ROOTS.items()
        for name in [package, *(f"{package}.{sub}" for sub in find_packages(folder))]
        if not (package == "jaxbench" and name.startswith(("jaxbench.tasks", "jaxbench.kernels")))
    ],
    package_dir=_ROOTS,
)
