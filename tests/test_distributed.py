"""Two gloo processes on CPU under torchrun: gradients are averaged, so both ranks end with the same weights, equal to
one process training on the two ranks' batches concatenated."""
import os, sys, subprocess, torch
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
