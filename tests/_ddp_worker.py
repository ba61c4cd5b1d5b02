"Run by torchrun in tests/test_distributed.py: train a small model under learn.distrib_ctx(), save each rank's weights."
import sys, os, torch
from torch import nn
sys.path.insert(0, os.path.dirname(__file__))
from _toys import regression_dls
from ulmfit_lit.learner import Learner, set_seed

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
