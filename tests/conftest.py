"""Shared fixtures: every test runs against a temporary ULMFIT_LIT_HOME, never the user's real home."""
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get('ULMFIT_LIT_SHARED', REPO.parent/'shared'))
FIXTURES = Path(__file__).parent/'fixtures'


@pytest.fixture
def home(tmp_path, monkeypatch):
    "An empty ULMFIT_LIT_HOME for one test."
    h = tmp_path/'home'
    monkeypatch.setenv('ULMFIT_LIT_HOME', str(h))
    return h


@pytest.fixture(scope='session')
def imdb_home(tmp_path_factory):
    "A session-wide home with the shared full-IMDb archive planted in its archive folder (skips when absent)."
    src = SHARED/'data'/'imdb.tgz'
    if not src.exists(): pytest.skip(f'the full IMDb archive is not at {src} (set ULMFIT_LIT_SHARED)')
    h = tmp_path_factory.mktemp('imdb_home')
    (h/'archive').mkdir()
    (h/'archive'/'imdb.tgz').symlink_to(src)
    return h


@pytest.fixture(scope='session')
def imdb_path(imdb_home):
    "The full IMDb, extracted once per session with untar_data."
    from ulmfit_lit.download import URLs, untar_data
    old = os.environ.get('ULMFIT_LIT_HOME')
    os.environ['ULMFIT_LIT_HOME'] = str(imdb_home)
    try: return untar_data(URLs.IMDB)
    finally:
        if old is None: os.environ.pop('ULMFIT_LIT_HOME')
        else: os.environ['ULMFIT_LIT_HOME'] = old


def _repo_status() -> set | None:
    "The repository's `git status` lines (untracked files included), or None where git cannot say."
    try: r = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=all'], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired): return None
    return set(r.stdout.splitlines()) if r.returncode == 0 else None


@pytest.fixture(scope='session', autouse=True)
def tests_write_only_into_temporary_folders():
    "The repository's git status is the same after the test session as before it: no test writes into the checkout."
    before = _repo_status()
    yield
    after = _repo_status()
    if before is not None and after is not None:
        new = sorted(after - before)
        assert not new, f"the tests wrote into the repository (write into tmp_path instead): {new}"
