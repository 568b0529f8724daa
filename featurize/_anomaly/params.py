"""AnomalyDetector's parameter rules (the command line builds its options from them)."""

from __future__ import annotations

from featurize._anomaly.patches import PATCH_FEATURIZER_RULES
from featurize._images.params import InputSize
from featurize._shared.rules import Integer, Number, Options

METHODS = ("patch", "global")
# Measured on two sets (BENCHMARKS.md, "Anomalies from normal images only"): 320
# pixels resolve small defects that 224 misses, at 2x the pixels of 224.
DEFAULT_INPUT_SIZE = 320
# PatchCore keeps 1-10% of the patches; 5% measured better than 1% on both sets.
DEFAULT_CORESET = 0.05
# The bank decides the scoring speed (every patch is compared with every bank row):
# 16 MB is 26,000 patches of Lite0's 152 features.
DEFAULT_BANK_BYTES = 16_000_000

ANOMALY_DETECTOR_RULES = {
    "backbone": PATCH_FEATURIZER_RULES["backbone"],
    "weights": PATCH_FEATURIZER_RULES["weights"],
    "method": Options(
        METHODS,
        help="'patch': nearest normal patch per location (finds small defects, "
        "gives maps); 'global': nearest normal image embedding (cheap)",
    ),
    "layers": PATCH_FEATURIZER_RULES["layers"],
    "input_size": InputSize(help="N or HxW pixels"),
    "resize": PATCH_FEATURIZER_RULES["resize"],
    "coreset_ratio": Number(
        0.0, 1.0, include_maximum=True, help="share of training patches kept"
    ),
    "max_bank_bytes": Integer(
        1, allow_none=True, help="cap on the memory bank (float32 bytes)"
    ),
    "false_alarm_rate": Number(
        0.0, 1.0, help="share of normal images the threshold lets be called anomalies"
    ),
    "holdout": Number(
        0.0, 1.0, help="share of training images held out to set the threshold"
    ),
    "random_state": Integer(0, allow_none=True, help="seed of the split and coreset"),
    **{
        name: PATCH_FEATURIZER_RULES[name]
        for name in (
            "runtime",
            "batch_size",
            "decode_workers",
            "max_pixels",
            "cache",
            "on_error",
            "verbose",
        )
    },
}
