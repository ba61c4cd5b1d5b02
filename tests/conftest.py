"""Shared fixtures: every test runs against a temporary ULMFIT_LIT_HOME, never the user's real home."""
import os
import subprocess
import tarfile
from pathlib import Path

import pandas as pd
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
def sample_df():
    "The shipped IMDb sample's texts.csv (1,000 reviews: label, text, is_valid) as a DataFrame, read from the archive."
    with tarfile.open(REPO/'ulmfit_lit'/'sample'/'imdb_sample.tgz') as tf:
        m = next(m for m in tf.getmembers() if m.name.endswith('texts.csv'))
        return pd.read_csv(tf.extractfile(m))


def _imdb_like_folder(df: pd.DataFrame, root: Path, n_unsup: int = 20) -> Path:
    "A folder in IMDb's layout (train|test/pos|neg/*.txt, unsup/*.txt) made from rows of the sample (label, text, is_valid)."
    for i, row in df.iterrows():
        folder = root/('test' if row.is_valid else 'train')/('pos' if row.label == 'positive' else 'neg')
        folder.mkdir(parents=True, exist_ok=True)
        (folder/f'{i}_0.txt').write_text(row.text, encoding='utf-8')
    (root/'unsup').mkdir(parents=True)
    for i, text in enumerate(df.text[:n_unsup]): (root/'unsup'/f'{i}_0.txt').write_text(text[::-1], encoding='utf-8')
    return root


@pytest.fixture(scope='session')
def imdb_like_folder():
    "`imdb_like_folder(df, root, n_unsup=20)` writes a small IMDb-layout folder (unsup: reviews reversed) and returns it."
    return _imdb_like_folder


@pytest.fixture
def http_server():
    """A real HTTP server on 127.0.0.1 (a free port), in a thread: `srv.files[name] = bytes` serves a file at
    `srv.url(name)`; `srv.cut[name] = n` sends its full Content-Length but only the first n bytes, then closes.
    `srv.requests` lists the paths asked for."""
    import http.server, threading
    files, cut, requests = {}, {}, []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            name = self.path.lstrip('/')
            if name not in files: return self.send_error(404)
            data = files[name]
            self.send_response(200)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data[:cut.get(name, len(data))])
        def log_message(self, *args): pass

    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    srv.files, srv.cut, srv.requests = files, cut, requests
    srv.url = lambda name: f'http://127.0.0.1:{srv.server_port}/{name}'
    yield srv
    srv.shutdown(); srv.server_close()


@pytest.fixture
def unreachable_url():
    "`url(name)`: an address on 127.0.0.1 where nothing listens (a port just freed), so a download is refused at once."
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    return lambda name: f'http://127.0.0.1:{port}/{name}'


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
