"""Every public function and class of the package has its own docstring and a `show_doc` on its chapter's page."""
import importlib, inspect, json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ['download', 'tokenize', 'data', 'awd_lstm', 'learner', 'language_model', 'classifier', 'cli']


def _public_callables():
    for m in MODULES:
        mod = importlib.import_module(f'ulmfit_lit.{m}')
        for name in mod.__all__:
            obj = getattr(mod, name)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == mod.__name__:
                yield m, name, obj


def _documented_names() -> set:
    "Names passed to show_doc/show_docs in any chapter (the docs render those)."
    names = set()
    for nb in (ROOT/'nbs').glob('*.ipynb'):
        for cell in json.loads(nb.read_text(encoding='utf-8'))['cells']:
            src = ''.join(cell['source'])
            for call in re.findall(r'show_docs?\(([^)]*)\)', src, re.S):
                names.update(a.strip().split('.')[0] for a in call.split(',') if a.strip())
    return names


def test_every_public_name_has_its_own_docstring():
    missing = [f'{m}.{n}' for m, n, obj in _public_callables() if not (obj.__dict__.get('__doc__') if inspect.isclass(obj)
                                                                      else obj.__doc__)]
    assert not missing, f'no docstring: {missing}'


def test_every_public_name_appears_in_the_docs():
    shown = _documented_names()
    missing = [f'{m}.{n}' for m, n, _ in _public_callables() if n not in shown]
    assert not missing, f'no show_doc on any page: {missing}'
