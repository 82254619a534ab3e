"""The shared parameters of the network estimators, each declared once.

A :class:`Param` holds what scikit-learn validates (its constraint), what
the docstring says (kind and text) and its default for each estimator. From
this table come:

- every network estimator's ``_parameter_constraints`` (merged with its own
  parameters by :func:`shared_constraints` in ``BaseNetEstimator``);
- the shared part of every network estimator's "Parameters" docstring (the
  ``@shared_parameters@`` line, filled in by :func:`fill_docstring`);
- the table of defaults that changed in skcnn 0.2 (:func:`changed_defaults`;
  skcnn 0.2 warned on the first fit that used one, 0.3 no longer does);
- what a model file may not restore (:func:`places`): a parameter whose
  value names a place on disk, a peer or this machine's resources says so
  in its ``place``; an estimator's own such parameters are in its
  ``_places``.

The ``__init__`` signatures stay explicit (scikit-learn reads them);
``tests/test_params.py`` checks that each default there is the one here.

Adding a shared parameter: a ``Param`` here, the argument in each network
estimator's signature, and the code that uses it (``_engine``).
"""

from __future__ import annotations

import inspect
import os
import textwrap
from dataclasses import dataclass, field
from numbers import Integral

import torch

from ._device import MAX_THREADS, PRECISIONS
from ._validation import Int, Num, Options, StrOptions, SubclassOf
from .augmentation import PRESETS, Augment

__all__ = [
    "LR_SCHEDULES",
    "MONITORS",
    "OPTIMIZERS",
    "PARAMS",
    "PLACES",
    "SKLEARN_PLACES",
    "Param",
    "absent_values",
    "changed_defaults",
    "defaults_for",
    "fill_docstring",
    "init_defaults",
    "names_a_place",
    "places",
    "shared_constraints",
    "shared_names",
    "split_places",
]

# -- vocabularies the constraints name and the engine uses ---------------------
OPTIMIZERS = {
    "adam": (torch.optim.Adam, {}),
    "adamw": (torch.optim.AdamW, {}),
    "sgd": (torch.optim.SGD, {"momentum": 0.9}),
    "rmsprop": (torch.optim.RMSprop, {}),
}
# monitor -> (history key with "{}" for "train"/"valid", lower is better)
MONITORS = {
    "loss": ("{}_loss", True),
    "smoothed_loss": ("{}_loss_smooth", True),
    "accuracy": ("{}_acc_rank", False),
}
LR_SCHEDULES = ("onecycle", "cosine", "plateau")

# What a parameter's value can name besides a setting of the model:
# - "path": a file or folder it reads or writes (every value but None);
# - "source": weights given as a file or a URL (a named weight set such as
#   "DEFAULT" is a setting, not a place);
# - "address": a peer it talks to;
# - "machine": this machine's devices, cores or processes.
# A model file restores none of them: the user sets them again.
PLACES = ("path", "source", "address", "machine")
# scikit-learn's conventions, for any estimator that has them (skcnn's or
# not): ``memory`` is a joblib cache folder (joblib unpickles what it finds
# there), ``n_jobs`` a number of processes.
SKLEARN_PLACES = {"memory": "path", "n_jobs": "machine"}

# The groups of shared parameters: every network estimator has "net";
# classifiers add "classifier", fine-tuning estimators "transfer".
GROUPS = ("net", "classifier", "transfer")


@dataclass(frozen=True)
class Param:
    """One shared parameter: constraint, docstring and defaults."""

    constraint: list
    kind: str
    text: str
    default: object
    group: str = "net"
    # class name -> its default where it differs from ``default``
    defaults: dict = field(default_factory=dict)
    # class name -> its default before skcnn 0.2, where 0.2 changed it
    before_0_2: dict = field(default_factory=dict)
    # the version that added it: a model file written before has none, and
    # was fitted with what ``default`` does (whatever a class's default is now)
    new_in: str | None = None
    # one of PLACES when a value names a place, a peer or machine resources
    place: str | None = None

    def __post_init__(self):
        if self.place not in (None, *PLACES):
            raise ValueError(
                f"place must be one of {PLACES} or None; got {self.place!r}"
            )

    def default_for(self, cls_name):
        return self.defaults.get(cls_name, self.default)


PARAMS = {
    "max_epochs": Param(
        [Int(1)],
        "int",
        "Most epochs to train (early stopping may end sooner).",
        40,
        defaults={
            "CNNClassifier": 30,
            "DenseNetClassifier": 30,
            "PretrainedClassifier": 10,
        },
        before_0_2={"CNNClassifier": 40},
    ),
    "batch_size": Param(
        [StrOptions({"auto"}), Int(1), Options(Integral, {-1})],
        'int or "auto"',
        """"auto" is 64, or ``n_train // 8`` (at least 16) on small training
        sets, so that every epoch has several steps; -1 is the whole
        training set in one batch.""",
        "auto",
    ),
    "lr": Param(
        [Num(0, None, closed="neither")],
        "float",
        """Learning rate (the peak of a "onecycle" schedule; a fine-tuned
        backbone's is ``lr * backbone_lr_scale``).""",
        1e-3,
        defaults={"CNNClassifier": 3e-3, "PretrainedClassifier": 1e-4},
        before_0_2={"CNNClassifier": 1e-3},
    ),
    "optimizer": Param(
        [
            StrOptions(set(OPTIMIZERS)),
            SubclassOf(torch.optim.Optimizer, "torch.optim.Optimizer"),
        ],
        '{"adam", "adamw", "sgd", "rmsprop"} or optimizer class',
        '"sgd" uses momentum 0.9.',
        "adam",
    ),
    "weight_decay": Param(
        [Num(0)], "float", 'L2 penalty (decoupled for "adamw").', 0.0
    ),
    "clip_grad_norm": Param(
        [Num(0, None, closed="neither"), None],
        "float or None",
        """Clip the gradients' global L2 norm to this value before each
        optimizer step (``torch.nn.utils.clip_grad_norm_``; under fp16 mixed
        precision, of the unscaled gradients): a guard against exploding
        gradients at high learning rates or when fine-tuning. None: no
        clipping.""",
        None,
    ),
    "early_stopping": Param(
        ["boolean"],
        "bool",
        """Stop when the ``monitor`` has not improved by more than ``tol`` for
        ``n_iter_no_change`` epochs and restore the weights of its best epoch.
        The validation split is monitored when ``validation_fraction`` > 0,
        the training set otherwise.""",
        True,
        defaults={"CNNClassifier": False},
        before_0_2={"CNNClassifier": True},
    ),
    "validation_fraction": Param(
        [Num(0, 1, closed="left"), None],
        "float or None",
        """Internal validation split (stratified for classifiers), drawn from
        ``random_state``. 0 or None: no split.""",
        0.1,
    ),
    "n_iter_no_change": Param(
        [Int(1), Num(0, 1, closed="neither")],
        "int or float",
        """Epochs without improvement before early stopping ends training; a
        float in (0, 1) is a fraction of ``max_epochs`` (rounded up).""",
        6,
    ),
    "tol": Param(
        [Num(0)],
        "float",
        "Smallest change of the monitored value that counts as an improvement.",
        0.0,
    ),
    "monitor": Param(
        [StrOptions({"auto", *MONITORS})],
        '{"auto", "loss", "smoothed_loss", "accuracy"}',
        """What early stopping watches: the loss, an exponential moving average
        of the loss (weight 0.6 on the past; one noisy epoch of a small or
        augmented validation set neither stops training nor becomes the
        best), or the accuracy (classifiers only; ties, frequent on small
        validation sets, go to the lower loss). "auto" is "smoothed_loss"
        when training is augmented (``augment``, ``mixup``, ``cutmix``),
        else "loss": on digits, 10 splits, augmented fits stopped by the raw
        loss scored 0.9871 (22.5 epochs), by the smoothed loss 0.9913 (31),
        while plain fits scored 0.9920 with the loss after 25.5 epochs
        (``benchmarks/results/bench_recipe_stopping*.md``).""",
        "auto",
    ),
    "augment": Param(
        [None, "boolean", StrOptions(set(PRESETS)), dict, Augment, callable],
        'None, bool, {"geometric", "drawing"}, dict, Augment or callable',
        """Training-batch augmentation on the device: a dict of
        :class:`~skcnn.augmentation.Augment` options, e.g.
        ``{"rotation": 15, "shift": 0.1, "hflip": True}``, or a preset
        (:data:`skcnn.augmentation.PRESETS`): "geometric" (rotation, shift,
        zoom; also ``True``) or "drawing" (those, shear, elastic wobble,
        stroke width, blur and contrast: for images that other people,
        pens or scanners will draw; ``benchmarks/bench_generalisation.py``
        measures it).""",
        None,
    ),
    "image_shape": Param(
        [tuple, list, None],
        "tuple or None",
        """Shape of one image when X is flattened: ``(H, W)`` or ``(H, W, C)``;
        volumes ``(D, H, W, C)`` (or ``(D, H, W)`` with ``channels="none"``).
        Without it, 2-D X is a batch of 1-D signals (1-D convolutions).""",
        None,
    ),
    "channels": Param(
        [StrOptions({"auto", "last", "first", "none"})],
        '{"auto", "last", "first", "none"}',
        """Channel axis of 4-D (images) and 5-D (volumes) input; "auto" takes a
        small last axis (<= 4) as channels-last, else a small axis 1 as
        channels-first; "none": no channel axis, so 4-D input is gray volumes
        ``(n, D, H, W)`` (3-D convolutions).""",
        "auto",
    ),
    "device": Param(
        [str, torch.device],
        "str",
        '"auto" is CUDA when available, else CPU.',
        "auto",
        place="machine",
    ),
    "precision": Param(
        [StrOptions(set(PRECISIONS))],
        '{"auto", "32", "bf16", "fp16"}',
        """Mixed precision; "auto" is bf16 (or fp16 with a grad scaler) on CUDA,
        float32 on CPU.""",
        "auto",
    ),
    "compile": Param(
        ["boolean"], "bool", "Wrap the module with ``torch.compile``.", False
    ),
    "random_state": Param(
        ["random_state"],
        "int, RandomState or None",
        "Seeds weights, the validation split, shuffling, dropout and augmentation.",
        None,
    ),
    "verbose": Param(["verbose"], "int", "Print a per-epoch table when > 0.", 0),
    "warm_start": Param(
        ["boolean"],
        "bool",
        "Continue training the fitted network on the next ``fit``.",
        False,
    ),
    "checkpoint_dir": Param(
        [str, os.PathLike, None],
        "str or None",
        """Save the best weights during training under this folder (one
        sub-folder per fit, so parallel searches do not collide). With
        ``warm_start=True``, a new fit starts from the best checkpoint there
        that was trained on the same data for the same estimator.""",
        None,
        place="path",
    ),
    "num_workers": Param(
        [Int(0)],
        "int",
        "DataLoader workers when X is a list of image files.",
        0,
        place="machine",
    ),
    "num_threads": Param(
        [StrOptions({"auto"}), Int(1, MAX_THREADS), None],
        '"auto", int or None',
        """CPU threads of fit and predict (torch's intra-op threads): "auto"
        takes the process's limit minus the cores other processes keep busy
        (PyTorch threads spin on a busy core: with one of two cores busy, a
        two-thread fit took 3-4x as long as a one-thread fit); an int fixes
        it (results are reproducible for a fixed thread count; above the
        usable cores it is capped, with a warning); None leaves torch's
        setting alone.""",
        "auto",
        place="machine",
    ),
    "callbacks": Param(
        [list, tuple, None],
        "list or None",
        """More skorch callbacks (instances, or ``(name, callback)`` pairs) run
        after skcnn's own: LR schedulers, ``TensorBoard``, MLflow / W&B
        loggers, your own hooks. Searchable like any parameter; not written
        to safe model files.""",
        None,
        place="path",
    ),
    "progress": Param(
        ["boolean"],
        "bool",
        """Show one progress bar per fit (epochs, losses, time left): a tqdm
        bar on a terminal or in a notebook, one line per epoch in a log file.""",
        False,
    ),
    "lr_schedule": Param(
        [StrOptions(set(LR_SCHEDULES)), None],
        '{"onecycle", "cosine", "plateau"} or None',
        """Learning-rate schedule over ``max_epochs`` (skorch's LRScheduler):
        "onecycle" rises from lr/25 to lr over the warm-up (30% of the epochs
        unless ``warmup_epochs``) then anneals; "cosine" warms up linearly for
        ``warmup_epochs`` then anneals to lr/100; "plateau" halves the lr when
        the validation loss stalls for 2 epochs. Warm starts and partial_fit
        continue the schedule, starting a new cycle after ``max_epochs``.""",
        None,
        defaults={"CNNClassifier": "onecycle"},
        before_0_2={"CNNClassifier": None},
    ),
    "warmup_epochs": Param(
        [Int(0)], "int", 'Warm-up epochs of "cosine" and "onecycle".', 0
    ),
    "schedule_epochs": Param(
        [Int(1), None],
        "int or None",
        """Epochs one cycle of "cosine" / "onecycle" spans; None: ``max_epochs``.
        Set it when training comes in pieces (warm starts, partial_fit,
        :class:`~skcnn.model_selection.EpochHalvingSearchCV` sets it to its
        budget) so that the pieces continue one schedule.""",
        None,
    ),
    "mixup": Param(
        [Num(0)],
        "float",
        """Beta(alpha, alpha) parameter of mixup on training batches (0 = off;
        with ``cutmix`` too, each batch uses one of them at random). Works
        with sample and class weights and with every target type.""",
        0.0,
    ),
    "cutmix": Param(
        [Num(0)],
        "float",
        "Beta(alpha, alpha) parameter of CutMix on training batches (0 = off).",
        0.0,
    ),
    "tta": Param(
        [Int(0), list],
        "int or list",
        """Test-time augmentation: ``predict`` / ``predict_proba`` average the
        probabilities (regression: predictions) of the images and ``tta``
        augmented views (with the ``augment`` transforms, or small shifts
        when ``augment`` is None), or of one view per augment spec in a list.""",
        0,
    ),
    # -- classifiers -------------------------------------------------------------
    "class_weight": Param(
        [StrOptions({"balanced"}), dict, None],
        '"balanced", dict or None',
        "Weights of the classes in the loss.",
        None,
        group="classifier",
    ),
    "label_smoothing": Param(
        [Num(0, 1, closed="left")],
        "float in [0, 1)",
        """Label smoothing of the loss (softmax: CrossEntropyLoss's; sigmoid
        outputs: targets pulled towards 0.5).""",
        0.0,
        group="classifier",
        defaults={"CNNClassifier": 0.1},
        before_0_2={"CNNClassifier": 0.0},
    ),
    "temperature": Param(
        [StrOptions({"auto"}), Num(0, None, closed="neither"), None],
        '"auto", float or None',
        """Temperature scaling of the probabilities (Guo et al., ICML 2017):
        ``predict_proba`` divides the network's outputs by ``temperature_``
        before the softmax (sigmoid), which changes how confident the
        probabilities are, never which class wins. "auto": fitted after
        training on the internal validation split (``validation_fraction``),
        minimising its log-loss (within [0.2, 5]); 1 when there is none. A
        float fixes it; None: 1 (off). It calibrates for images like the
        training images: on digits (``benchmarks/bench_temperature.py``, 3
        seeds, medians) it took the CNN's validation ECE from 0.12 to 0.005
        and its ECE on printed digits from 0.24 to 0.12 (while their
        log-loss rose from 0.79 to 0.97), but raised the fine-tuned
        EfficientNet's printed-digits ECE from 0.039 to 0.051; compare the
        ECE columns of ``skcnn compare`` before relying on it.""",
        None,
        group="classifier",
        new_in="0.3",
    ),
    # -- fine-tuning ----------------------------------------------------------------
    "finetune_depth": Param(
        [StrOptions({"all"}), Int(None)],
        'int or "all"',
        """0 trains only the new head; k > 0 trains the last k stages of the
        backbone before the cut (``layer``; a DenseNet's stages are its dense
        blocks, with their transitions and the final norm) with the head,
        every stage when there are fewer (``finetune_depth_`` says how many
        trained); -k trains the first k stages and the layers before them
        (the stem) with the head: surgical fine-tuning (Lee et al., ICLR
        2023), for shifts of the input such as another drawing or imaging
        process; "all" trains everything. Frozen batch-norm layers stay in
        eval mode.""",
        "all",
        group="transfer",
    ),
    "head_epochs": Param(
        [Int(0)],
        "int",
        """Epochs of the head alone on the frozen base before unfreezing down
        to ``finetune_depth``.""",
        0,
        group="transfer",
    ),
    "backbone_lr_scale": Param(
        [Num(0)],
        "float",
        "The backbone's learning rate is ``lr * backbone_lr_scale``.",
        1.0,
        group="transfer",
    ),
    "layer": Param(
        [Int(None, -1), None],
        "int < 0 or None",
        """Cut the backbone after this stage, counted from the end as
        :class:`PretrainedFeatureExtractor`'s ``layer`` counts (-1: the last
        stage; the first stage when there are fewer, ``layer_`` says which);
        the stages after the cut are dropped (not computed, no weights) and
        ``finetune_depth`` counts the stages before it. None keeps the whole
        backbone.""",
        None,
        group="transfer",
        defaults={"PretrainedClassifier": -4},
        new_in="0.3",
    ),
    "pooling": Param(
        [StrOptions({"avg", "max"}), None],
        '"avg", "max" or None',
        """How the feature map at the cut (``layer``) becomes the head's
        input: the mean or maximum over positions, or None: flattened, which
        keeps where each feature is. A whole backbone (``layer=None``) pools
        as it was built to.""",
        "avg",
        group="transfer",
        defaults={"PretrainedClassifier": None},
        new_in="0.3",
    ),
    "bn_statistics": Param(
        [StrOptions({"batch", "frozen"})],
        '"batch" or "frozen"',
        """Batch norm while the backbone trains. "batch": unfrozen layers
        normalise with each batch's statistics and update their running
        ones (PyTorch's training mode); "frozen": every layer keeps its
        pretrained running statistics (its scale and shift still train),
        so the features a probe was fitted on do not shift, and small
        batches do not matter. Frozen layers keep theirs either way.""",
        "batch",
        group="transfer",
        defaults={"PretrainedClassifier": "frozen"},
        new_in="0.3",
    ),
    "head_init": Param(
        [StrOptions({"random", "probe"})],
        '"random" or "probe"',
        """How the new head starts. "probe": fitted, before any backbone
        weight moves, as a linear probe (L2-regularised logistic regression
        on the standardised frozen features of the training split, the
        scaling folded into the head's weights), then fine-tuned from there
        (LP-FT, Kumar et al., ICLR 2022). With ``finetune_depth=0`` the
        head stays the probe only when ``max_epochs=0``. "random": a new
        linear layer (zero bias).""",
        "random",
        group="transfer",
        defaults={"PretrainedClassifier": "probe"},
        new_in="0.3",
    ),
    "wise_alpha": Param(
        [Num(0, 1, closed="both")],
        "float in [0, 1]",
        """WiSE-FT (Wortsman et al., CVPR 2022): after fine-tuning, the weights
        become ``start + wise_alpha * (fine_tuned - start)``, where ``start``
        is the network before its first epoch (the pretrained backbone with
        its new head: the probe with ``head_init="probe"``). 1 keeps the
        fine-tuned weights. Choose it on images of a population you may look
        at, not on the in-distribution validation split (which prefers 1):
        :meth:`with_wise_alpha` makes a fitted copy at another value without
        training again.""",
        1.0,
        group="transfer",
        new_in="0.4",
    ),
}


def _groups(cls):
    """The shared-parameter groups of an estimator class (``_shared_group``
    along its MRO)."""
    found = {g for k in cls.__mro__ for g in k.__dict__.get("_shared_group", ())}
    return [g for g in GROUPS if g in found]


def shared_names(cls):
    """The shared parameters an estimator class has, in registry order."""
    groups = _groups(cls)
    return [name for name, p in PARAMS.items() if p.group in groups]


def shared_constraints(cls):
    """``_parameter_constraints`` entries of the shared parameters of ``cls``."""
    return {name: PARAMS[name].constraint for name in shared_names(cls)}


def defaults_for(cls):
    """{name: default} of the shared parameters of ``cls``."""
    return {name: PARAMS[name].default_for(cls.__name__) for name in shared_names(cls)}


def absent_values(cls):
    """{name: value} that rebuild a model file lacking the parameters added
    since it was written (its fit did what the base ``default`` does)."""
    return {
        name: PARAMS[name].default
        for name in shared_names(cls)
        if PARAMS[name].new_in is not None
    }


def init_defaults(cls):
    """{name: default} of the arguments of ``cls.__init__``."""
    return {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def places(cls):
    """{name: kind} of the parameters of the estimator class ``cls`` (any
    library's) that name a place, a peer or machine resources
    (:data:`PLACES`): scikit-learn's conventions (:data:`SKLEARN_PLACES`),
    the shared parameters' ``place`` and the class's own ``_places`` (along
    its MRO)."""
    names = init_defaults(cls)
    found = {k: kind for k, kind in SKLEARN_PLACES.items() if k in names}
    found.update(
        (name, PARAMS[name].place) for name in shared_names(cls) if PARAMS[name].place
    )
    for klass in reversed(cls.__mro__):
        found.update(klass.__dict__.get("_places", {}))
    return found


def split_places(cls, params):
    """``(kept, dropped, news)`` of ``params`` of the estimator class ``cls``:
    the parameters a file may hold, those that name a place, a peer or
    machine resources (:func:`places`, :func:`names_a_place`), and of these
    the values worth a word: not the default, and not the device (which
    ``skcnn.load`` takes as its own argument)."""
    kinds, defaults = places(cls), init_defaults(cls)
    kept, dropped, news = {}, {}, {}
    for name, value in params.items():
        if name in kinds and names_a_place(kinds[name], value):
            dropped[name] = value
            if value != defaults.get(name) and name != "device":
                news[name] = value
        else:
            kept[name] = value
    return kept, dropped, news


def names_a_place(kind, value):
    """Whether ``value`` of a parameter of this ``kind`` names a place (None
    never does; a "source" only when it is a file or a URL)."""
    if value is None:
        return False
    if kind == "source":
        from .pretrained import is_weight_location

        return is_weight_location(value)
    return True


def changed_defaults(cls_name):
    """{name: (default before 0.2, default since)} of the class's changed defaults."""
    return {
        name: (p.before_0_2[cls_name], p.default_for(cls_name))
        for name, p in PARAMS.items()
        if cls_name in p.before_0_2
    }


def _literal(value):
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


_MARKER = "@shared_parameters@"


def fill_docstring(cls):
    """``cls.__doc__`` with its ``@shared_parameters@`` line replaced by the
    numpydoc entries of the shared parameters of ``cls``."""
    doc = cls.__dict__.get("__doc__")
    if not doc or _MARKER not in doc:
        return doc
    line = next(x for x in doc.splitlines() if _MARKER in x)
    indent = line[: len(line) - len(line.lstrip())]
    entries = []
    for name in shared_names(cls):
        p = PARAMS[name]
        entries.append(
            f"{indent}{name} : {p.kind}, default={_literal(p.default_for(cls.__name__))}"
        )
        text = textwrap.fill(
            " ".join(textwrap.dedent(p.text).split()),
            width=76 - len(indent),
            break_on_hyphens=False,
        )
        entries += [f"{indent}    {x}" for x in text.splitlines()]
    return doc.replace(line, "\n".join(entries))
