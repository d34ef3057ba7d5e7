"""Package layout: adapters/, tasks/ and pretrain/ are top-level folders that install as
sub-packages of sc_eval (PyPI has unrelated top-level `adapters` and `tasks` distributions)."""
from setuptools import find_packages, setup

ROOTS = {
    "sc_eval": "sc_eval",
    "sc_eval.adapters": "adapters",
    "sc_eval.tasks": "tasks",
    "sc_eval.pretrain": "pretrain",
}

packages, package_dir = [], {}
for name, folder in ROOTS.items():
    package_dir[name] = folder
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=package_dir)
