"""The shared-parameter registry (skcnn/_params.py) against the estimators."""

import inspect
import re

import pytest

from skcnn import CNNClassifier, CNNRegressor, DenseNetClassifier, PretrainedClassifier
from skcnn._params import PARAMS, changed_defaults, defaults_for, shared_names

NETWORKS = [CNNClassifier, CNNRegressor, DenseNetClassifier, PretrainedClassifier]


@pytest.mark.parametrize("cls", NETWORKS, ids=lambda c: c.__name__)
def test_signature_defaults_are_the_registry_defaults(cls):
    signature = inspect.signature(cls.__init__).parameters
    want = defaults_for(cls)
    got = {name: signature[name].default for name in want if name in signature}
    assert set(got) == set(want), f"not in the signature: {set(want) - set(got)}"
    assert got == want


@pytest.mark.parametrize("cls", NETWORKS, ids=lambda c: c.__name__)
def test_every_parameter_is_validated_and_documented(cls):
    params = set(cls().get_params())
    assert params == set(cls._parameter_constraints)
    doc = cls.__doc__
    assert not re.search(r"@\w+@", doc), "an unfilled docstring marker"
    documented = set(re.findall(r"^    (\w+)(?:, \w+)* :", doc, flags=re.M))
    assert params <= documented, params - documented
    # each shared entry shows this class's default
    for name, value in defaults_for(cls).items():
        shown = f'"{value}"' if isinstance(value, str) else repr(value)
        assert f"    {name} : {PARAMS[name].kind}, default={shown}\n" in doc


def test_groups_follow_the_estimator_kind():
    assert "class_weight" not in shared_names(CNNRegressor)
    assert "head_epochs" not in shared_names(CNNClassifier)
    assert {"class_weight", "head_epochs"} <= set(shared_names(PretrainedClassifier))
    assert defaults_for(PretrainedClassifier)["layer"] == -4
    assert defaults_for(DenseNetClassifier)["layer"] is None


def test_the_0_2_default_changes_are_the_warned_ones():
    changed = changed_defaults("CNNClassifier")
    assert changed == {
        "max_epochs": (40, 30),
        "lr": (1e-3, 3e-3),
        "early_stopping": (True, False),
        "lr_schedule": (None, "onecycle"),
        "label_smoothing": (0.0, 0.1),
    }
    # the old values are CNNRegressor's (its defaults did not change)
    regressor = inspect.signature(CNNRegressor.__init__).parameters
    assert all(
        regressor[k].default == old for k, (old, _) in changed.items() if k in regressor
    )
    assert changed_defaults("CNNRegressor") == {}
