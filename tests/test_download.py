"""untar_data and safe extraction: real archives, bad archives, a real download over loopback."""
import http.server
import io
import tarfile
import threading
from pathlib import Path

import pandas as pd
import pytest

from ulmfit_lit.download import URLs, archive_path, download_url, safe_extract, untar_data, ulmfit_home


def make_tgz(path: Path, entries: dict, links: dict = None) -> Path:
    "A .tgz at `path` holding files {name: bytes} and symlinks {name: target}."
    with tarfile.open(path, 'w:gz') as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name); info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name); info.type = tarfile.SYMTYPE; info.linkname = target
            tar.addfile(info)
    return path


def test_sample_works_offline_in_an_empty_home(home):
    path = untar_data(URLs.IMDB_SAMPLE)
    assert path == home/'data'/'imdb_sample'
    df = pd.read_csv(path/'texts.csv')
    assert df.shape == (1000, 3)
    assert df.is_valid.sum() == 200
    assert df.text[0].startswith('Un-bleeping-believable! Meg Ryan')
    assert archive_path(URLs.IMDB_SAMPLE).exists()


def test_full_imdb_from_planted_archive(imdb_path):
    names = {p.name for p in imdb_path.iterdir()}
    assert {'train', 'test', 'unsup'} <= names
    for split in ('train', 'test'):
        assert sorted(p.name for p in (imdb_path/split).iterdir() if p.is_dir()) == ['neg', 'pos']
        for label in ('pos', 'neg'):
            assert len(list((imdb_path/split/label).glob('*.txt'))) == 12500
    assert len(list((imdb_path/'unsup').glob('*.txt'))) == 50000
    assert (imdb_path/'train'/'pos'/'0_9.txt').read_text().startswith('Bromwell High is a cartoon comedy')


def test_truncated_archive_gives_clear_error_and_no_folder(home):
    good = make_tgz(home.parent/'good.tgz', {f'imdb/train/pos/{i}_9.txt': b'x' * 5000 for i in range(50)})
    (home/'archive').mkdir(parents=True)
    archive = home/'archive'/'imdb.tgz'
    archive.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    with pytest.raises(RuntimeError, match='truncated or corrupted'):
        untar_data(URLs.IMDB)
    data = home/'data'
    assert not (data/'imdb').exists()
    assert not [p for p in data.iterdir()] if data.exists() else True   # no staging or partial folder left
    archive.write_bytes(good.read_bytes())                               # a good copy put in place by hand
    path = untar_data(URLs.IMDB)
    assert len(list((path/'train'/'pos').glob('*.txt'))) == 50


def test_corrupted_archive_gives_clear_error(home):
    good = make_tgz(home.parent/'good.tgz', {f'imdb/{i}.txt': bytes(range(256)) * 40 for i in range(20)})
    raw = bytearray(good.read_bytes())
    for i in range(len(raw) // 3, len(raw) // 3 + 64): raw[i] ^= 0xFF     # flip bits in the middle
    (home/'archive').mkdir(parents=True)
    (home/'archive'/'imdb.tgz').write_bytes(bytes(raw))
    with pytest.raises(RuntimeError, match='truncated or corrupted'):
        untar_data(URLs.IMDB)
    assert not (home/'data'/'imdb').exists()


@pytest.mark.parametrize('entries,links,msg', [
    ({'imdb/ok.txt': b'ok', 'imdb/../../escape.txt': b'x'}, None, 'leaves the target folder'),
    ({'../escape.txt': b'x'}, None, 'leaves the target folder'),
    ({'/tmp/abs_escape.txt': b'x'}, None, 'leaves the target folder'),
    ({'imdb/ok.txt': b'ok'}, {'imdb/link': '../../../etc'}, 'points outside'),
])
def test_unsafe_archives_are_refused(tmp_path, entries, links, msg):
    evil = make_tgz(tmp_path/'evil.tgz', entries, links)
    with pytest.raises(ValueError, match=msg):
        safe_extract(evil, tmp_path/'out')
    assert not (tmp_path/'out').exists()
    assert not (tmp_path/'escape.txt').exists() and not (tmp_path.parent/'escape.txt').exists()
    assert not list(tmp_path.glob('.out.partial-*'))


def test_offline_without_archive_names_the_file_to_place(home):
    url = 'http://127.0.0.1:9/wt103-fwd.tgz'   # nothing listens on port 9
    with pytest.raises(RuntimeError) as e:
        untar_data(url, c_key='model')
    assert str(home/'archive'/'wt103-fwd.tgz') in str(e.value)
    assert not (home/'models'/'wt103-fwd').exists()


def test_bad_c_key():
    with pytest.raises(ValueError, match="c_key"):
        untar_data(URLs.IMDB, c_key='weights')


class _Handler(http.server.BaseHTTPRequestHandler):
    payload = b''
    send_only = None     # send fewer bytes than Content-Length to simulate a dropped connection

    def do_GET(self):
        self.send_response(200)
        self.send_header('Content-Length', str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload[:self.send_only] if self.send_only else self.payload)

    def log_message(self, *args): pass


@pytest.fixture
def server():
    srv = http.server.HTTPServer(('127.0.0.1', 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True); t.start()
    yield srv
    srv.shutdown(); srv.server_close()


def test_real_download_then_extract(home, server, tmp_path):
    tgz = make_tgz(tmp_path/'wt103-fwd.tgz', {'wt103-fwd/lstm_fwd.pth': b'w' * 10000, 'wt103-fwd/itos_wt103.pkl': b'v'})
    _Handler.payload, _Handler.send_only = tgz.read_bytes(), None
    url = f'http://127.0.0.1:{server.server_port}/wt103-fwd.tgz'
    path = untar_data(url, c_key='model')
    assert path == home/'models'/'wt103-fwd'
    assert sorted(p.name for p in path.iterdir()) == ['itos_wt103.pkl', 'lstm_fwd.pth']
    assert (home/'archive'/'wt103-fwd.tgz').read_bytes() == tgz.read_bytes()


def test_interrupted_download_keeps_nothing(home, server):
    _Handler.payload, _Handler.send_only = b'z' * 100000, 50000
    url = f'http://127.0.0.1:{server.server_port}/broken.tgz'
    dest = home/'archive'/'broken.tgz'
    with pytest.raises(RuntimeError, match='stopped at 50000 of 100000 bytes'):
        download_url(url, dest, show_progress=False)
    assert not dest.exists()
    assert not list((home/'archive').glob('.broken.tgz.download-*'))


def test_empty_home_variable_means_the_default(monkeypatch, tmp_path):
    # `ULMFIT_LIT_HOME= cmd` sets the variable to ''; that must not make the current folder the home
    monkeypatch.setenv('ULMFIT_LIT_HOME', '')
    assert ulmfit_home() == Path('~/.ulmfit_lit').expanduser()
    monkeypatch.setenv('ULMFIT_LIT_HOME', str(tmp_path))
    assert ulmfit_home() == tmp_path
