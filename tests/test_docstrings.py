"""The examples in public docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

from .conftest import ROOT

MODULES = [
    "featurize._backbones.applications",
    "featurize._backbones.registry",
    "featurize._export.export",
    "featurize._shared.cache",
    "featurize._shared.results",
    "featurize._images.featurizer",
    "pipelines._audit.audit",
    "pipelines._classifiers",
    "pipelines._data",
    "pipelines._selection",
]


@pytest.mark.usefixtures("scratch_registry")
@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch):
    monkeypatch.chdir(ROOT)  # examples use data/
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module) if t.examples]
    assert tests, f"{name} has no examples"
    for test in tests:
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} failing examples in {name}"
