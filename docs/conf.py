"""Sphinx configuration: MyST Markdown pages, the API from docstrings, the process specs (aiida-core's extension),
the command line (sphinx-click) and the settings reference generated from the pydantic models. Built with
warnings as errors: ``sphinx-build -W -b html docs docs/_build/html`` (scripts/build_docs.sh)."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent / '_ext'))
sys.path.insert(0, str(pathlib.Path(__file__).parent.parent))  # the checkout's package, not another install

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
    'sphinx.ext.viewcode',
    'sphinx.ext.intersphinx',
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
html_theme = 'sphinx_book_theme'
html_title = 'aiida-mlip-autopipe'

# links into the documentation of the projects this one builds on (their inventories are fetched at build time)
intersphinx_mapping = {
    'python': ('https://docs.python.org/3', None),
    'aiida': ('https://aiida.readthedocs.io/projects/aiida-core/en/stable', None),
    'ase': ('https://wiki.fysik.dtu.dk/ase', None),
    'numpy': ('https://numpy.org/doc/stable', None),
}
intersphinx_timeout = 10


def _reachable(url: str) -> bool:
    """Whether an inventory can be fetched: an offline build (as on the test machine) links to no other project
    rather than failing on the unreachable inventory."""
    import urllib.request

    try:
        with urllib.request.urlopen(f'{url}/objects.inv', timeout=5):
            return True
    except OSError:
        return False


intersphinx_mapping = {name: entry for name, entry in intersphinx_mapping.items() if _reachable(entry[0])}
if len(intersphinx_mapping) < 4:
    print(f'intersphinx: only {sorted(intersphinx_mapping)} reachable; no links into the others')

# every cross-reference must resolve (with -W: a broken one fails the build), except:
nitpicky = True
nitpick_ignore_regex = [
    # names of other projects: linked through intersphinx when their inventory has them; not every name an
    # annotation uses is documented there (aiida-core's module paths, pydantic's and annotated_types' metadata),
    # and an offline build has no inventory at all
    (r'py:.*', r'(aiida|ase|numpy|np|pydantic|annotated_types|pandas|click|yaml|jinja2|matplotlib)(\..*)?'),
    (r'py:.*', r'(plumpy|kiwipy)(\..*)?'),  # aiida-core's engine: its process classes' bases
    (r'py:.*', r'(pathlib|collections\.abc|typing|io|os|datetime|enum|dataclasses|abc)\..*'),
]
nitpick_ignore = [
    # names without a target in any documentation:
    (
        'py:class',
        'aiida_mlip_autopipe.calculations.settings.StrictModel',
    ),  # base of the settings models (shown as a base)
    ('py:class', 'aiida_mlip_autopipe.active_learning.settings._Settings'),  # the same for the loop's settings
    ('py:mod', 'aiida_mlip_autopipe.jobscripts.pacemaker_io'),  # runs in pacemaker's environment: not importable
    ('py:mod', 'jobscripts.pacemaker_io'),  # here, so not autodoc'ed
    # other projects' names that annotations give unqualified (resolved by no inventory in this form)
    ('py:class', 'BaseModel'),
    ('py:class', 'CalcJobNode'),
    ('py:class', 'StateMachine'),  # plumpy's, in the metaclass of aiida-core's processes
]


def _settings_fields() -> set[str]:
    """Qualified names (``module.Model.field``) of the fields of the package's pydantic models."""
    import importlib
    import pkgutil

    from pydantic import BaseModel

    names = set()
    for module_info in pkgutil.walk_packages(aiida_mlip_autopipe.__path__, 'aiida_mlip_autopipe.'):
        if module_info.name.startswith('aiida_mlip_autopipe.jobscripts'):
            continue  # run in pacemaker's environment, not importable here
        module = importlib.import_module(module_info.name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == module.__name__:
                MODELS.add(f'{value.__module__}.{value.__qualname__}')
                names.update(f'{value.__module__}.{value.__qualname__}.{field}' for field in value.model_fields)
    return names


SETTINGS_FIELDS: set[str] = set()
MODELS: set[str] = set()


def _skip_pydantic_fields(app, what, name, obj, skip, options):
    """Leave out the fields of the settings models: the settings reference documents each of them, with its
    meaning, type and default (their autodoc form is pydantic's ``Annotated[..., FieldInfo(...)]`` repr)."""
    if what == 'class' and any(field.endswith(f'.{name}') for field in SETTINGS_FIELDS):
        return True
    return None


def _pydantic_signature(app, what, name, obj, options, signature, return_annotation):
    """A settings model's signature is its keyword fields: shown as ``(**settings)``; the fields are in the
    settings reference."""
    from pydantic import BaseModel

    if what == 'class' and isinstance(obj, type) and issubclass(obj, BaseModel):
        return '(**settings)', None
    return None


def _drop_model_typehints(app, domain, objtype, contentnode):
    """No parameter list of a settings model's constructor (its fields, in pydantic's repr), before autodoc's
    ``autodoc_typehints = 'description'`` merges it in."""
    try:
        signature = contentnode.parent[0]
        fullname = f'{signature["module"]}.{signature["fullname"]}'
    except (IndexError, KeyError):
        return
    if fullname in MODELS:
        app.env.current_document.autodoc_annotations.pop(fullname, None)


def setup(app):
    app.connect('object-description-transform', _drop_model_typehints, priority=100)
    SETTINGS_FIELDS.update(_settings_fields())
    app.connect('autodoc-skip-member', _skip_pydantic_fields)
    app.connect('autodoc-process-signature', _pydantic_signature)
