"""Every public class and function of skcnn says what it is."""

import importlib
import inspect
import pkgutil

import skcnn


def _public_modules():
    yield skcnn
    for info in pkgutil.walk_packages(skcnn.__path__, "skcnn."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            yield importlib.import_module(info.name)


def test_every_public_class_and_function_has_a_docstring():
    missing = []
    for module in _public_modules():
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and not (
                obj.__doc__ or ""
            ).strip():
                missing.append(f"{module.__name__}.{name}")
    assert not missing, missing


def test_the_densenet_docstring_is_the_class_docstring():
    # it once stood after two class attributes, where Python drops it
    assert skcnn.DenseNetClassifier.__doc__.startswith("DenseNet classifier")
