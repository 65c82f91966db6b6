"""What a sweep runs: profiles (training and evaluation settings), grids (which models on which
tasks), and the configuration of one job with the hash that names it.

A job is one (architecture, task, time steps, fold) trained with one profile's settings and
explained with a list of methods. Its configuration is a flat dict of JSON values; the sha256 of its
canonical JSON (sorted keys, no spaces) is the job's identity: the key of its row in the results
store and the name of its checkpoint. Runtime choices that do not change the result (device,
workers, data directory, progress bars) are not part of it.

Settings added after the first sweeps (``cv``, ``batch_order``, ``dropout_schedule``) enter a job's configuration only when
they differ from their defaults, so the jobs of those sweeps keep their hashes. ``model`` (the
architecture's options: ``lrpnet.models.options``) is in every job of an architecture that has
options, with the profile's values or the architecture's defaults: the options are part of what the
job trains (the ReLU architectures' hashes changed once when the options came, as the plain models
gained the thesis's dropout).
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
# the study's four methods, DTD and LRP both principled and as the thesis's code computed them
# (THESIS.md section 7); "gb" is the thesis text's (the gates' derivatives zeroed)
MAIN_METHODS = ("sa", "gb", "dtd", "lrp-alpha1.5beta0.5", "thesis-dtd", "thesis-lrp-alpha1.5beta0.5")
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
    ``(OFFICIAL,)`` for the official split; ``cv``: how numbered folds are cut, "lrpnet" (48,000 /
    12,000 / 10,000 per fold) or "thesis" (the thesis's code: 60,000 train, the 10,000 test samples
    also the validation set; ``lrpnet.data.tasks``). ``batch_order``: "shuffled" (a new order every
    epoch) or "fixed" (every epoch in the first one's order, as the thesis's code did).
    ``dropout_schedule``: "constant" (the study's) or "curriculum" (``lrpnet.training.dropout_scale``).
    ``arch_epochs``: (architecture, epochs) pairs, for architectures that train longer than
    ``epochs`` (``epochs_for``). ``model``: (option, value) pairs for the architectures (``lrpnet.models.options``: "dropout",
    "relu_bias", "pool"), each given to every architecture that takes it. ``explain_size``: how many
    test samples (the first ones of the test subset) are explained and scored. ``aopc_steps`` / ``flip_steps``: how many patches
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
    cv: str = "lrpnet"
    batch_order: str = "shuffled"
    dropout_schedule: str = "constant"
    model: tuple = ()
    arch_epochs: tuple = ()

    def epochs_for(self, arch: str) -> int:
        """The epochs ``arch`` trains: its entry in ``arch_epochs`` ((arch, epochs) pairs), else ``epochs``."""
        return int(dict(self.arch_epochs).get(arch, self.epochs))

    def override(self, **changes) -> "Profile":
        """A copy with the given settings replaced (None values are ignored: not overridden). New
        ``epochs`` apply to every architecture: they replace ``arch_epochs`` too."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if "epochs" in changes:
            changes.setdefault("arch_epochs", ())
        return dataclasses.replace(self, **changes)


FAST_ARCH_EPOCHS = (("shallow", 24), ("deep", 60), ("deep_v2", 60), ("deep_sd", 60), ("rlstm", 60))

PROFILES = {
    # THESIS section 6: Adam 2e-4, batch 50, 100 epochs, 7-fold cross-validation, all samples
    "thesis": Profile("thesis", epochs=100, lr=2e-4, batch_size=50, folds=tuple(range(7))),
    # THESIS section 7, the protocol the thesis's code ran: StratifiedKFold(7, seed 71) over the 70,000
    # samples, each fold trained on 60,000 with its 10,000 test samples as the validation set; 100
    # epochs of Adam at 2e-4 in batches of 50, every epoch in the same order (override batch_order=
    # "shuffled" for a new order each epoch; model=(("relu_bias", "zero"), ("pool", "avg_x2")) for the
    # code's zero biases and pooling)
    "thesis-protocol": Profile("thesis-protocol", epochs=100, lr=2e-4, batch_size=50, folds=tuple(range(7)),
                               cv="thesis", batch_order="fixed"),
    # a quick look at the whole grid on the official split, every model above the study's accuracy
    # floors: 5x the study's rate, decayed by a cosine to 0, dropout brought in by a curriculum over
    # the first third, 12 epochs, and more for the models whose naive dropout on the recurrent path
    # learns slowly (measured in experiments/README.md, "The fast profile")
    "fast": Profile("fast", epochs=12, lr=1e-3, lr_schedule="cosine", batch_size=50,
                    folds=(OFFICIAL,), explain_size=1000, aopc_steps=20, dropout_schedule="curriculum",
                    arch_epochs=FAST_ARCH_EPOCHS),
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
    chosen = dict(settings.pop("model"))
    settings.pop("arch_epochs")
    for key, default in ADDED_SETTINGS.items():        # absent at their defaults (module docstring)
        if settings[key] == default:
            del settings[key]
    options = {arch: model_options(arch, chosen) for arch in archs}
    configs = []
    for fold in folds:
        for dataset in datasets:
            for T in steps:
                for arch in archs:
                    model = {"model": options[arch]} if options[arch] else {}
                    configs.append({"arch": arch, "dataset": dataset, "T": int(T), "fold": fold,
                                    "methods": list(methods), **settings, "epochs": profile.epochs_for(arch),
                                    **model})
    return configs


ADDED_SETTINGS = {"cv": "lrpnet", "batch_order": "shuffled", "dropout_schedule": "constant"}


def model_options(arch: str, chosen: dict) -> dict:
    """The options architecture ``arch`` is built with: each option it takes (``lrpnet.models.options``),
    from ``chosen`` or its default. A name no architecture takes is an error."""
    from ..models import options
    from ..models.recurrent import OPTIONS
    unknown = sorted(set(chosen) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown model options {unknown}; expected some of {', '.join(OPTIONS)}")
    return {k: chosen.get(k, default) for k, default in options(arch).items()}


def job_hash(config: dict) -> str:
    """The job's identity: the hash of its configuration without the profile's label."""
    return config_hash({k: v for k, v in config.items() if k != "profile"})


# what decides the trained weights: jobs that differ only in how they explain and score share a model
TRAINING_KEYS = ("arch", "dataset", "T", "fold", "epochs", "lr", "lr_schedule", "batch_size", "train_size", "val_size",
                 "seed", "cv", "batch_order", "dropout_schedule", "model")


def model_hash(config: dict) -> str:
    """The hash of the settings that decide the trained model (``TRAINING_KEYS``; those a job
    configuration leaves out at their defaults are left out here too): the name of its checkpoint, so
    adding a method or changing the evaluation reuses the trained model."""
    return config_hash({k: config[k] for k in TRAINING_KEYS if k in config})


__all__ += ["job_hash", "model_hash", "model_options", "TRAINING_KEYS"]
