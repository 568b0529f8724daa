"""The README's code runs, and its backbone table is the registry."""

from __future__ import annotations

import re

import pytest

from featurize import list_backbones

from .conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_readme_python_blocks_run(monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
    assert len(blocks) >= 2
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert "['bees']" in out or "['ants']" in out
    assert "(2, 672) float32" in out
    assert "(2, 672) 1 [ True False]" in out  # embed(): coffee came from the cache
    assert "ImageReadError" in out


def test_readme_commands_are_the_makefile_targets():
    makefile = (ROOT / "Makefile").read_text()
    assert "make demo" in README
    assert "make test" in README
    assert re.search(r"^demo:", makefile, flags=re.M)
    assert re.search(r"^test:", makefile, flags=re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_backbone_table_matches_the_registry():
    rows = re.findall(
        r"^\| `(\w+)` \| (\d+)x(\d+) \| ([^|]+) \| (\d+) \|", README, re.M
    )
    table = list_backbones()
    expected = [
        (r.name, str(r.input_size[0]), str(r.input_size[1]), r.preprocessing,
         str(r.features_avg))
        for r in table.itertuples()
    ]  # fmt: skip
    assert [(n, h, w, p.strip(), f) for n, h, w, p, f in rows] == expected


@pytest.mark.parametrize("name", ["resnet50", "efficientnet_lite0", "convnext_tiny"])
def test_readme_lists_stages(name):
    stages = list_backbones().set_index("name").loc[name, "stages"]
    line = next(
        line for line in README.splitlines() if line.startswith(f"| `{name}` |")
    )
    assert all(f"`{stage}`" in line for stage in stages)
