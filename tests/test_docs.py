"""Every public function and class of the package has a short docstring of its own, and one doc entry on one page."""
import importlib
import importlib.util
import inspect
import json
import pkgutil
from pathlib import Path

import ulmfit_lit

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(m.name for m in pkgutil.iter_modules(ulmfit_lit.__path__) if m.name not in ('all', '_modidx', '__main__'))
DOCSTRING_LINE = 125    # one line of about 120 characters: longer explanations belong in the chapter's prose

spec = importlib.util.spec_from_file_location('check_pages', ROOT/'tools'/'check_pages.py')
check_pages = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_pages)


def public_objects():
    "(module, name, object) for every public function and class each module defines itself, and their public methods."
    for m in MODULES:
        mod = importlib.import_module(f'ulmfit_lit.{m}')
        for name in mod.__all__:
            obj = getattr(mod, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or obj.__module__ != mod.__name__: continue
            yield m, name, obj
            if inspect.isclass(obj):
                for attr, value in vars(obj).items():
                    if not attr.startswith('_') and inspect.isfunction(value): yield m, f'{name}.{attr}', value


def documented_names() -> set:
    "The names the pages document: the public names of export cells (nbdev shows their docs) and explicit show_doc calls."
    names = set()
    for nb in (ROOT/'nbs').glob('*.ipynb'):
        for cell in json.loads(nb.read_text(encoding='utf-8'))['cells']: names.update(check_pages.documented_names(cell))
    return names


def test_modules_are_the_chapters_and_appendices():
    assert {'tokenize', 'data', 'awd_lstm', 'learner', 'language_model', 'classifier', 'baseline', 'recipe', 'corpus',
            'files', 'download', 'checkpoint', 'distributed', 'pretrain', 'cli', 'measure', 'fastai_compat'} == set(MODULES)


def test_every_public_name_has_its_own_short_docstring():
    missing, long = [], []
    for m, n, obj in public_objects():
        doc = obj.__dict__.get('__doc__') if inspect.isclass(obj) else obj.__doc__
        if not doc:
            if '.' not in n: missing.append(f'{m}.{n}')       # methods (callback events, forward) may go without
        elif len(doc.strip().splitlines()[0]) > DOCSTRING_LINE: long.append(f'{m}.{n} ({len(doc.strip().splitlines()[0])})')
    assert not missing, f'no docstring: {missing}'
    assert not long, f'first docstring line over {DOCSTRING_LINE} characters: {long}'


def test_every_public_name_appears_in_the_docs_once():
    shown = documented_names()
    missing = [f'{m}.{n}' for m, n, obj in public_objects()
               if '.' not in n and n not in shown and n == obj.__name__]     # an alias is documented under its own name
    assert not missing, f'no doc entry on any page: {missing}'
    twice = [p for p in (line for nb in sorted((ROOT/'nbs').glob('*.ipynb')) for line in check_pages.problems(nb, {}))
             if 'documented twice' in p]
    assert not twice, twice


def test_page_check_catches_what_a_reader_should_not_see(tmp_path):
    "check_pages finds machine paths, raw reprs, unformatted floats and twice-documented names in a page."
    def output(text): return dict(output_type='execute_result', execution_count=1, metadata={}, data={'text/plain': text})
    cells = [dict(cell_type='code', source='x', metadata={}, outputs=[output("PosixPath('/root/.ulmfit_lit/data')")]),
             dict(cell_type='code', source='w', metadata={}, outputs=[output("VBox(children=(HTML(value=''),))")]),
             dict(cell_type='code', source='f', metadata={}, outputs=[output('0.8612345678')]),
             dict(cell_type='code', source='#| exports\ndef f():\n    "F."\n', metadata={}, outputs=[]),
             dict(cell_type='code', source='show_doc(f)', metadata={}, outputs=[])]
    page = tmp_path/'page.ipynb'
    page.write_text(json.dumps(dict(cells=cells, metadata={}, nbformat=4, nbformat_minor=5)))
    found = '\n'.join(check_pages.problems(page, {}))
    for what in ('path of one machine', 'raw repr', 'unformatted float', 'documented twice'): assert what in found, what
    clean = tmp_path/'clean.ipynb'
    clean.write_text(json.dumps(dict(cells=[dict(cell_type='code', source='x', metadata={}, outputs=[output('0.8612')])],
                                     metadata={}, nbformat=4, nbformat_minor=5)))
    assert check_pages.problems(clean, {}) == []
