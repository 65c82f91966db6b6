"""The thesis code's protocol (THESIS.md section 7): its cross-validation (StratifiedKFold(7, seed 71)
over train, validation and test stacked; 60,000 train and the 10,000 test samples as validation per
fold), the same batch order every epoch, and the sweep profile that runs them."""
import numpy as np
import pytest

from lrpnet import data
from lrpnet.data import sources
from lrpnet.data.splits import THESIS_SEED, stratified_folds, thesis_folds
from lrpnet.models import build
from lrpnet.sweep import config as cfg
from lrpnet.training import ArrayDataset, fit


# -- the folds ---------------------------------------------------------------------------------------
def test_thesis_folds_partition_and_stratify():
    """70,000 labels with the first 60,000 the official train set: 7 disjoint folds of 10,000 that
    cover every sample, each holding 1/7 of every class (to one sample)."""
    labels = np.random.default_rng(0).integers(0, 10, 70_000)
    folds = thesis_folds(labels, n_train=60_000)
    assert THESIS_SEED == 71 and len(folds) == 7
    assert [len(f) for f in folds] == [10_000] * 7
    assert all(np.array_equal(f, np.sort(f)) for f in folds)
    np.testing.assert_array_equal(np.sort(np.concatenate(folds)), np.arange(70_000))
    counts = np.bincount(labels, minlength=10)
    for f in folds:
        assert np.abs(np.bincount(labels[f], minlength=10) - counts / 7).max() <= 1
    again = thesis_folds(labels, n_train=60_000)
    assert all(np.array_equal(a, b) for a, b in zip(folds, again))


def test_thesis_folds_cut_the_stacked_order():
    """The folds are cut from train, validation and test stacked in the code's order (the unstratified
    80/20 split of the official train set first), not from the source order: they differ from the
    same StratifiedKFold on the source order, and from another seed's."""
    labels = np.random.default_rng(1).integers(0, 10, 7_000)
    stacked = thesis_folds(labels, n_train=6_000)
    plain = stratified_folds(labels, 7, seed=THESIS_SEED)
    assert not all(np.array_equal(a, b) for a, b in zip(stacked, plain))
    other = thesis_folds(labels, n_train=6_000, seed=72)
    assert not all(np.array_equal(a, b) for a, b in zip(stacked, other))
    with pytest.raises(ValueError, match="n_train"):
        thesis_folds(labels, n_train=0)


# -- training in a fixed order -----------------------------------------------------------------------
class Recording(ArrayDataset):
    """Records the order in which ``fit`` visits the samples (pixel [0, 0] of sample i is i / n)."""

    def __init__(self, n=12):
        images = np.random.default_rng(0).uniform(-1, 1, (n, 6, 8))
        images[:, 0, 0] = np.arange(n) / n
        super().__init__(images, np.arange(n) % 3)
        self.n, self.seen = n, []

    def batches(self, *args, **kwargs):
        for images, labels in super().batches(*args, **kwargs):
            self.seen.extend(int(round(v * self.n)) for v in images[:, 0, 0])
            yield images, labels


@pytest.mark.parametrize("order", ["fixed", "shuffled"])
def test_fit_batch_order(order, on_the_host):
    """"fixed": every epoch visits the training set in epoch 0's (shuffled) order; "shuffled": a new
    order each epoch. (On the host: a GPU model batches a device copy of the set, in the same order,
    without calling the set's ``batches``.)"""
    model = build("shallow", input_shape=(6, 8), T=4, n_classes=3, hidden=4, state=4)
    train = Recording()
    fit(model, train, epochs=3, batch_size=4, progress=False, batch_order=order)
    epochs = [train.seen[i * 12:(i + 1) * 12] for i in range(3)]
    assert sorted(epochs[0]) == list(range(12)) and epochs[0] != list(range(12))
    assert (epochs[0] == epochs[1] == epochs[2]) == (order == "fixed")
    with pytest.raises(ValueError, match="batch_order"):
        fit(model, train, epochs=1, progress=False, batch_order="sorted")


# -- the profile and its jobs ------------------------------------------------------------------------
def test_thesis_protocol_profile():
    p = cfg.PROFILES["thesis-protocol"]
    assert (p.epochs, p.lr, p.batch_size, p.lr_schedule) == (100, 2e-4, 50, "constant")
    assert p.folds == tuple(range(7)) and p.cv == "thesis" and p.batch_order == "fixed"
    assert p.train_size is None and p.val_size is None and p.test_size is None   # all 70,000 samples
    job = cfg.job_configs(p, ["deep"], ["mnist-maj"], ["dtd"], [12])[0]
    assert (job["cv"], job["batch_order"]) == ("thesis", "fixed")
    assert job["model"] == {"dropout": "thesis", "relu_bias": "softplus"}
    shuffled = cfg.job_configs(p.override(batch_order="shuffled"), ["deep"], ["mnist-maj"], ["dtd"], [12])[0]
    assert cfg.model_hash(shuffled) != cfg.model_hash(job)


# the keys of every job before cv, batch_order and the model options existed
EARLIER_KEYS = {"arch", "dataset", "T", "fold", "methods", "profile", "epochs", "lr", "lr_schedule", "batch_size",
                "train_size", "val_size", "test_size", "explain_size", "seed", "aopc_steps", "flip_steps",
                "heatmap_samples"}


def test_job_configs_name_the_model_options():
    """Settings at their defaults stay out of a job (earlier jobs keep their hashes: LSTM's, without
    options, has exactly the earlier keys); an architecture with options names all of them, and
    each option decides the trained model."""
    smoke = cfg.PROFILES["smoke"]
    lstm, deep, conv = cfg.job_configs(smoke, ["lstm", "deep", "convdeep"], ["mnist-maj"], ["sa"], [12])
    assert set(lstm) == EARLIER_KEYS
    assert set(deep) == EARLIER_KEYS | {"model"} and set(conv) == EARLIER_KEYS | {"model"}
    assert conv["model"] == {"dropout": "thesis", "relu_bias": "softplus", "pool": "sum"}
    code = smoke.override(model=(("relu_bias", "zero"), ("pool", "avg_x2")))
    lstm2, deep2, conv2 = cfg.job_configs(code, ["lstm", "deep", "convdeep"], ["mnist-maj"], ["sa"], [12])
    assert lstm2 == lstm                                          # takes neither option
    assert deep2["model"] == {"dropout": "thesis", "relu_bias": "zero"}
    assert conv2["model"] == {"dropout": "thesis", "relu_bias": "zero", "pool": "avg_x2"}
    assert cfg.model_hash(conv2) != cfg.model_hash(conv) and cfg.model_hash(deep2) != cfg.model_hash(deep)
    assert cfg.model_hash({**deep, "methods": ["dtd"]}) == cfg.model_hash(deep)
    with pytest.raises(ValueError, match="unknown model options"):
        cfg.job_configs(smoke.override(model=(("relu_bais", "zero"),)), ["deep"], ["mnist-maj"], ["sa"], [12])


# -- on the real files -------------------------------------------------------------------------------
def _have_mnist():
    return all((data.data_dir() / "mnist" / f).is_file() for f in sources.FILES.values())


@pytest.mark.realdata
@pytest.mark.skipif(not _have_mnist(), reason="MNIST files not under LRPNET_DATA")
def test_thesis_cv_on_mnist():
    """Fold 0 of the code's scheme: 60,000 train and the 10,000 test samples, also the validation
    set, sample for sample (the same composed MAJ samples too); other folds than lrpnet's."""
    train, val, test = (data.load_task("mnist", s, fold=0, cv="thesis") for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (60_000, 10_000, 10_000)
    np.testing.assert_array_equal(val.sources, test.sources)
    assert not set(train.sources[:, 0]) & set(test.sources[:, 0])
    assert len(set(train.sources[:, 0]) | set(test.sources[:, 0])) == 70_000
    mine = data.load_task("mnist", "test", fold=0)
    assert not np.array_equal(mine.sources, test.sources)
    maj_val, maj_test = (data.load_task("mnist-maj", s, fold=3, cv="thesis") for s in ("val", "test"))
    np.testing.assert_array_equal(maj_val.sources, maj_test.sources)
    np.testing.assert_array_equal(maj_val.masks, maj_test.masks)
    with pytest.raises(ValueError, match="cross-validation scheme"):
        data.load_task("mnist", "test", fold=0, cv="sklearn")
    from lrpnet.sweep.jobs import load_split
    job = cfg.job_configs(cfg.PROFILES["thesis-protocol"].override(test_size=50, val_size=50),
                          ["deep"], ["mnist"], ["sa"], [4])[0]
    j_train, j_val, j_test = load_split(job)
    assert len(j_train) == 60_000 and set(j_test.sources[:, 0]) <= set(test.sources[:, 0])
