"""CNNClassifier and CNNRegressor: conv nets as scikit-learn estimators."""

from __future__ import annotations

import warnings

from torch import nn

from ._base import (
    NET_PARAMETER_CONSTRAINTS,
    BaseNetEstimator,
    NetClassifierMixin,
    NetRegressorMixin,
)
from ._validation import Int, Num, Sizes, StrOptions, SubclassOf
from .models.convnet import ACTIVATIONS, ConvNet

__all__ = ["CNNClassifier", "CNNRegressor"]

_PARAMS_TEMPLATE = """
    Parameters
    ----------
    conv_filters : tuple of int, default=(32, 64)
        Filters of each conv block (conv, batch norm, activation, max-pool).
    kernel_size : int or tuple, default=3
        Kernel size, one for all blocks or one per block.
    pool_size : int or tuple, default=2
        Max-pool size after each block (1 or None: no pooling); a map
        already smaller than the pool is not pooled.
    padding : {"same", "valid"}, default="same"
    dense_units : tuple of int, default=(128,)
        Hidden dense layers between the conv blocks and the output layer.
    dropout : float, default=0.25
        Dropout rate after each hidden dense layer.
    batch_norm : bool, default=True
        Batch normalisation after each convolution.
    activation : str, default="relu"
        "relu", "elu", "leaky_relu", "gelu", "selu", "silu", "tanh" or "sigmoid".
    global_pool : {None, "avg", "max"}, default=None
        None flattens the last feature map (as Keras ``Flatten``).
    max_epochs : int, default=@MAX_EPOCHS@
        Most epochs to train (early stopping may end sooner).
    batch_size : int or "auto", default="auto"
        "auto" is 64, or ``n_train // 8`` (at least 16) on small training sets,
        so that every epoch has several steps.
    lr : float, default=@LR@
        Learning rate (the peak of a "onecycle" schedule).
    optimizer : {"adam", "adamw", "sgd", "rmsprop"} or optimizer class, default="adam"
        "sgd" uses momentum 0.9.
    weight_decay : float, default=0.0
        L2 penalty (decoupled for "adamw").
    early_stopping : bool, default=@EARLY_STOPPING@
        Stop when the ``monitor`` has not improved by more than ``tol`` for
        ``n_iter_no_change`` epochs and restore the weights of its best epoch.
        The validation split is monitored when ``validation_fraction`` > 0,
        the training set otherwise.
    validation_fraction : float or None, default=0.1
        Internal validation split (stratified for classifiers), drawn from
        ``random_state``. 0 or None: no split.
    n_iter_no_change : int or float, default=6
        Epochs without improvement before early stopping ends training; a
        float in (0, 1) is a fraction of ``max_epochs`` (rounded up).
    tol : float, default=0.0
        Smallest change of the monitored value that counts as an improvement.
    monitor : {"auto", "loss", "smoothed_loss", "accuracy"}, default="auto"
        What early stopping watches: the loss, an exponential moving average
        of the loss (weight 0.6 on the past; one noisy epoch of a small or
        augmented validation set neither stops training nor becomes the
        best), or the accuracy (classifiers only; ties, frequent on small
        validation sets, go to the lower loss). "auto" is "smoothed_loss"
        when training is augmented (``augment``, ``mixup``, ``cutmix``),
        else "loss": on digits, 10 splits, augmented fits stopped by the raw
        loss scored 0.9871 (22.5 epochs), by the smoothed loss 0.9913 (31),
        while plain fits scored 0.9920 with the loss after 25.5 epochs
        (``benchmarks/results/bench_recipe_stopping*.md``).
    augment : None, bool, dict, Augment or callable, default=None
        Training-batch augmentation on the device, e.g.
        ``{"rotation": 15, "shift": 0.1, "hflip": True}``.
    image_shape : tuple or None, default=None
        Shape of one image when X is flattened: ``(H, W)`` or ``(H, W, C)``.
        Without it, 2-D X is a batch of 1-D signals (1-D convolutions).
    channels : {"auto", "last", "first"}, default="auto"
        Channel axis of 4-D input; "auto" takes a small last axis (<= 4) as
        channels-last, else a small axis 1 as channels-first.
    device : str, default="auto"
        "auto" is CUDA when available, else CPU.
    precision : {"auto", "32", "bf16", "fp16"}, default="auto"
        Mixed precision; "auto" is bf16 (or fp16 with a grad scaler) on CUDA,
        float32 on CPU.
    compile : bool, default=False
        Wrap the module with ``torch.compile``.
    random_state : int, RandomState or None, default=None
        Seeds weights, the validation split, shuffling, dropout and augmentation.
    verbose : int, default=0
        Print a per-epoch table when > 0.
    warm_start : bool, default=False
        Continue training the fitted network on the next ``fit``.
    checkpoint_dir : str or None, default=None
        Save the best weights during training under this folder (one
        sub-folder per fit, so parallel searches do not collide). With
        ``warm_start=True``, a new fit starts from the newest checkpoint there.
    num_workers : int, default=0
        DataLoader workers when X is a list of image files.
    num_threads : "auto", int or None, default="auto"
        CPU threads of fit and predict (torch's intra-op threads): "auto"
        takes the process's limit minus the cores other processes keep busy
        (PyTorch threads spin on a busy core: with one of two cores busy, a
        two-thread fit took 3-4x as long as a one-thread fit); an int fixes
        it (results are reproducible for a fixed thread count); None leaves
        torch's setting alone.
    callbacks : list or None, default=None
        More skorch callbacks (instances, or ``(name, callback)`` pairs) run
        after skcnn's own: LR schedulers, ``TensorBoard``, MLflow / W&B
        loggers, your own hooks. Searchable like any parameter; not written
        to safe model files.
    progress : bool, default=False
        Show one progress bar per fit (epochs, losses, time left): a tqdm
        bar on a terminal or in a notebook, one line per epoch in a log file.
    lr_schedule : {"onecycle", "cosine", "plateau"} or None, default=@LR_SCHEDULE@
        Learning-rate schedule over ``max_epochs`` (skorch's LRScheduler):
        "onecycle" rises from lr/25 to lr over the warm-up (30% of the epochs
        unless ``warmup_epochs``) then anneals; "cosine" warms up linearly for
        ``warmup_epochs`` then anneals to lr/100; "plateau" halves the lr when
        the validation loss stalls for 2 epochs. Warm starts and partial_fit
        continue the schedule, starting a new cycle after ``max_epochs``.
    warmup_epochs : int, default=0
        Warm-up epochs of "cosine" and "onecycle".
    schedule_epochs : int or None, default=None
        Epochs one cycle of "cosine" / "onecycle" spans; None: ``max_epochs``.
        Set it when training comes in pieces (warm starts, partial_fit,
        :class:`~skcnn.model_selection.EpochHalvingSearchCV` sets it to its
        budget) so that the pieces continue one schedule.
    mixup, cutmix : float, default=0.0
        Beta(alpha, alpha) parameter of mixup / CutMix on training batches
        (0 = off; with both, each batch uses one at random). Works with
        sample and class weights and with every target type.
    tta : int or list, default=0
        Test-time augmentation: ``predict`` / ``predict_proba`` average the
        probabilities (regression: predictions) of the images and ``tta``
        augmented views (with the ``augment`` transforms, or small shifts
        when ``augment`` is None), or of one view per augment spec in a list.
"""


def _params_doc(**defaults):
    doc = _PARAMS_TEMPLATE
    for key, value in defaults.items():
        doc = doc.replace(f"@{key.upper()}@", value)
    return doc


_OLD_DEFAULTS = dict(
    max_epochs="40", lr="1e-3", early_stopping="True", lr_schedule="None"
)
# skcnn 0.2's classifier recipe, measured in benchmarks/bench_recipe.py.
_NEW_DEFAULTS = dict(
    max_epochs="30", lr="3e-3", early_stopping="False", lr_schedule='"onecycle"'
)
_NEW_VALUES = {
    "lr_schedule": "onecycle",
    "label_smoothing": 0.1,
    "lr": 3e-3,
    "max_epochs": 30,
    "early_stopping": False,
}
_warned_defaults = [False]


_CNN_PARAMETER_CONSTRAINTS = {
    **NET_PARAMETER_CONSTRAINTS,
    "conv_filters": [Sizes(1)],
    "kernel_size": [Int(1), Sizes(1, nested=True, nonempty=True)],
    "pool_size": [Int(1), None, Sizes(1, none=True, nonempty=True)],
    "padding": [StrOptions({"same", "valid"})],
    "dense_units": [Sizes(1)],
    "dropout": [Num(0, 1, closed="left")],
    "batch_norm": ["boolean"],
    "activation": [
        StrOptions(set(ACTIVATIONS)),
        SubclassOf(nn.Module, "torch.nn.Module"),
    ],
    "global_pool": [StrOptions({"avg", "max"}), None],
}


class _CNNMixin:
    _parameter_constraints = _CNN_PARAMETER_CONSTRAINTS

    def _build_module(self, layout, n_outputs, pretrained=None):
        return ConvNet(
            in_channels=layout.in_channels,
            input_size=layout.spatial,
            n_classes=n_outputs,
            conv_filters=self.conv_filters,
            kernel_size=self.kernel_size,
            pool_size=self.pool_size,
            padding=self.padding,
            dense_units=self.dense_units,
            dropout=self.dropout,
            batch_norm=self.batch_norm,
            activation=self.activation,
            global_pool=self.global_pool,
        )


class CNNClassifier(NetClassifierMixin, _CNNMixin, BaseNetEstimator):
    _parameter_constraints = {
        **_CNN_PARAMETER_CONSTRAINTS,
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "label_smoothing": [Num(0, 1, closed="left")],
    }

    __doc__ = (
        """Convolutional network classifier (binary, multiclass, multilabel).

    Binary targets get one sigmoid output and binary cross-entropy,
    multiclass targets softmax and cross-entropy, multilabel indicator
    matrices one sigmoid per label. Labels may be of any type.
    """
        + _params_doc(**_NEW_DEFAULTS)
        + """    class_weight : "balanced", dict or None, default=None
        Weights of the classes in the loss.
    label_smoothing : float in [0, 1), default=0.1
        Label smoothing of the loss (softmax: CrossEntropyLoss's; sigmoid
        outputs: targets pulled towards 0.5).

    Attributes
    ----------
    classes_ : ndarray
    n_features_in_ : int
    layout_ : ImageLayout
        The ``(C, H, W)`` (or ``(C, L)``) shape seen at fit.
    net_ : skorch.NeuralNet
        The trained skorch net; ``module_`` is its torch module.
    history_ : list of dict
        Per-epoch ``train_loss``, ``valid_loss``, ``train_acc``, ``valid_acc``, ``dur``.
    best_epoch_ : int
    n_iter_ : int

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skcnn import CNNClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = CNNClassifier(image_shape=(8, 8), max_epochs=2, random_state=0)
    >>> clf.fit(X[:200], y[:200]).predict(X[:3]).shape
    (3,)
    """
    )

    def _check_params(self):
        super()._check_params()
        kept = [k for k, v in _NEW_VALUES.items() if getattr(self, k) == v]
        if kept and not _warned_defaults[0]:
            _warned_defaults[0] = True
            warnings.warn(
                "CNNClassifier's defaults changed in skcnn 0.2 to "
                "lr_schedule='onecycle', label_smoothing=0.1, lr=3e-3, max_epochs=30, "
                "early_stopping=False (digits, 20 splits: test accuracy +0.27 points, "
                "about the same fit time; external F1 0.831 against 0.785). This fit "
                f"uses the new value of {', '.join(kept)}. For skcnn 0.1's results pass "
                "lr_schedule=None, label_smoothing=0.0, lr=1e-3, max_epochs=40, "
                "early_stopping=True. Shown once per process.",
                FutureWarning,
                stacklevel=4,
            )

    def __init__(
        self,
        conv_filters=(32, 64),
        kernel_size=3,
        pool_size=2,
        padding="same",
        dense_units=(128,),
        dropout=0.25,
        batch_norm=True,
        activation="relu",
        global_pool=None,
        max_epochs=30,
        batch_size="auto",
        lr=3e-3,
        optimizer="adam",
        weight_decay=0.0,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=6,
        tol=0.0,
        monitor="auto",
        augment=None,
        image_shape=None,
        channels="auto",
        device="auto",
        precision="auto",
        compile=False,
        random_state=None,
        verbose=0,
        warm_start=False,
        checkpoint_dir=None,
        num_workers=0,
        num_threads="auto",
        callbacks=None,
        progress=False,
        lr_schedule="onecycle",
        warmup_epochs=0,
        schedule_epochs=None,
        mixup=0.0,
        cutmix=0.0,
        tta=0,
        class_weight=None,
        label_smoothing=0.1,
    ):
        self.conv_filters = conv_filters
        self.kernel_size = kernel_size
        self.pool_size = pool_size
        self.padding = padding
        self.dense_units = dense_units
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.activation = activation
        self.global_pool = global_pool
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.monitor = monitor
        self.augment = augment
        self.image_shape = image_shape
        self.channels = channels
        self.device = device
        self.precision = precision
        self.compile = compile
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.checkpoint_dir = checkpoint_dir
        self.num_workers = num_workers
        self.num_threads = num_threads
        self.callbacks = callbacks
        self.progress = progress
        self.lr_schedule = lr_schedule
        self.warmup_epochs = warmup_epochs
        self.schedule_epochs = schedule_epochs
        self.mixup = mixup
        self.cutmix = cutmix
        self.tta = tta
        self.class_weight = class_weight
        self.label_smoothing = label_smoothing


class CNNRegressor(NetRegressorMixin, _CNNMixin, BaseNetEstimator):
    _parameter_constraints = {
        **_CNN_PARAMETER_CONSTRAINTS,
        "scale_target": ["boolean"],
    }

    __doc__ = (
        """Convolutional network regressor (linear output, mean squared error).
    """
        + _params_doc(**_OLD_DEFAULTS)
        + """
    scale_target : bool, default=True
        Standardise the targets (per output: minus the mean, over the
        standard deviation of the training targets) for training and undo
        it in ``predict``, so targets of any scale train well. The losses in
        ``history_`` are then in standardised units.

    Attributes
    ----------
    n_outputs_ : int
    target_mean_, target_scale_ : ndarray of shape (n_outputs,)
        The standardisation of the targets (0 and 1 with ``scale_target=False``).
    n_features_in_ : int
    layout_ : ImageLayout
    net_ : skorch.NeuralNet
    history_ : list of dict
    """
    )

    def __init__(
        self,
        conv_filters=(32, 64),
        kernel_size=3,
        pool_size=2,
        padding="same",
        dense_units=(128,),
        dropout=0.25,
        batch_norm=True,
        activation="relu",
        global_pool=None,
        max_epochs=40,
        batch_size="auto",
        lr=1e-3,
        optimizer="adam",
        weight_decay=0.0,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=6,
        tol=0.0,
        monitor="auto",
        augment=None,
        image_shape=None,
        channels="auto",
        device="auto",
        precision="auto",
        compile=False,
        random_state=None,
        verbose=0,
        warm_start=False,
        checkpoint_dir=None,
        num_workers=0,
        num_threads="auto",
        callbacks=None,
        progress=False,
        lr_schedule=None,
        warmup_epochs=0,
        schedule_epochs=None,
        mixup=0.0,
        cutmix=0.0,
        tta=0,
        scale_target=True,
    ):
        self.conv_filters = conv_filters
        self.kernel_size = kernel_size
        self.pool_size = pool_size
        self.padding = padding
        self.dense_units = dense_units
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.activation = activation
        self.global_pool = global_pool
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.monitor = monitor
        self.augment = augment
        self.image_shape = image_shape
        self.channels = channels
        self.device = device
        self.precision = precision
        self.compile = compile
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.checkpoint_dir = checkpoint_dir
        self.num_workers = num_workers
        self.num_threads = num_threads
        self.callbacks = callbacks
        self.progress = progress
        self.lr_schedule = lr_schedule
        self.warmup_epochs = warmup_epochs
        self.schedule_epochs = schedule_epochs
        self.mixup = mixup
        self.cutmix = cutmix
        self.tta = tta
        self.scale_target = scale_target
