"""ulmfit_lit.files (appendix B): a write that dies halfway leaves the old file (or nothing) and no temporary file,
whether it is a checkpoint written by `Learner.save` or any file or folder written through `atomic_write` and
`atomic_folder`."""
import hashlib

import pytest
import torch

from ulmfit_lit.files import atomic_folder, atomic_write, file_hash
from ulmfit_lit.learner import Learner, ModelResetter, TinyLSTMLM, set_seed, tiny_splitter, toy_lm_dls


def test_interrupted_checkpoint_write_keeps_old_checkpoint(tmp_path, monkeypatch):
    set_seed(0)
    learn = Learner(toy_lm_dls(), TinyLSTMLM(), splitter=tiny_splitter, cbs=[ModelResetter()], path=tmp_path, quiet=True)
    learn.save('ck')
    good = {k: v.clone() for k, v in learn.model.state_dict().items()}
    real_save = torch.save
    def broken_save(obj, f, *a, **k):
        f.write(b'half a checkpoint'); raise KeyboardInterrupt   # dies mid-write
    monkeypatch.setattr(torch, 'save', broken_save)
    with torch.no_grad():
        for p in learn.model.parameters(): p.add_(1.)
    with pytest.raises(KeyboardInterrupt): learn.save('ck')
    monkeypatch.setattr(torch, 'save', real_save)
    learn.load('ck')
    assert all(torch.equal(good[k], v) for k, v in learn.model.state_dict().items())
    assert [p.name for p in (tmp_path/'models').iterdir()] == ['ck.pth']


def test_atomic_write_and_folder_all_or_nothing(tmp_path):
    f = tmp_path/'sub'/'a.txt'
    assert atomic_write(f, 'first') == f and f.read_text() == 'first'          # the folder is made as needed
    def half(fh): fh.write(b'half'); raise RuntimeError('disk gone')
    with pytest.raises(RuntimeError): atomic_write(f, half)
    assert f.read_text() == 'first' and [p.name for p in f.parent.iterdir()] == ['a.txt']
    atomic_write(f, b'\x00\x01 bytes')
    assert f.read_bytes() == b'\x00\x01 bytes' and file_hash(f) == hashlib.sha256(b'\x00\x01 bytes').hexdigest()
    assert file_hash(f, 'md5') == hashlib.md5(b'\x00\x01 bytes').hexdigest()
    dest = tmp_path/'store'
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(dest) as tmp:
            (tmp/'part.npy').write_bytes(b'x'); raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ['sub']                 # no folder, no temporary one
    with atomic_folder(dest) as tmp: (tmp/'one').write_text('1')
    with atomic_folder(dest, replace=True) as tmp: (tmp/'two').write_text('2')
    assert [p.name for p in dest.iterdir()] == ['two'] and sorted(p.name for p in tmp_path.iterdir()) == ['store', 'sub']
