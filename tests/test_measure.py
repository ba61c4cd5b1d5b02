"""Appendix `ulmfit_lit.measure`: how the course records its speed figures (one JSON file of sections, each with its
date, command, machine), which code they came from, and when fastai's side of a race can run."""
import json
import subprocess
import sys
import time

from ulmfit_lit.measure import code_commit, fastai_python, machine, record, spread, timed


def test_timed_and_spread():
    calls = []
    times = timed(lambda: (calls.append(1), time.sleep(0.01)), 3)
    assert len(calls) == 3 and len(times) == 3 and all(0.009 < t < 1 for t in times)
    assert spread([3., 1., 2., 10.]) == dict(median=2.5, min=1., max=10., runs=4)


def test_record_keeps_every_section_with_its_context(tmp_path, capsys):
    file = tmp_path/'measurements.json'
    record(file, 'tokenize', {'docs_per_s': 100}, command='python bench/tokenization.py')
    record(file, 'model', {'tokens_per_s': 5})
    record(file, 'tokenize', {'docs_per_s': 120}, command='python bench/tokenization.py --fast')
    data = json.loads(file.read_text())
    assert list(data) == ['tokenize', 'model']                          # a section measured again is replaced
    assert data['tokenize']['docs_per_s'] == 120
    assert data['tokenize']['command'] == 'python bench/tokenization.py --fast'
    assert data['model']['tokens_per_s'] == 5 and data['model']['command'].startswith('python ')
    assert data['model']['machine'] == machine() and len(data['model']['date']) == 10
    assert "recorded under 'model' in measurements.json" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ['measurements.json']    # written atomically: no temporary file left


def test_record_names_the_script_relative_to_the_measurements_folder(tmp_path, monkeypatch):
    script = tmp_path/'bench'/'speed.py'; script.parent.mkdir(); script.write_text('')
    monkeypatch.setattr(sys, 'argv', [str(script), '--out', '/somewhere/else', '--runs', '3'])
    record(tmp_path/'measurements.json', 'speed', {'x': 1})
    assert json.loads((tmp_path/'measurements.json').read_text())['speed']['command'] == 'python bench/speed.py --out PATH --runs 3'


def test_code_commit_names_the_commit_and_changes(tmp_path):
    assert code_commit(tmp_path) == 'unknown'                            # outside git
    def git(*args): return subprocess.run(['git', *args], cwd=tmp_path, check=True, capture_output=True,
                                          text=True).stdout.strip()
    git('init', '-q'); (tmp_path/'a.py').write_text('x = 1\n')
    git('add', 'a.py'); git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'one')
    head = git('rev-parse', 'HEAD')
    assert code_commit(tmp_path) == head
    (tmp_path/'a.py').write_text('x = 2\n')
    assert code_commit(tmp_path) == head + '+changes'


def test_fastai_python_is_used_only_when_it_can_import_fastai(capsys):
    assert fastai_python(None) is None and 'our side only' in capsys.readouterr().out
    assert fastai_python(sys.executable) is None          # the project's environment has no fastai: never a dependency
    assert 'cannot import fastai.text.all' in capsys.readouterr().out
