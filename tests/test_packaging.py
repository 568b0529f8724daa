"""Install lines and the distribution name: nothing may fetch another project."""

from __future__ import annotations

import configparser
import re
from importlib.metadata import version

import featurize
from tests.conftest import ROOT

INSTALL = re.compile(r"pip install\s+([^\n`\"]*)")
REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _install_lines():
    files = [ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "Makefile"]
    for folder in ("featurize", "pipelines", "tests", "benchmarks"):
        files += sorted((ROOT / folder).rglob("*.py"))
    for path in files:
        for match in INSTALL.finditer(path.read_text()):
            yield path, match.group(1)


def test_no_install_line_names_the_unrelated_featurize_project():
    lines = list(_install_lines())
    assert lines  # the scan finds the install lines that exist
    for path, line in lines:
        for word in line.replace("'", " ").split():
            name = REQUIREMENT_NAME.match(word)
            if word.startswith(("-", ".")) or name is None:
                continue  # options, and the checkout itself ('.[ray]')
            assert name.group().lower() != "featurize", (path.name, line)


def test_the_distribution_is_keras_featurize():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert config["metadata"]["name"] == featurize.DISTRIBUTION == "keras-featurize"
    assert version(featurize.DISTRIBUTION) == featurize.__version__
