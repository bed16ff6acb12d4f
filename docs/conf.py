"""Sphinx configuration: numpydoc docstrings, a sphinx-gallery of examples/.

The build needs no network: links to the Python, NumPy and SciPy docs
(intersphinx) are made only when ``SECONDORDER_DOCS_INTERSPHINX=1``, since
fetching their inventories fails on offline build machines, and with ``-W``
that failure would stop the build.
"""

import os

import secondorder

project = "secondorder"
author = "the secondorder developers"
release = secondorder.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
autosummary_generate = True
# classes list their own members only: inherited scikit-learn methods carry references to its docs
templates_path = ["_templates"]
numpydoc_show_class_members = False
if os.environ.get("SECONDORDER_DOCS_INTERSPHINX") == "1":
    extensions.append("sphinx.ext.intersphinx")
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "scipy": ("https://docs.scipy.org/doc/scipy", None),
}
sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": "plot_",
    "doc_module": ("secondorder",),
}
exclude_patterns = ["_build"]
html_theme = "alabaster"


def _skip_metadata_requests(app, what, name, obj, skip, options):
    # scikit-learn adds set_fit_request & co. to every estimator; their
    # docstrings refer to its own glossary, and they are its API, not ours
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_requests)
