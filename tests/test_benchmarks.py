"""The throughput benchmark script: it runs on the public API and its table adds up."""

from __future__ import annotations

import pytest

from benchmarks.throughput import run_benchmark

from .conftest import DATA


@pytest.mark.usefixtures("scratch_registry")  # (d) registers a do-nothing backbone
def test_each_rate_is_the_best_of_its_rounds():
    lines = []
    run_benchmark(
        DATA, count=12, backbones=["mobilenet_v3_small"], batch_size=4, repeats=2,
        rss=False, out=lines.append,
    )  # fmt: skip
    out = "\n".join(lines)
    assert "device CPU" in out
    for column in ("(a) tutorial", "(b) model", "(c) featurize", "(d) decode", "c/b"):
        assert column in out
    assert "best of 2 rounds" in out
    rounds = next(line for line in lines if "rounds:" in line)
    per_round = {
        part.split()[0]: [float(v) for v in part.split()[1].split("/")]
        for part in rounds.split("rounds:")[1].split(",")
    }
    assert sorted(per_round) == ["a", "b", "c", "d"]
    assert all(len(values) == 2 for values in per_round.values())
    row = next(line for line in lines if line.startswith("| mobilenet"))
    values = [float(v) for v in row.strip("| ").split("|")[1:]]
    assert len(values) == 6
    a, b, c, d, c_over_a, c_over_b = values
    # Each printed rate is the best of its rounds (to the printed precision).
    for key, value in zip("abcd", (a, b, c, d)):
        assert value == pytest.approx(max(per_round[key]), abs=0.6)
    # The ratios are of the unrounded rates: the printed ones (to 0.1) bound them.
    for ratio, base in ((c_over_a, a), (c_over_b, b)):
        slack = 0.006 + (c / base) * (0.05 / base + 0.05 / c)
        assert ratio == pytest.approx(c / base, abs=slack)


def test_benchmarks_use_only_the_public_api():
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "benchmarks"
    for script in folder.glob("*.py"):
        assert "featurize._" not in script.read_text(), script.name
        assert "pipelines._" not in script.read_text(), script.name
