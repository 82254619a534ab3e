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


def test_every_skcnn_name_in_messages_and_docs_resolves():
    """``skcnn.X`` (and ``skcnn.X.Y``) named in the code's messages and
    docstrings, the docs, the README and the examples exists (messages once
    told users to call ``skcnn.save_any``)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = [
        *(root / "skcnn").rglob("*.py"),
        *(root / "docs").glob("*.rst"),
        *(root / "examples").glob("*.py"),
        root / "README.md",
    ]

    def resolve(parts):
        try:
            obj = getattr(skcnn, parts[0])
        except AttributeError:
            try:
                obj = importlib.import_module(f"skcnn.{parts[0]}")
            except ImportError:
                return False
        if len(parts) == 1 or hasattr(obj, parts[1]):
            return True
        try:
            importlib.import_module(f"skcnn.{parts[0]}.{parts[1]}")
        except ImportError:
            return False
        return True

    pattern = re.compile(r"\bskcnn\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?")
    bad = {
        f"{f.relative_to(root)}: {m.group(0)}"
        for f in files
        for m in pattern.finditer(f.read_text())
        if not resolve([p for p in m.groups() if p])
    }
    assert not bad, sorted(bad)
    assert len(files) > 50


def test_one_version_everywhere():
    """The package, its metadata and the docs say the same release."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    found = {
        name: re.search(pattern, (root / name).read_text(), flags=re.M).group(1)
        for name, pattern in (
            ("pyproject.toml", r'^version = "([^"]+)"'),
            ("docs/conf.py", r'^release = "([^"]+)"'),
        )
    }
    assert found == dict.fromkeys(found, skcnn.__version__)
