"""What every figure shares: the pre-registered settings, data, nets, W, progress, JSON.

Pre-registered settings (fixed before any result was seen; full mode):

- Fashion-MNIST: the paper's backdoor net :class:`~wobbledetect.lab.nets.FashionCNN`,
  Adam lr 1e-3, batch 128, 4 epochs on all 60,000 training images; target class 0;
  T1 and T2 poison 15%, T3 250 images. The sigma grid shared by every figure is
  (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0); every figure reports its numbers for all of it.
- CIFAR-10 (``dataset="cifar10"``): torchvision's ResNet18 adapted to 32x32, the same
  training for 3 epochs (the paper under-fits it to about 60% clean accuracy), sigma
  grid (0.01, 0.025, 0.05, 0.1, 0.15) -- colour images need smaller noise.
- Sets of 25 test images (the paper's batch); triggered sets only use test images whose
  true class is not the target. n = 250 noisy copies. Noise ``random_state=0``.

Quick mode (CI) shrinks everything but the code path: a fixed 12,000-image training
subset, 2 epochs, sigmas (0.1, 0.3), n = 100 and fewer nets and repetitions (each
figure's docstring says which). Quick nets have their own cache keys.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..._levene import DIRECTIONS
from ..cache import ModelCache, atomic_write, config_key
from ..parallel import check_scheduler, experiment_from_spec, experiment_spec, run_tasks
from ..zoo import NetConfig, get_net, load_lab_data

__all__ = [
    "Setup", "SETUPS", "Experiment", "NetRecord", "read_record", "measure_nets", "sigma_key", "auc_or_nan",
    "untestable_counts",
    "within_net_summary", "draw_indices", "draw_triplets",
    "zoo_configs",
    "reference_scores", "jsonable", "DIRECTIONS",
    "SET_SIZE", "TARGET", "NOISE_SEED", "DISPLAY_NAMES",
]

#: Test images per set (the paper's batch size).
SET_SIZE = 25
#: The attacker's class for T1 and T3.
TARGET = 0
#: Seed of the Gaussian noise of W in every experiment.
NOISE_SEED = 0


@dataclass(frozen=True)
class Setup:
    """Per-dataset settings: full-mode defaults, and what quick mode shrinks them to."""

    dataset: str
    net: str
    small_net: str
    sigmas: tuple
    fig2_sigmas: tuple
    fig2_sigma_for_n: float
    epochs: int
    lr: float = 1e-3
    batch_size: int = 128
    n_samples: int = 250
    quick_sigmas: tuple = (0.1, 0.3)
    quick_fig2_sigmas: tuple = (0.05, 0.3, 1.0)
    quick_epochs: int = 2
    quick_n_train: int = 12000
    quick_n_samples: int = 100


SETUPS = {
    "fashion-mnist": Setup(
        dataset="fashion-mnist",
        net="fashion-cnn",
        small_net="small-fashion-cnn",
        sigmas=(0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0),
        fig2_sigmas=(0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0),
        fig2_sigma_for_n=0.3,
        epochs=4,
    ),
    "cifar10": Setup(
        dataset="cifar10",
        net="resnet18",
        small_net="resnet18",
        sigmas=(0.01, 0.025, 0.05, 0.1, 0.15),
        fig2_sigmas=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15),
        fig2_sigma_for_n=0.05,
        epochs=3,
        quick_sigmas=(0.025, 0.1),
        quick_fig2_sigmas=(0.01, 0.05, 0.15),
        quick_epochs=1,
        quick_n_train=5000,
    ),
    # The embedded digits with the demo's training (screen-zoo only: the Fig. 3 patches of
    # 5x5 do not fit an 8x8 image). No quick subset: all 1,078 training images, 10 epochs.
    "digits": Setup(
        dataset="digits",
        net="digits-cnn",
        small_net="digits-cnn",
        sigmas=(0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0),
        fig2_sigmas=(0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0),
        fig2_sigma_for_n=0.3,
        epochs=30,
        lr=2e-3,
        batch_size=64,
        quick_epochs=10,
        quick_n_train=1078,
    ),
}

#: Rough speeds on the 2-core CPU development machine, for the size estimate printed at
#: the start of a run: (training images per second, forwards per second).
CPU_RATES = {"fashion-cnn": (1500, 13000), "small-fashion-cnn": (1700, 40000), "resnet18": (25, 150),
             "digits-cnn": (20000, 100000)}


def sigma_key(sigma):
    """The JSON key of a sigma: ``"0.05"``, ``"1.0"``.

    Examples
    --------
    >>> from wobbledetect.lab.reproduce._common import sigma_key
    >>> sigma_key(1), sigma_key(0.05)
    ('1.0', '0.05')
    """
    return repr(float(sigma))


class Experiment:
    """One run of one figure: settings by mode, data, nets, W with progress, the JSON.

    Parameters
    ----------
    name : str
        The figure (``"fig6"``); names the PNG and JSON.
    out_dir : str or os.PathLike
    quick : bool
    data_dir, cache_dir : str or os.PathLike, optional
    dataset : {"fashion-mnist", "cifar10"}
    log : callable
        Receives every progress line.
    download : bool
        Let torchvision download missing data into the cache directory.
    epochs : int, optional
        Training epochs of every net; default: the setup's (quick: its quick epochs).
    """

    def __init__(self, name, out_dir, *, quick, data_dir, cache_dir, dataset, log, download=False,
                 epochs=None):
        if dataset not in SETUPS:
            raise ValueError(f"The 'dataset' parameter must be one of {sorted(SETUPS)}; got {dataset!r}.")
        self.name = name
        self.quick = bool(quick)
        self.setup = SETUPS[dataset]
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.cache_dir = cache_dir
        self.download = download
        if epochs is not None and (isinstance(epochs, bool) or int(epochs) != epochs or epochs < 1):
            raise ValueError(f"The 'epochs' parameter must be a positive integer; got {epochs!r}.")
        self.epochs = int(epochs) if epochs is not None else (
            self.setup.quick_epochs if self.quick else self.setup.epochs)
        self.cache = ModelCache(cache_dir)
        self.log = log
        self.started = time.perf_counter()
        self.nets = {}
        self._data = None
        self._forwards_total = 0
        self._forwards_done = 0
        self._w_seconds = 0.0

    # -- settings -------------------------------------------------------------------

    @property
    def mode(self):
        return "quick" if self.quick else "full"

    @property
    def sigmas(self):
        return self.setup.quick_sigmas if self.quick else self.setup.sigmas

    @property
    def n_samples(self):
        return self.setup.quick_n_samples if self.quick else self.setup.n_samples

    def net_config(self, threat, trigger, seed, *, net=None):
        """The :class:`NetConfig` of this mode: full training, or the quick subset."""
        return NetConfig(
            dataset=self.setup.dataset,
            net=net or self.setup.net,
            threat=threat,
            trigger=trigger,
            target=TARGET,
            seed=seed,
            epochs=self.epochs,
            lr=self.setup.lr,
            batch_size=self.setup.batch_size,
            n_train=self.setup.quick_n_train if self.quick else None,
        )

    # -- data and nets ----------------------------------------------------------------

    @property
    def data(self):
        if self._data is None:
            started = time.perf_counter()
            self._data = load_lab_data(
                self.setup.dataset, data_dir=self.data_dir, cache_dir=self.cache_dir,
                download=self.download,
            )
            self.log(f"[{self.name}] {self.setup.dataset}: {len(self._data.X_train)} training and "
                     f"{len(self._data.X_test)} test images ({time.perf_counter() - started:.1f} s)")
        return self._data

    def plan(self, configs, n_forwards):
        """Log the run's size: nets to train (how many cached) and forwards for W."""
        configs = list(dict.fromkeys(configs))
        cached = sum(config.key_dict() in self.cache for config in configs)
        self._forwards_total = int(n_forwards)
        train_seconds = sum(
            (config.n_train or _TRAIN_SIZES.get(config.dataset, 60000)) * config.epochs
            / CPU_RATES.get(config.net, (1500, 13000))[0]
            for config in configs if config.key_dict() not in self.cache
        )
        forward_rate = CPU_RATES.get(configs[0].net, (1500, 13000))[1]
        self.log(
            f"[{self.name}] {self.mode} mode on {self.setup.dataset}: {len(configs)} net(s), "
            f"{cached} in the cache, {len(configs) - cached} to train "
            f"(~{_minutes(train_seconds)} on 2 CPU cores); "
            f"{_count(n_forwards)} forwards for W (~{_minutes(n_forwards / forward_rate)} on 2 CPU "
            "cores; a GPU is much faster)"
        )

    def net(self, config, *, snapshots=(), name=None):
        """The trained net of ``config`` (cached or trained now), ready to run; recorded for the JSON.

        ``snapshots``: epoch counts whose nets a training run of ``config`` caches on the
        way (see :func:`~wobbledetect.lab.zoo.get_net`). ``name``: the net's key in the
        JSON's ``"nets"`` (default its label, which does not say the epochs).

        On a CPU it is the net exported to ONNX, run by onnxruntime -- the path the
        library's ``inference="auto"`` picks there, exported once here instead of at every
        ``fit`` -- and on a GPU the torch module itself. Either works with
        :class:`~wobbledetect.WobblinessTransformer` and :func:`~wobbledetect.lab.predict`.
        """
        import torch

        from ... import to_onnx

        module, metadata, hit = get_net(config, self.data, self.cache, log=self.log,
                                        snapshots=snapshots)
        self.nets[name or config.label] = {
            "clean_accuracy": metadata["clean_accuracy"],
            "backdoor_accuracy": metadata.get("backdoor_accuracy"),
            "threat": config.threat,
            "trigger": config.trigger,
            "seed": config.seed,
            "net": config.net,
            "epochs": config.epochs,
            "n_train": metadata.get("n_train"),
            "train_seconds": metadata.get("train_seconds"),
            "train_accuracy": (metadata.get("train_accuracy") or [None])[-1],
            "from_cache": hit,
            "snapshot_of": metadata.get("snapshot_of"),
            "key": metadata.get("key"),
        }
        return module if torch.cuda.is_available() else to_onnx(module, self.data.input_shape)

    # -- W -----------------------------------------------------------------------------

    def wobbliness(self, model, *, n_samples=None):
        """A :class:`~wobbledetect.WobblinessTransformer` fitted on ``model`` (from :meth:`net`).

        Change ``sigma`` with ``set_params`` between calls: only ``fit`` builds the fast
        inference path, and it does not depend on sigma.
        """
        from ... import WobblinessTransformer

        wob = WobblinessTransformer(
            model, sigma=self.sigmas[0], n_samples=n_samples or self.n_samples,
            input_shape=self.data.input_shape, random_state=NOISE_SEED,
        )
        return wob.fit(self.data.X_test[:2])

    def W(self, wob, sigma, sets, what):
        """W of every input of ``sets`` at ``sigma``, shape ``(n_sets, set_size)``; logs progress."""
        return self._measure(wob.transform, wob, sigma, sets, what)

    def vote_counts(self, wob, sigma, sets, what):
        """Vote counts of every input of ``sets`` at ``sigma``; logs progress."""
        return self._measure(wob.vote_counts, wob, sigma, sets, what)

    def _measure(self, method, wob, sigma, sets, what):
        wob.set_params(sigma=float(sigma))
        step_started = time.perf_counter()
        result = method(sets)
        seconds = time.perf_counter() - step_started
        forwards = int(np.prod(sets.shape[:2])) * int(wob.n_samples)
        self._forwards_done += forwards
        self._w_seconds += seconds
        self.log(self._progress_line(what, sigma, forwards, seconds))
        return result

    def _progress_line(self, what, sigma, forwards, seconds):
        done, total = self._forwards_done, max(self._forwards_total, self._forwards_done)
        left = self._w_seconds / done * (total - done) if done else float("nan")
        return (
            f"[{self.name}] {what}, sigma={sigma:g}: {_count(forwards)} forwards in {seconds:.1f} s"
            f" | {_count(done)}/{_count(total)} ({100 * done / total:.0f}%), "
            f"~{_minutes(left)} of W left"
        )

    # -- output ------------------------------------------------------------------------

    def finish(self, results, figures):
        """Add the common fields, write ``<name>.json``, log and return the results."""
        results = {
            "figure": self.name,
            "mode": self.mode,
            "dataset": self.setup.dataset,
            "epochs": self.epochs,
            **results,
            "nets": self.nets,
            "seconds": round(time.perf_counter() - self.started, 1),
            "files": [Path(path).name for path in [*figures, f"{self.name}.json"]],
        }
        path = self.out_dir / f"{self.name}.json"
        path.write_text(json.dumps(jsonable(results), indent=2, allow_nan=False))
        self.log(f"[{self.name}] wrote {', '.join(results['files'])} to {self.out_dir} "
                 f"in {results['seconds']:.0f} s")
        return results


def record_path(out_dir, label):
    """Where a figure run in ``out_dir`` keeps net ``label``'s :class:`NetRecord`."""
    return Path(out_dir) / "nets" / f"{label.replace('/', '_')}.npz"


def read_record(path):
    """``(arrays, meta)`` of the :class:`NetRecord` file at ``path``, whatever its signature."""
    with np.load(path) as stored:
        meta = json.loads(str(stored["meta"]))
        arrays = {name: stored[name] for name in stored.files if name != "meta"}
    return arrays, meta


class NetRecord:
    """One net's measurements in ``out_dir/nets/<label>.npz``, reused by a later identical run.

    The file holds NumPy arrays and a JSON ``meta`` with the *signature* -- the net's cache
    key and everything else that decides the measurements -- and the net's entry of the
    figure's ``"nets"``. A file whose signature differs is measured again and replaced.
    What lets a long run continue in another sitting, and Dask tasks hand back their nets.

    Parameters
    ----------
    exp : Experiment
    config : NetConfig
    signature : dict
        JSON-able; the cache key is added.
    """

    def __init__(self, exp, config, signature):
        self.exp, self.config = exp, config
        self.path = record_path(exp.out_dir, config.label)
        self.signature = {**signature, "key": config_key(config.key_dict())}

    def load(self):
        """``(arrays, meta)`` when the file matches the signature (and the net's entry is
        restored into ``exp.nets``), else None."""
        if not self.path.is_file():
            return None
        arrays, meta = read_record(self.path)
        if meta["signature"] != jsonable(self.signature):
            self.exp.log(f"[{self.exp.name}] {self.path} was measured with other parameters; "
                         "measuring again")
            return None
        self.exp.nets[self.config.label] = meta["net"] | {"from_cache": True}
        return arrays, meta

    def save(self, arrays, **meta):
        """Write ``arrays`` and ``meta`` (with the signature and the net's entry), atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"signature": self.signature, **meta, "net": self.exp.nets[self.config.label]}
        def write(tmp):
            with open(tmp, "wb") as handle:  # a file object: numpy adds no ".npz" to its name
                np.savez_compressed(handle, meta=json.dumps(jsonable(meta)), **arrays)

        atomic_write(self.path, write)


def measure_nets(exp, configs, signature, measure_net, measure, *, scheduler=None):
    """Every net's :class:`NetRecord`, read back where one matches, else measured now.

    What lets a figure of many nets (``fig6``, ``set-size-zoo``, ``detectors``, ``attacks``,
    ``fig7``, ``nc-candidates``) continue a long run in another sitting and hand its nets
    to Dask: each net's record is read once; a net without a
    matching one is measured by ``measure_net(exp, config, measure)``, which must save
    its record -- here, one after the other, or with ``scheduler`` each as a Dask task
    (the Experiment rebuilt in the worker from
    :func:`~wobbledetect.lab.parallel.experiment_spec`). The records of the measured nets
    are then read back, so a serial, a resumed and a Dask run give the same numbers.

    Parameters
    ----------
    exp : Experiment
    configs : iterable of NetConfig
        Repeats are measured once.
    signature : dict
        Everything besides the net's cache key that decides the measurements.
    measure_net : callable
        ``measure_net(exp, config, measure)``; a module-level function (Dask pickles it).
    measure : tuple
        What ``measure_net`` needs besides the net; picklable.
    scheduler : str or int, optional
        See :mod:`wobbledetect.lab.parallel`.

    Returns
    -------
    dict
        ``{label: (arrays, meta)}`` in the order of ``configs``; ``exp.nets`` holds every
        net's entry.
    """
    scheduler = check_scheduler(scheduler)
    configs = list(dict.fromkeys(configs))
    records = {}
    for config in configs:
        record = NetRecord(exp, config, signature)
        records[config.label] = record.load()
        if records[config.label] is not None:
            exp.log(f"[{exp.name}] {config.label}: measured before, read from {record.path}")
    missing = [config for config in configs if records[config.label] is None]
    if scheduler is not None and missing:
        run_tasks(scheduler, _measure_task, [(experiment_spec(exp), measure_net, config, measure)
                                             for config in missing], log=exp.log, what="net")
    for i, config in enumerate(missing, 1):
        if scheduler is None:
            exp.log(f"[{exp.name}] net {i}/{len(missing)} to measure: {config.label}")
            measure_net(exp, config, measure)
        records[config.label] = NetRecord(exp, config, signature).load()
        if records[config.label] is None:
            raise RuntimeError(f"{config.label}: measured, but its record in {exp.out_dir / 'nets'} "
                               "could not be read back.")
    return records


def _measure_task(spec, measure_net, config, measure):
    """``measure_net`` in a Dask worker, the Experiment rebuilt from the client's spec."""
    measure_net(experiment_from_spec(spec), config, measure)
    return config.label


def finished_run(out_dir, figure, rescoring, epochs):
    """``(out_dir, source, results)``: the JSON of a finished ``figure`` run that the
    figure ``rescoring`` re-scores (no training; ``epochs`` must be None)."""
    name = figure.replace("-", "_")
    if epochs is not None:
        raise ValueError(f"{rescoring} re-scores a finished {figure} run; its nets' epochs are "
                         f"those in its {name}.json. Leave out --epochs.")
    out_dir = Path(out_dir)
    source = out_dir / f"{name}.json"
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist; run `wobbledetect reproduce {figure} "
                                f"--out {out_dir}` first.")
    return out_dir, source, json.loads(source.read_text())


def jsonable(value):
    """``value`` with NumPy types as Python ones and NaN/inf as None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def within_net_summary(per_net):
    """Median, minimum and maximum of per-net AUCs (a dict by net, or a list), and the AUCs.

    NaN AUCs (a net with one class of labels) are left out; NaN where none is left.
    """
    values = np.array(list(per_net.values() if isinstance(per_net, dict) else per_net), dtype=float)
    values = values[~np.isnan(values)]
    if not len(values):
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "per_net": per_net}
    return {"median": float(np.median(values)), "min": float(values.min()),
            "max": float(values.max()), "per_net": per_net}


def draw_indices(rng, pool, size):
    """``size`` distinct entries of the index array ``pool``."""
    return pool[rng.choice(len(pool), size=size, replace=False)]


def reference_scores(W, direction):
    """Levene scores of each repetition's candidate sets against that repetition's reference.

    Parameters
    ----------
    W : ndarray of shape (n_repetitions, n_sets, set_size)
        Per repetition, the clean reference first, then the candidates.
    direction : {"smoother", "wobblier", "two-sided"}

    Returns
    -------
    ndarray of shape (n_repetitions * (n_sets - 1),)
        :meth:`~wobbledetect.LeveneBackdoorDetector.decision_function`, repetition by
        repetition.
    """
    from ... import LeveneBackdoorDetector

    return np.concatenate([
        LeveneBackdoorDetector(direction=direction).fit(W_rep[:1]).decision_function(W_rep[1:])
        for W_rep in W
    ])


#: The backdoored nets' triggers per trigger set (Fig. 3's numbers 1, 3, 4; three of the
#: separated set's four, ``lr-plus`` never trained).
TRAINED_TRIGGERS = {"fig3": ("square", "checker2", "checker"),
                    "separated": ("ul-square", "ur-checker", "ll-cross")}


def zoo_defaults(quick, threats=None, triggers=None, seeds=None):
    """``(threats, triggers, seeds)``: those given, else the first Fig. 6 design's zoo --
    T3 and T1, Fig. 3's trained triggers, seeds 0-2 (quick: T1, ``square``, seed 0)."""
    return (tuple(threats or (("T1",) if quick else ("T3", "T1"))),
            tuple(triggers or (("square",) if quick else TRAINED_TRIGGERS["fig3"])),
            tuple(seeds if seeds is not None else ((0,) if quick else (0, 1, 2))))


def zoo_configs(exp, threats, triggers, seeds):
    """Fig. 6's zoo: per threat model the clean nets, then each trigger's nets, by seed.

    Returns
    -------
    nets : dict of str to list of NetConfig
        Per threat model, its nets in that order (the clean ones are shared).
    distinct : list of NetConfig
        Every net once, in order of first appearance.
    """
    nets = {threat: [exp.net_config(None, None, seed) for seed in seeds]
            + [exp.net_config(threat, trigger, seed) for trigger in triggers for seed in seeds]
            for threat in threats}
    return nets, list(dict.fromkeys(config for configs in nets.values() for config in configs))


def draw_triplets(data, trigger, repetitions, size, rng):
    """Per repetition a clean reference, a clean candidate and a triggered candidate.

    Each set holds ``size`` test images; the triggered one only images of classes other
    than the target.

    Returns
    -------
    sets : ndarray of shape (3 * repetitions, size, *input_shape)
        Reference, clean, triggered; reference, clean, triggered; ...
    true_class : ndarray of shape (repetitions, size)
        The true classes of the triggered sets' images.
    """
    from ..triggers import get_trigger

    every = np.arange(len(data.y_test))
    others = np.flatnonzero(data.y_test != TARGET)
    sets, true_class = [], []
    for _ in range(repetitions):
        sets.append(data.X_test[draw_indices(rng, every, size)])
        sets.append(data.X_test[draw_indices(rng, every, size)])
        base = draw_indices(rng, others, size)
        sets.append(get_trigger(trigger)(data.X_test[base]))
        true_class.append(data.y_test[base])
    return np.stack(sets), np.stack(true_class)


_TRAIN_SIZES = {"fashion-mnist": 60000, "cifar10": 50000, "digits": 1078}


def _count(n):
    n = float(n)
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def _minutes(seconds):
    if not math.isfinite(seconds):
        return "?"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


#: How datasets and nets are named in figure titles.
DISPLAY_NAMES = {
    "digits": "digits",
    "digits-cnn": "DigitsCNN",
    "fashion-mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "fashion-cnn": "FashionCNN",
    "small-fashion-cnn": "SmallFashionCNN",
    "resnet18": "ResNet18",
}


def auc_or_nan(y_true, score):
    """ROC AUC, or NaN when ``y_true`` holds only one class."""
    from sklearn.metrics import roc_auc_score

    y_true = np.asarray(y_true)
    if len(np.unique(y_true)) < 2:
        return float("nan")
    return float(roc_auc_score(y_true, score))


def untestable_counts(counts):
    """``"3 at sigma 0.05, 1 at sigma 0.1"``: the sigmas of ``counts`` (key -> sets) with any.

    The phrase of the log lines that count the sets the Levene test could not judge.
    """
    return ", ".join(f"{n} at sigma {key}" for key, n in counts.items() if n)
