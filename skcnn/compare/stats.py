"""The statistics of a comparison: paired bootstrap intervals, ranks and
calibration."""

from __future__ import annotations

import numpy as np

from .data import is_external

N_BOOTSTRAP = 1000
# Equal-width confidence bins of the expected calibration error (Guo et al.,
# ICML 2017, use 15).
ECE_BINS = 15


def calibration_error(y_true, proba, classes, n_bins=ECE_BINS):
    """Expected calibration error of the top label: the gap between accuracy
    and mean confidence (the predicted class's probability) in each of
    ``n_bins`` equal-width confidence bins, weighted by the bin's share of
    the images. 0: confidences that mean what they say."""
    proba = np.asarray(proba, dtype=float)
    conf = proba.max(1)
    correct = np.asarray(classes)[proba.argmax(1)] == np.asarray(y_true)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in np.unique(bins):
        inside = bins == b
        ece += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return float(ece)


class PairedBootstrap:
    """Macro F1 of predictions on the same resamples of one test set, so that
    intervals and differences between models are paired (the same images)."""

    def __init__(self, y_true, n=N_BOOTSTRAP, random_state=0):
        self.classes = np.unique(y_true)
        self.y = np.searchsorted(self.classes, y_true)
        rng = np.random.default_rng(random_state)
        self.samples = rng.integers(0, len(self.y), (n, len(self.y)))
        self._known = {}  # predictions -> their scores (a run ranks after each row)

    def scores(self, y_pred):
        """Macro F1 (over the classes present in y_true) on every resample."""
        y_pred = np.asarray(y_pred)
        key = (y_pred.dtype.str, y_pred.tobytes())
        if key not in self._known:
            self._known[key] = self._scores(y_pred)
        return self._known[key]

    def _scores(self, y_pred):
        k = len(self.classes)
        pred = np.searchsorted(self.classes, y_pred)
        pred = np.where(np.isin(y_pred, self.classes), pred, k)  # unknown label: wrong
        out = np.empty(len(self.samples))
        for b, idx in enumerate(self.samples):
            t, p = self.y[idx], pred[idx]
            tp = np.bincount(t[t == p], minlength=k + 1)[:k]
            support = np.bincount(t, minlength=k + 1)[:k]
            predicted = np.bincount(p, minlength=k + 1)[:k]
            denom = support + predicted
            f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
            out[b] = f1[support > 0].mean()
        return out

    def interval(self, y_pred, level=0.95):
        lo, hi = np.quantile(self.scores(y_pred), [(1 - level) / 2, (1 + level) / 2])
        return (float(lo), float(hi))


def ranked(rows, predictions, sets):
    """``rows`` with their rank on every external set of ``sets``: "best"
    (or "tied best" when several rows share the top F1), and "not
    significantly worse" for a row whose paired-bootstrap difference from
    the best has a 95% interval that holds 0."""
    ok = [r for r in rows if r.ok]
    if not ok:
        return rows
    ranks = {r.model: {} for r in ok}
    for i, (label, boot) in enumerate(zip(sets.labels, sets.boots)):
        if not is_external(label):  # ranks: the external sets only
            continue
        top = max(r.scores[label].f1 for r in ok)
        tops = [r.model for r in ok if r.scores[label].f1 >= top - 1e-12]
        best_scores = boot.scores(predictions[tops[0]][i])
        for r in ok:
            if r.model in tops:
                ranks[r.model][label] = "best" if len(tops) == 1 else "tied best"
                continue
            diff = best_scores - boot.scores(predictions[r.model][i])
            lo, hi = np.quantile(diff, [0.025, 0.975])
            ranks[r.model][label] = "not significantly worse" if lo <= 0 <= hi else ""
    out = []
    for r in rows:
        for label, rank in ranks.get(r.model, {}).items():
            r = r.with_rank(label, rank)
        out.append(r)
    return out


# Folder images are resized to at most this side: every row of the run
# trains on them, and no row gains from more on a CPU.


def selective_f1(y_true, proba, classes, coverage):
    """Macro F1 on the ``coverage`` share of the images the model is most
    confident about (what an "I don't know" below a confidence threshold
    buys): ties in confidence are kept in the images' order."""
    from sklearn.metrics import f1_score

    proba = np.asarray(proba, dtype=float)
    keep = max(1, int(round(coverage * len(proba))))
    order = np.argsort(-proba.max(1), kind="stable")[:keep]
    pred = np.asarray(classes)[proba.argmax(1)]
    return float(
        f1_score(np.asarray(y_true)[order], pred[order], average="macro", labels=None)
    )


def reliability(y_true, proba, classes, n_bins=ECE_BINS):
    """(mean confidence, accuracy, count) per non-empty confidence bin: the
    points of a reliability diagram."""
    proba = np.asarray(proba, dtype=float)
    conf = proba.max(1)
    correct = np.asarray(classes)[proba.argmax(1)] == np.asarray(y_true)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    return [
        (
            float(conf[bins == b].mean()),
            float(correct[bins == b].mean()),
            int((bins == b).sum()),
        )
        for b in np.unique(bins)
    ]
