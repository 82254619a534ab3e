"""Sphinx configuration: ``sphinx-build docs docs/_build``."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "skcnn"
author = "the skcnn developers"
release = "0.1.0"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx.ext.viewcode",
]
autosummary_generate = True
numpydoc_show_class_members = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
