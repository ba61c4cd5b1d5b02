"""ulmfit_lit.distributed (appendix E) and `learn.distrib_ctx()`: two gloo processes on CPU under torchrun average
their gradients, so both ranks end with the same weights, equal to one process training on the two ranks' batches
together; a language model's streams are shared whole."""
import os
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from _ddp_lm_worker import lm_learner
from _ddp_worker import regression_dls
from ulmfit_lit.distributed import DistributedDataLoaders, DistributedDL
from ulmfit_lit.learner import BatchList, DataLoaders, Learner, set_seed
from ulmfit_lit.distributed import distrib_device

ROOT = Path(__file__).resolve().parents[1]


def torchrun(worker: str, out: Path, timeout: int):
    "Run tests/`worker` in 2 processes under torchrun (one thread each), writing into `out`."
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
           str(ROOT/'tests'/worker), str(out)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]


def test_distributed_dl_shares_batches():
    dl = list(range(7))
    parts = [list(DistributedDL(dl, r, 2)) for r in range(2)]
    assert parts == [[0, 2, 4], [1, 3, 5]] and len(DistributedDL(dl, 0, 2)) == 3
    dls = DistributedDataLoaders(DataLoaders(BatchList(dl), BatchList([7, 8]), vocab=['a']), 1, 2)
    assert list(dls.train) == [1, 3, 5] and list(dls.valid) == [7, 8] and dls.vocab == ['a']   # valid stays whole


def test_two_processes_agree_and_match_one_big_batch(tmp_path):
    torchrun('_ddp_worker.py', tmp_path, timeout=120)
    w0, w1 = (torch.load(tmp_path/f'rank{i}.pt', weights_only=True) for i in range(2))
    for k in w0: assert torch.equal(w0[k], w1[k]), k
    # the same training in one process, each step on batches 2k and 2k+1 together
    dls = regression_dls()
    b = dls.train.batches
    merged = BatchList([(torch.cat([b[i][0], b[i+1][0]]), torch.cat([b[i][1], b[i+1][1]])) for i in range(0, 8, 2)])
    set_seed(0)
    learn = Learner(DataLoaders(merged, dls.valid), nn.Linear(6, 2), loss_func=nn.MSELoss(), quiet=True)
    learn.fit(2, 1e-2)
    ref = learn.model.state_dict()
    for k in w0:
        assert torch.allclose(w0[k], ref[k], atol=1e-6), (k, w0[k], ref[k])
    v0, v1 = (torch.load(tmp_path/f'values{i}.pt', weights_only=True) for i in range(2))
    assert v0[-1][1] == v1[-1][1]     # both ranks validate on the whole valid set


def test_two_processes_train_a_language_model_as_one_does(tmp_path):
    "Under torchrun, each rank reads consecutive streams, and 2 x (bs/2) streams train as one process with bs."
    torchrun('_ddp_lm_worker.py', tmp_path, timeout=180)
    ranks = [torch.load(tmp_path/f'lm_rank{i}.pt', weights_only=True) for i in range(2)]
    for rk in ranks:                                      # every rank's streams are consecutive across batches
        for a, b in zip(rk['streams'], rk['streams'][1:]): assert torch.equal(b[:, 0], a[:, -1])
    single = lm_learner(tmp_path)
    single.fit(2, 1e-2)
    ref = single.model.state_dict()
    for k, v in ranks[0]['weights'].items():
        assert torch.equal(v, ranks[1]['weights'][k]), k
        assert torch.allclose(v, ref[k], atol=1e-5), (k, (v - ref[k]).abs().max())
    v0, v1 = ranks[0]['values'][-1], ranks[1]['values'][-1]
    assert v0[1:] == v1[1:]                               # both ranks validate the whole valid set alike
    assert abs(v0[1] - single.recorder.values[-1][1]) < 1e-4 and abs(v0[2] - single.recorder.values[-1][2]) < 1e-4


def test_each_torchrun_process_takes_its_own_gpu(monkeypatch):
    monkeypatch.setenv('LOCAL_RANK', '3')
    assert distrib_device('cuda') == torch.device('cuda', 3)
    assert distrib_device(torch.device('cuda', 0)) == torch.device('cuda', 3)
    assert distrib_device('cpu') == torch.device('cpu')
    monkeypatch.delenv('LOCAL_RANK')
    assert distrib_device('cuda') == torch.device('cuda', 0)
