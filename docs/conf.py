"""Sphinx configuration: MyST Markdown pages, the API from docstrings, the process specs (aiida-core's extension),
the command line (sphinx-click) and the settings reference generated from the pydantic models. Built with
warnings as errors: ``sphinx-build -W -b html docs docs/_build/html`` (scripts/build_docs.sh)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent / '_ext'))

from aiida import load_profile
from aiida.storage.sqlite_temp import SqliteTempBackend

# process specs build their default nodes: a throw-away in-memory profile, nothing is stored
load_profile(SqliteTempBackend.create_profile('docs'), allow_switch=True)

import aiida_mlip_autopipe  # noqa: E402

project = 'aiida-mlip-autopipe'
author = 'aiida-mlip-autopipe developers'
release = aiida_mlip_autopipe.__version__
extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.viewcode',
    'aiida.sphinxext',
    'sphinx_click',
    'settings_reference',
    'exit_codes',
]
source_suffix = {'.md': 'markdown', '.rst': 'restructuredtext'}
exclude_patterns = ['_build', 'README.md']
myst_enable_extensions = ['colon_fence']
myst_heading_anchors = 3
autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
autodoc_default_options = {'members': True, 'show-inheritance': True}
suppress_warnings = ['myst.header']
html_theme = 'alabaster'
html_title = 'aiida-mlip-autopipe'
nitpicky = False
