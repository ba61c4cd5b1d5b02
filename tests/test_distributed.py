"""Two gloo processes on CPU under torchrun: gradients are averaged, so both ranks end with the same weights, equal to
one process training on the two ranks' batches concatenated."""
import os, sys, subprocess, torch
import numpy as np, pytest
from pathlib import Path
from torch import nn
sys.path.insert(0, os.path.dirname(__file__))
from _toys import regression_dls, ListDL, DLs
from ulmfit_lit.learner import Learner, set_seed, DistributedDL

ROOT = Path(__file__).resolve().parents[1]

def test_distributed_dl_shares_batches():
    dl = list(range(7))
    parts = [list(DistributedDL(dl, r, 2)) for r in range(2)]
    assert parts == [[0, 2, 4], [1, 3, 5]] and len(DistributedDL(dl, 0, 2)) == 3

def test_two_processes_agree_and_match_one_big_batch(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
           str(ROOT/'tests'/'_ddp_worker.py'), str(tmp_path)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    w0, w1 = (torch.load(tmp_path/f'rank{i}.pt', weights_only=True) for i in range(2))
    for k in w0: assert torch.equal(w0[k], w1[k]), k
    # the same training in one process, each step on batches 2k and 2k+1 together
    dls = regression_dls()
    b = dls.train.batches
    merged = ListDL([(torch.cat([b[i][0], b[i+1][0]]), torch.cat([b[i][1], b[i+1][1]])) for i in range(0, 8, 2)])
    set_seed(0)
    learn = Learner(DLs(merged, dls.valid), nn.Linear(6, 2), loss_func=nn.MSELoss(), quiet=True)
    learn.fit(2, 1e-2)
    ref = learn.model.state_dict()
    for k in w0:
        assert torch.allclose(w0[k], ref[k], atol=1e-6), (k, w0[k], ref[k])
    v0, v1 = (torch.load(tmp_path/f'values{i}.pt', weights_only=True) for i in range(2))
    assert v0[-1][1] == v1[-1][1]     # both ranks validate on the whole valid set


def test_lm_streams_are_shared_whole_between_processes():
    "Sharding an LM loader gives each process whole streams: batch k+1 of a row continues batch k of that row."
    from ulmfit_lit.data import LMDataLoader
    docs = [np.arange(i * 100, i * 100 + n) for i, n in enumerate([37, 52, 41, 60, 45])]
    full = LMDataLoader(docs, bs=4, seq_len=6)
    parts = [full.shard(r, 2) for r in range(2)]
    for part in parts:
        batches = list(part)
        assert all(x.shape[0] == 2 for x, _ in batches)
        for (x0, y0), (x1, _) in zip(batches, batches[1:]):
            assert torch.equal(x1[:, 0], y0[:, -1])         # the stream goes on where the last batch's target ended
    for (xf, yf), (xa, _), (xb, _) in zip(full, *parts):
        assert torch.equal(xf[0::2], xa) and torch.equal(xf[1::2], xb)   # together, exactly the full batches
    with pytest.raises(ValueError, match='divisible by 3'): full.shard(0, 3)


def test_two_processes_train_a_language_model_as_one_does(tmp_path):
    "Under torchrun, each rank reads consecutive streams, and 2 x (bs/2) streams train as one process with bs."
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
           str(ROOT/'tests'/'_ddp_lm_worker.py'), str(tmp_path)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    ranks = [torch.load(tmp_path/f'lm_rank{i}.pt', weights_only=True) for i in range(2)]
    for rk in ranks:                                      # every rank's streams are consecutive across batches
        for a, b in zip(rk['streams'], rk['streams'][1:]): assert torch.equal(b[:, 0], a[:, -1])
    sys.path.insert(0, str(ROOT/'tests'))
    from _ddp_lm_worker import lm_learner
    single = lm_learner(tmp_path)
    single.fit(2, 1e-2)
    ref = single.model.state_dict()
    for k, v in ranks[0]['weights'].items():
        assert torch.equal(v, ranks[1]['weights'][k]), k
        assert torch.allclose(v, ref[k], atol=1e-5), (k, (v - ref[k]).abs().max())
    v0, v1 = ranks[0]['values'][-1], ranks[1]['values'][-1]
    assert v0[1:] == v1[1:]                               # both ranks validate the whole valid set alike
    assert abs(v0[1] - single.recorder.values[-1][1]) < 1e-4 and abs(v0[2] - single.recorder.values[-1][2]) < 1e-4
