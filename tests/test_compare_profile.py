"""The comparison's shift profile: the table shift_profile makes, and the
vote's profile made from its members' kept probabilities."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier, VotingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVC

from skcnn.baselines import ImageFlattener
from skcnn.compare.ensemble import Selection
from skcnn.compare.profile import Profiles
from skcnn.robustness import shift_profile


@pytest.fixture(scope="module")
def fitted():
    d = load_digits()
    X, y = (d.images * 16).astype(np.uint8), d.target
    models = {
        "rf": make_pipeline(
            ImageFlattener(), RandomForestClassifier(n_estimators=20, random_state=0)
        ),
        "logreg": make_pipeline(ImageFlattener(), LogisticRegression(max_iter=300)),
        "svm": make_pipeline(ImageFlattener(), SVC()),  # no probabilities
    }
    for m in models.values():
        m.fit(X[:600], y[:600])
    return models, (X[1500:1560], y[1500:1560])


def test_profiles_make_shift_profiles_table(fitted):
    models, images = fitted
    profiles = Profiles(images, random_state=3)
    for name, model in models.items():
        profiles.add(name, model)
    want = shift_profile(models, *images, scoring="f1_macro", random_state=3)
    order = np.lexsort((want["severity"], want["kind"], want["model"]))
    got_order = np.lexsort(
        (profiles.table["severity"], profiles.table["kind"], profiles.table["model"])
    )
    for column in want:
        np.testing.assert_array_equal(
            np.asarray(profiles.table[column])[got_order],
            np.asarray(want[column])[order],
            err_msg=column,
        )
    assert set(profiles.probabilities) == {"rf", "logreg"}  # svm has none
    assert not profiles.can_vote(["rf", "svm"])


def test_the_votes_profile_is_the_vote_of_its_members(fitted):
    models, images = fitted
    profiles = Profiles(images, random_state=3)
    for name in ("rf", "logreg"):
        profiles.add(name, models[name])
    weights = [0.25, 0.75]
    vote = VotingClassifier(
        [(n, FrozenEstimator(models[n])) for n in ("rf", "logreg")],
        voting="soft",
        weights=weights,
    ).fit(*images)
    selection = Selection(("rf", "logreg"), tuple(weights))
    profiles.add_vote("vote", selection, np.arange(10))
    want = shift_profile(vote, *images, scoring="f1_macro", random_state=3)
    got = [
        s
        for m, s in zip(profiles.table["model"], profiles.table["score"])
        if m == "vote"
    ]
    np.testing.assert_allclose(got, want["score"])
    # a profile continues the table of a stopped run
    again = Profiles(images, 3, table={k: list(v) for k, v in profiles.table.items()})
    again.add("svm", models["svm"])
    assert again.table["model"].count("vote") == len(want["score"])
    assert again.table["model"][-1] == "svm"
