"""Sphinx configuration: ``sphinx-build docs docs/_build``."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "skcnn"
author = "the skcnn developers"
release = "0.3.0"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
]
autosummary_generate = True
numpydoc_show_class_members = False
# Our own docstrings are checked: every parameter documented with a type and
# a description, nothing documented that does not exist, returns described.
numpydoc_validate = True
numpydoc_validation_checks = {"PR01", "PR02", "PR07", "PR08", "RT03"}
numpydoc_validation_exclude = {r"\.__init__$", r"^skcnn\.models\."}
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Run every example except the Dask one (it starts a local cluster).
    "filename_pattern": r"/plot_(?!dask)",
    "download_all_examples": False,
}
exclude_patterns = ["_build"]
html_theme = "alabaster"
