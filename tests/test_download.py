"""Appendix C, `ulmfit_lit.download`: untar_data and its archives (packaged, planted, downloaded over a real local HTTP
server), checksums, safe extraction, and what is left behind when something goes wrong (nothing)."""
import hashlib
import io
import multiprocessing as mp
import os
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from fastcore.foundation import L

from ulmfit_lit.download import (KNOWN_CHECKS, PACKAGED_CHECKS, URLs, archive_path, download_url, safe_extract,
                                 ulmfit_home, untar_data)
from ulmfit_lit.files import file_hash
from ulmfit_lit.language_model import IMDB_LM_SHA256, pretrained_files


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


def test_untar_data_gives_a_path_that_lists_as_fastais(home):
    "fastai's tutorial opens with `path = untar_data(...)` and `path.ls()`: a pathlib Path whose ls() is an `L`."
    path = untar_data(URLs.IMDB_SAMPLE)
    assert isinstance(path, Path)
    listing = path.ls()
    assert isinstance(listing, L) and [p.name for p in listing] == ['texts.csv']
    assert repr(listing) == f"[Path('{path/'texts.csv'}')]"               # as fastai 2.8.12 (fastcore 2.2.41) prints it
    assert isinstance(path/'texts.csv', Path) and (path/'texts.csv').parent == path


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
    assert [p.name for p in tmp_path.iterdir()] == ['evil.tgz']              # no staging folder left beside it


def test_an_archive_that_unpacks_to_too_much_is_refused(tmp_path):
    arc = tmp_path/'big.tgz'
    with tarfile.open(arc, 'w:gz') as tar:
        data = b'\0' * 100_000
        info = tarfile.TarInfo('big/zeros.bin'); info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ValueError, match='would unpack to 100,000 bytes'):
        safe_extract(arc, tmp_path/'out', max_bytes=50_000)
    assert [p.name for p in tmp_path.iterdir()] == ['big.tgz']              # nothing written, not even a staging folder
    assert (safe_extract(arc, tmp_path/'ok')/'big'/'zeros.bin').stat().st_size == 100_000


def test_offline_without_archive_names_the_file_to_place(home, unreachable_url):
    with pytest.raises(ConnectionError) as e:
        untar_data(unreachable_url('wt103-fwd.tgz'), c_key='model')
    assert str(home/'archive'/'wt103-fwd.tgz') in str(e.value) and 'put it at' in str(e.value)
    assert not (home/'models'/'wt103-fwd').exists()
    assert not list((home/'archive').iterdir()) if (home/'archive').exists() else True


def test_bad_c_key():
    with pytest.raises(ValueError, match="c_key"):
        untar_data(URLs.IMDB, c_key='weights')


def test_real_download_then_extract(home, http_server, tmp_path):
    tgz = make_tgz(tmp_path/'wt103-fwd.tgz', {'wt103-fwd/lstm_fwd.pth': b'w' * 10000, 'wt103-fwd/itos_wt103.pkl': b'v'})
    http_server.files['wt103-fwd.tgz'] = tgz.read_bytes()
    path = untar_data(http_server.url('wt103-fwd.tgz'), c_key='model')
    assert path == home/'models'/'wt103-fwd'
    assert sorted(p.name for p in path.iterdir()) == ['itos_wt103.pkl', 'lstm_fwd.pth']   # the folder level lifted
    assert (path/'lstm_fwd.pth').read_bytes() == b'w' * 10000
    assert (home/'archive'/'wt103-fwd.tgz').read_bytes() == tgz.read_bytes()


def test_interrupted_download_keeps_nothing(home, http_server):
    http_server.files['broken.tgz'], http_server.cut['broken.tgz'] = b'z' * 100000, 50000
    dest = home/'archive'/'broken.tgz'
    with pytest.raises(RuntimeError, match='stopped at 50000 of 100000 bytes'):
        download_url(http_server.url('broken.tgz'), dest, show_progress=False)
    assert not dest.exists()
    assert list((home/'archive').iterdir()) == []                          # no temporary file either


def test_a_download_that_differs_from_fastais_published_checks_is_refused(tmp_path, http_server, monkeypatch):
    url_sample = 'https://s3.amazonaws.com/fast-ai-sample/imdb_sample.tgz'
    assert KNOWN_CHECKS[url_sample] == (571827, '0842e61a9867caa2e6fbdb14fa703d61')   # from fastai's checks.txt
    http_server.files['imdb_sample.tgz'] = b'x' * 1000                                  # a tampered file
    local = http_server.url('imdb_sample.tgz')
    monkeypatch.setitem(KNOWN_CHECKS, local, KNOWN_CHECKS[url_sample])
    with pytest.raises(RuntimeError, match='does not match: expected 571,827 bytes with md5 '
                                           '0842e61a9867caa2e6fbdb14fa703d61, got 1,000 bytes with md5 ') as e:
        download_url(local, tmp_path/'got.tgz', show_progress=False)
    assert hashlib.md5(b'x' * 1000).hexdigest() in str(e.value)                        # the actual md5 is named too
    assert list(tmp_path.iterdir()) == []                                            # got.tgz not kept, no temp file


def _untar_sample(home):
    os.environ['ULMFIT_LIT_HOME'] = home
    return str(untar_data(URLs.IMDB_SAMPLE))


def test_concurrent_untar_data_calls_all_succeed(tmp_path):
    with mp.get_context('spawn').Pool(4) as pool:
        paths = pool.map(_untar_sample, [str(tmp_path)] * 4)
    assert len(set(paths)) == 1 and [p.name for p in Path(paths[0]).ls()] == ['texts.csv']
    assert len(pd.read_csv(Path(paths[0])/'texts.csv')) == 1000
    assert not [p for p in (tmp_path/'data').iterdir() if p.name.startswith('.')]   # no staging left behind


def test_force_download_keeps_the_old_folder_until_the_new_one_is_complete(home, http_server):
    path = untar_data(URLs.IMDB_SAMPLE)
    http_server.files['imdb_sample.tgz'] = b'not an archive at all'
    # the new download arrives but does not extract: the old folder must still be there, whole
    with pytest.raises(RuntimeError, match='Could not extract'):
        untar_data(http_server.url('imdb_sample.tgz'), force_download=True)
    assert len(pd.read_csv(path/'texts.csv')) == 1000
    assert [p.name for p in (home/'data').iterdir()] == ['imdb_sample']


def test_archive_from_an_older_package_is_replaced(home):
    # An upgrade: the archive folder still holds the archive an older version of the package shipped (here, another
    # tgz of another size) and its extraction was deleted, as the checksum error says. The package's copy replaces it.
    untar_data(URLs.IMDB_SAMPLE)                                  # puts the packaged sample archive in the home
    old = archive_path(URLs.IMDB_LM)
    old.write_bytes(archive_path(URLs.IMDB_SAMPLE).read_bytes())
    wgts, _ = pretrained_files(name='imdb')
    assert {f.name: file_hash(f) for f in wgts.parent.glob('imdb_lm.*')} == IMDB_LM_SHA256
    assert old.stat().st_size == PACKAGED_CHECKS[URLs.IMDB_LM][0]
    assert file_hash(old) == PACKAGED_CHECKS[URLs.IMDB_LM][1]


def test_empty_home_variable_means_the_default(monkeypatch, tmp_path):
    # `ULMFIT_LIT_HOME= cmd` sets the variable to ''; that must not make the current folder the home
    monkeypatch.setenv('ULMFIT_LIT_HOME', '')
    assert ulmfit_home() == Path('~/.ulmfit_lit').expanduser()
    monkeypatch.setenv('ULMFIT_LIT_HOME', str(tmp_path))
    assert ulmfit_home() == tmp_path
