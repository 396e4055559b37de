"""Maps the design's folders onto import names: components/ -> silverset.components, pipelines/ ->
silverset.pipelines."""

from setuptools import find_packages, setup

FOLDERS = {"silverset.components": "components", "silverset.pipelines": "pipelines"}

packages = []
for name, folder in FOLDERS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=FOLDERS)
