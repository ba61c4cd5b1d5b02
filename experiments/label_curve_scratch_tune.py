"""From-scratch AWD-LSTM classifier (random weights, all layers trainable from the start): lr_find, then one long
one-cycle run with dev accuracy after every epoch (to choose the epochs). Training reviews only (tune draws, DEV pool).
    python experiments/label_curve_scratch_tune.py --n 400 --num-it 40 --epochs 10 --dev 300 [--lr LR] [--drop-mult 0.5]"""
import argparse
import time

from label_curve_common import *
OUT = EXP/'label_curve_tuning.json'

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--n', type=int, default=400); p.add_argument('--draw', type=int, default=0)
    p.add_argument('--num-it', type=int, default=40); p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--dev', type=int, default=300); p.add_argument('--bs', type=int, default=32)
    p.add_argument('--lr', type=float, default=None); p.add_argument('--drop-mult', type=float, default=0.5)
    a = p.parse_args()
    d = Data(); tr = d.draw(a.n, a.draw, 'tune'); dev = d.dev_idx[:a.dev]
    lr = a.lr
    if lr is None:
        t = time.time(); set_seed(0)
        learn = make_learner(d.dls(tr, dev[:2], bs=a.bs, seed=0), False, a.drop_mult)
        sug = learn.lr_find(start_lr=1e-5, end_lr=1., num_it=a.num_it, show_plot=False)
        lrs, losses = [float(x) for x in learn.recorder.lrs], [float(x) for x in learn.recorder.losses]
        lr = float(sug[0]) if isinstance(sug, (tuple, list)) else float(getattr(sug, 'valley', sug))
        rec = dict(config='scratch_lr_find', n=a.n, draw=a.draw, seed=0, n_dev=0, acc=None, valley=lr, bs=a.bs,
                   drop_mult=a.drop_mult, num_it=a.num_it, lrs=lrs, losses=losses, seconds=round(time.time() - t, 1))
        append_json(OUT, rec); print(f'lr_find valley {lr:.2e} ({rec["seconds"]}s)', flush=True)
        for x, y in zip(lrs, losses): print(f'  {x:.2e} {y:.4f}')
    cfg = dict(pretrained=False, drop_mult=a.drop_mult, bs=a.bs, head='default',
               stages=[dict(freeze_to=0, epochs=a.epochs, lr=lr, disc=1)])
    t = time.time()
    learn, rec = neural_run(d, tr, cfg, seed=0, valid_idx=dev, log=print)
    vals = rec['stages'][0]['epoch_values']
    rec = dict(config=f'scratch_{a.epochs}ep', n=a.n, draw=a.draw, seed=0, n_dev=a.dev, acc=vals[-1][2],
               seconds=round(time.time() - t, 1), **{k: v for k, v in rec.items() if k not in ('n', 'seed')})
    append_json(OUT, rec)
    for i, v in enumerate(vals): print(f'epoch {i + 1}: train_loss {v[0]:.4f} valid_loss {v[1]:.4f} acc {v[2]:.4f}')

if __name__ == '__main__': main()
