"Run by torchrun in tests/test_distributed.py: train a small model under learn.distrib_ctx(), save each rank's weights."
import os
import sys

import torch
from torch import nn

from ulmfit_lit.learner import BatchList, DataLoaders, Learner, set_seed


def regression_dls(n_batches=8, bs=4, n=6, seed=0) -> DataLoaders:
    "Noisy linear regression: y = x @ w + noise, `n_batches` training batches and 2 validation ones."
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, 2, generator=g)
    def batch():
        x = torch.randn(bs, n, generator=g)
        return x, x @ w + 0.01 * torch.randn(bs, 2, generator=g)
    return DataLoaders(BatchList([batch() for _ in range(n_batches)]), BatchList([batch() for _ in range(2)]))


if __name__ == '__main__':
    out = sys.argv[1]
    set_seed(0)
    model = nn.Linear(6, 2)
    learn = Learner(regression_dls(), model, loss_func=nn.MSELoss(), quiet=True)
    with learn.distrib_ctx():
        assert isinstance(learn.model, nn.parallel.DistributedDataParallel)
        assert len(learn.dls.train) == 4                  # 8 batches shared by 2 processes
        learn.fit(2, 1e-2)
    rank = int(os.environ['RANK'])
    torch.save({k: v.detach().clone() for k, v in learn.model.state_dict().items()}, os.path.join(out, f'rank{rank}.pt'))
    torch.save(learn.recorder.values, os.path.join(out, f'values{rank}.pt'))
