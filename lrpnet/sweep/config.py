"""What a sweep runs: profiles (training and evaluation settings), grids (which models on which
tasks), and the configuration of one job with the hash that names it.

A job is one (architecture, task, time steps, fold) trained with one profile's settings and
explained with a list of methods. Its configuration is a flat dict of JSON values; the sha256 of its
canonical JSON (sorted keys, no spaces) is the job's identity: the key of its row in the results
store and the name of its checkpoint. Runtime choices that do not change the result (device,
workers, data directory, progress bars) are not part of it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json

__all__ = [
    "Profile", "PROFILES", "GRIDS", "MAIN_ARCHS", "MAIN_DATASETS", "MAIN_METHODS", "EXP1_ARCHS",
    "EXP1_DATASETS", "EXP1_STEPS", "job_configs", "config_hash", "canonical_json", "OFFICIAL",
]

OFFICIAL = "official"   # the fold value of the official 48k / 12k / 10k split (not cross-validation)

# THESIS section 3: the ten architectures of the main benchmark, in the order of its tables
MAIN_ARCHS = ("shallow", "deep", "deep_v2", "convdeep", "deep_sd", "rlstm", "rlstm_sd",
              "conv+deep", "convrlstm_sd", "conv+rlstm_sd")
MAIN_DATASETS = ("mnist-maj", "fashion-mnist-maj")
MAIN_METHODS = ("sa", "gb", "dtd", "lrp-alpha1.5beta0.5")
MAIN_STEPS = 12             # THESIS section 2: 28x84 images in 12 slices of 7 columns

# THESIS section 3, Experiment 1: Shallow and Deep on sequential MNIST / FashionMNIST, T in {1, 4, 7}
EXP1_ARCHS = ("shallow", "deep")
EXP1_DATASETS = ("mnist", "fashion-mnist")
EXP1_STEPS = (1, 4, 7)

GRIDS = {
    "main": {"archs": MAIN_ARCHS, "datasets": MAIN_DATASETS, "steps": (MAIN_STEPS,)},
    "exp1": {"archs": EXP1_ARCHS, "datasets": EXP1_DATASETS, "steps": EXP1_STEPS},
}


@dataclasses.dataclass(frozen=True)
class Profile:
    """Training and evaluation settings shared by every job of a sweep.

    Sizes of None mean the whole split. ``folds``: cross-validation fold numbers, or
    ``(OFFICIAL,)`` for the official split. ``explain_size``: how many test samples (the first ones
    of the test subset) are explained and scored. ``aopc_steps`` / ``flip_steps``: how many patches
    AOPC and pixel flipping remove (THESIS section 5). ``heatmap_samples``: test samples shown in
    each model's heatmap grid.
    """

    name: str
    epochs: int
    lr: float
    batch_size: int
    folds: tuple
    lr_schedule: str = "constant"
    train_size: int | None = None
    val_size: int | None = None
    test_size: int | None = None
    explain_size: int | None = None
    seed: int = 0
    aopc_steps: int = 100
    flip_steps: int = 16
    heatmap_samples: int = 6

    def override(self, **changes) -> "Profile":
        """A copy with the given settings replaced (None values are ignored: not overridden)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


PROFILES = {
    # THESIS section 6: Adam 2e-4, batch 50, 100 epochs, 7-fold cross-validation, all samples
    "thesis": Profile("thesis", epochs=100, lr=2e-4, batch_size=50, folds=tuple(range(7))),
    # a quick look at the whole grid on the official split: 12 epochs at 5x the study's rate, decayed
    # by a cosine to 0 (Deep reaches the study's 98.2% on MNIST-MAJ; see experiments/README.md)
    "fast": Profile("fast", epochs=12, lr=1e-3, lr_schedule="cosine", batch_size=50,
                    folds=(OFFICIAL,), explain_size=1000, aopc_steps=20),
    # a tiny run that exercises every stage (tests, first contact with a machine)
    "smoke": Profile("smoke", epochs=1, lr=1e-3, batch_size=50, folds=(OFFICIAL,), train_size=600,
                     val_size=200, test_size=200, aopc_steps=5, flip_steps=4),
}


def canonical_json(value) -> str:
    """JSON with sorted keys and no whitespace: equal configurations give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_hash(config: dict) -> str:
    """sha256 (hex) of the canonical JSON of ``config``: the identity of a job."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


def job_configs(profile: Profile, archs, datasets, methods, steps) -> list:
    """The configuration of every job of the grid archs x datasets x steps x profile.folds, in
    that nesting order (so the first jobs cover every architecture once). Each is a flat dict:
    arch, dataset, T, fold, methods (a list) and the profile's settings (its name included, as a
    label of the row; the settings, not the label, make two jobs differ)."""
    settings = dataclasses.asdict(profile)
    folds = settings.pop("folds")
    settings["profile"] = settings.pop("name")
    configs = []
    for fold in folds:
        for dataset in datasets:
            for T in steps:
                for arch in archs:
                    configs.append({"arch": arch, "dataset": dataset, "T": int(T), "fold": fold,
                                    "methods": list(methods), **settings})
    return configs


def job_hash(config: dict) -> str:
    """The job's identity: the hash of its configuration without the profile's label."""
    return config_hash({k: v for k, v in config.items() if k != "profile"})


# what decides the trained weights: jobs that differ only in how they explain and score share a model
TRAINING_KEYS = ("arch", "dataset", "T", "fold", "epochs", "lr", "lr_schedule", "batch_size", "train_size", "val_size", "seed")


def model_hash(config: dict) -> str:
    """The hash of the settings that decide the trained model (``TRAINING_KEYS``): the name of its
    checkpoint, so adding a method or changing the evaluation reuses the trained model."""
    return config_hash({k: config[k] for k in TRAINING_KEYS})


__all__ += ["job_hash", "model_hash", "TRAINING_KEYS"]
