"""ULMFiT on the whole IMDb from the packed token ids, with no WikiText-103: time and accuracy of every stage.

    python experiments/imdb_recipe.py                          # forward and backward models, then their ensemble
    python experiments/imdb_recipe.py --directions fwd --lm-epochs 1 --budget 400
    python experiments/imdb_recipe.py --small                  # a few hundred reviews, a tiny model: a CPU smoke test

The recipe, with the package's public API as a user would call it:
1. a language model from random weights (`language_model_learner(..., pretrained=False)`) on the text of ALL the
   reviews (train, test and unsup: 100,000), `--lm-valid-pct` of them held out to report its accuracy/perplexity;
   `fit_one_cycle(--lm-epochs, --lm-lr)`; `save_encoder`.
2. a classifier (`text_classifier_learner`, `load_encoder`) on the 25,000 training reviews, validated on the 25,000
   test reviews, with fastai's tutorial schedule of gradual unfreezing, `ulmfit_lit.recipe.GRADUAL_UNFREEZING`
   (lr = --clas-lr, 2e-2 by default): freeze_to(-1) 1 epoch lr; freeze_to(-2) 1 epoch slice(lr/2/2.6**4, lr/2);
   freeze_to(-3) 1 epoch slice(lr/4/2.6**4, lr/4); unfreeze() --clas-final-epochs epochs slice(lr/20/2.6**4, lr/20).
3. the same for the backward direction (each review read from its end), then the ensemble: the mean of the two
   models' probabilities on the test reviews.
Loaders are built straight from the packed ids: `LMDataLoader` and `SortedDL` over a `TokenStore`, wrapped in
`TextDataLoaders(train, valid, vocab, categories, text_block=TextBlock(backwards=...))` (chapter 02 has no
`from_ids` constructor; this is what its `DataBlock` does after tokenizing). Every stage prints one line:
its seconds, the elapsed time and its accuracy; `--budget SECONDS` skips the backward direction when the forward one
shows it would not fit; `--stage-valid-docs N` validates the stages on N test reviews to save time (the final
accuracy is always on all 25,000). `--probs-dir` keeps each direction's test probabilities, and `--prior-probs`
brings one direction from an earlier run (another GPU session) into the ensemble. The epoch tables of the Learner go to
stdout too (`--quiet` hides them). The packed file is made by tools/pack_imdb.py, which also reads it (`pack_tool`).
"""
import argparse, importlib.util, json, os, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch

from ulmfit_lit.data import LMDataLoader, SortedDL, TextBlock, TextDataLoaders
from ulmfit_lit.awd_lstm import AWD_LSTM, awd_lstm_lm_config, awd_lstm_clas_config
from ulmfit_lit.learner import accuracy, Perplexity, set_seed
from ulmfit_lit.language_model import language_model_learner
from ulmfit_lit.classifier import text_classifier_learner
from ulmfit_lit.recipe import GRADUAL_UNFREEZING

REPO = Path(__file__).resolve().parents[1]

SMALL_CONFIG = dict(emb_sz=32, n_hid=64, n_layers=2)


def pack_tool():
    "tools/pack_imdb.py, where the packed file is written and read (loaded from its file: tools/ holds scripts)."
    spec = importlib.util.spec_from_file_location('pack_imdb', REPO/'tools'/'pack_imdb.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


class Clock:
    "Wall time since the start, one printed line per stage, and every stage kept for the summary."
    def __init__(self, device: torch.device):
        self.t0 = self.t_last = time.time(); self.device, self.rows = device, []
    def stage(self, name: str, **metrics) -> float:
        "Close the stage `name` now: print its seconds, the elapsed time and `metrics`; return its seconds."
        if self.device.type == 'cuda': torch.cuda.synchronize(self.device)
        now = time.time(); secs = now - self.t_last; self.t_last = now
        self.rows.append(dict(stage=name, secs=secs, elapsed=now - self.t0, **metrics))
        shown = '  '.join(f'{k} {v:.4f}' if isinstance(v, float) else f'{k} {v}' for k, v in metrics.items())
        print(f"[stage] {name:<34} {secs:7.1f} s   elapsed {now - self.t0:7.1f} s   {shown}", flush=True)
        return secs
    @property
    def elapsed(self) -> float: return time.time() - self.t0


def subset(data: dict, n_per_split: int | None, seed: int) -> np.ndarray:
    "Indices of the documents to use: all of them, or `n_per_split` drawn at random from each split (--small)."
    if n_per_split is None: return np.arange(len(data['split']))
    rng = np.random.default_rng(seed)
    parts = [np.flatnonzero(data['split'] == s) for s in range(len(data['meta']['splits']))]
    return np.sort(np.concatenate([rng.permutation(p)[:n_per_split] for p in parts]))


def lm_loaders(store, docs: np.ndarray, vocab, bs: int, valid_pct: float, backwards: bool, device, seed: int):
    "Language-model loaders over `docs`, a random `valid_pct` of them held out for validation."
    rng = np.random.default_rng(seed)
    docs = rng.permutation(docs)
    n_valid = max(1, int(round(valid_pct * len(docs))))
    valid, train = np.sort(docs[:n_valid]), np.sort(docs[n_valid:])
    val_bs = min(bs, max(1, int(np.diff(store.offsets)[valid].sum()) // (2 * 72)))   # a tiny held-out set: fewer streams
    return TextDataLoaders(LMDataLoader(store, bs=bs, shuffle=True, doc_idxs=train, backwards=backwards, seed=seed),
                           LMDataLoader(store, bs=val_bs, doc_idxs=valid, backwards=backwards),
                           vocab, None, text_block=TextBlock(is_lm=True, backwards=backwards), device=device)


def clas_loaders(store, data: dict, train: np.ndarray, valid: np.ndarray, bs: int, backwards: bool, device, seed: int):
    "Classifier loaders: shuffled length-sorted batches of `train`, the `valid` reviews sorted for validation."
    labels = data['label'].astype(np.int64)
    return TextDataLoaders(SortedDL(store, labels[train], bs=bs, shuffle=True, doc_idxs=train, backwards=backwards, seed=seed),
                           sorted_loader(store, data, valid, bs, backwards),
                           data['meta']['vocab'], list(data['meta']['categories']),
                           text_block=TextBlock(backwards=backwards), device=device)


def sorted_loader(store, data: dict, docs: np.ndarray, bs: int, backwards: bool) -> SortedDL:
    "Length-sorted batches of `docs` with their labels, twice the training batch size (no gradients to keep)."
    return SortedDL(store, data['label'][docs].astype(np.int64), bs=2 * bs, doc_idxs=docs, backwards=backwards)


def set_precision(learn, precision: str):
    "fp32, fp16 (autocast + GradScaler) or bf16 (autocast) for `learn`."
    if precision == 'fp16': learn.to_fp16()
    elif precision == 'bf16': learn.to_bf16()
    return learn


def run_direction(direction: str, data: dict, store, docs: np.ndarray, a, clock: Clock, device, path: Path):
    "Language model then classifier for one direction; the classifier's test probabilities and targets."
    bwd = direction == 'bwd'
    lm_config = dict(awd_lstm_lm_config, **(SMALL_CONFIG if a.small else {}))
    clas_config = dict(awd_lstm_clas_config, **(SMALL_CONFIG if a.small else {}))
    set_seed(a.seed)
    dls_lm = lm_loaders(store, docs, data['meta']['vocab'], a.lm_bs, a.lm_valid_pct, bwd, device, a.seed)
    learn = language_model_learner(dls_lm, AWD_LSTM, config=lm_config, drop_mult=a.lm_drop_mult, backwards=bwd,
                                   pretrained=False, metrics=[accuracy, Perplexity()], path=path, quiet=a.quiet)
    set_precision(learn, a.precision)
    clock.stage(f'{direction} LM ready ({len(dls_lm.train)} batches/ep)')
    learn.fit_one_cycle(a.lm_epochs, a.lm_lr)
    _, val_loss, lm_acc, ppl = learn.recorder.values[-1]
    clock.stage(f'{direction} LM {a.lm_epochs} epoch(s)', lm_accuracy=float(lm_acc), perplexity=float(ppl))
    learn.save_encoder(f'{direction}_enc')
    del learn, dls_lm
    if device.type == 'cuda': torch.cuda.empty_cache()

    split = data['split'][docs]
    train, test = docs[split == 0], docs[split == 1]
    valid = test                       # fastai's tutorial validates every epoch on the whole test set
    if a.stage_valid_docs and a.stage_valid_docs < len(test):
        valid = np.sort(np.random.default_rng(a.seed).permutation(test)[:a.stage_valid_docs])
    dls = clas_loaders(store, data, train, valid, a.clas_bs, bwd, device, a.seed)
    learn = text_classifier_learner(dls, AWD_LSTM, config=clas_config, drop_mult=a.clas_drop_mult, backwards=bwd,
                                    pretrained=False, metrics=accuracy, path=path, quiet=a.quiet)
    learn.load_encoder(f'{direction}_enc')
    set_precision(learn, a.precision)
    lr = a.clas_lr
    for i, (group, share) in enumerate(GRADUAL_UNFREEZING):  # as `recipe.train_classifier` runs the stages
        if -group >= learn.n_groups: continue                 # a smaller model has fewer groups to unfreeze
        epochs = a.clas_final_epochs if group == 0 else 1
        stage_lr = lr * share if group == -1 else slice(lr * share / 2.6**4, lr * share)
        learn.freeze_to(group)
        learn.fit_one_cycle(epochs, stage_lr)
        what = 'unfreeze' if group == 0 else f'freeze_to({group})'
        clock.stage(f'{direction} clas {i + 1}: {what}, {epochs} ep', accuracy=float(learn.recorder.values[-1][2]),
                    on=f'{len(valid)} test docs')
    probs, targs = learn.get_preds(dl=sorted_loader(store, data, test, a.clas_bs, bwd).to(device))
    acc = float((probs.argmax(-1) == targs).float().mean())
    clock.stage(f'{direction} clas test predictions', accuracy=acc, on=f'{len(test)} test docs')
    del learn, dls
    if device.type == 'cuda': torch.cuda.empty_cache()
    return probs, targs, acc


def save_probs(folder: Path, direction: str, probs: torch.Tensor, targs: torch.Tensor) -> Path:
    "Keep one direction's test probabilities and targets (length-sorted test order), for an ensemble in a later run."
    folder.mkdir(parents=True, exist_ok=True)
    out = folder/f'{direction}_test_probs.npz'
    tmp = folder/f'.{direction}_test_probs.tmp.npz'
    np.savez(tmp, probs=probs.float().numpy(), targets=targs.numpy())
    os.replace(tmp, out)
    return out


def load_probs(folder: Path, direction: str) -> tuple[torch.Tensor, torch.Tensor]:
    "The probabilities and targets written by `save_probs`."
    with np.load(folder/f'{direction}_test_probs.npz', allow_pickle=False) as z:
        return torch.from_numpy(z['probs']), torch.from_numpy(z['targets'])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', default=str(REPO/'.gpu'/'imdb_ids.npz.xz'), help='packed IMDb (tools/pack_imdb.py)')
    ap.add_argument('--out', help='folder for the encoders (default: a new temporary folder)')
    ap.add_argument('--device', help='cuda or cpu (default: cuda when there is one)')
    ap.add_argument('--precision', choices=['fp32', 'fp16', 'bf16'], help='default bf16 on CUDA, fp32 on CPU')
    ap.add_argument('--directions', default='fwd,bwd', help='fwd, bwd or fwd,bwd (default); the ensemble needs both')
    ap.add_argument('--lm-epochs', type=int, default=2); ap.add_argument('--lm-lr', type=float, default=5e-3)
    ap.add_argument('--lm-bs', type=int, default=128); ap.add_argument('--lm-drop-mult', type=float, default=0.3)
    ap.add_argument('--lm-valid-pct', type=float, default=0.01, help='reviews held out of the LM (default 1%%)')
    ap.add_argument('--clas-bs', type=int, default=64); ap.add_argument('--clas-lr', type=float, default=2e-2)
    ap.add_argument('--clas-final-epochs', type=int, default=2, help='epochs of the last, unfrozen stage (default 2)')
    ap.add_argument('--clas-drop-mult', type=float, default=0.5)
    ap.add_argument('--stage-valid-docs', type=int, default=None,
                    help='validate the classifier stages on this many random test reviews (default: all); the final '
                         'test accuracy and the ensemble always use every test review')
    ap.add_argument('--budget', type=float, help='seconds: skip the backward direction if it would not end in time')
    ap.add_argument('--small', action='store_true',
                    help='smoke test: --small-docs reviews per split, a tiny model, 1 epoch per stage, bs 16')
    ap.add_argument('--small-docs', type=int, default=150, help='reviews per split with --small (default 150)')
    ap.add_argument('--probs-dir', help='write each direction\'s test probabilities here ({fwd,bwd}_test_probs.npz)')
    ap.add_argument('--prior-probs', help='a folder with the other direction\'s {fwd,bwd}_test_probs.npz from an '
                    'earlier run (same packed file): the ensemble then uses it')
    ap.add_argument('--seed', type=int, default=42)
    ap.add_argument('--json', help='also write the stage rows to this file')
    ap.add_argument('--quiet', action='store_true', help="hide the Learner's epoch tables")
    a = ap.parse_args(argv)
    device = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    a.precision = a.precision or ('bf16' if device.type == 'cuda' else 'fp32')
    if a.small: a.lm_epochs, a.clas_final_epochs, a.lm_bs, a.clas_bs = 1, 1, 16, 16
    directions = [d for d in a.directions.split(',') if d]
    if not directions or set(directions) - {'fwd', 'bwd'}: sys.exit(f"--directions takes fwd and/or bwd, not {a.directions!r}")
    path = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix='imdb_recipe_'))
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'
    print(f"# device {name}, {a.precision}; torch {torch.__version__}; LM {a.lm_epochs} ep bs {a.lm_bs} lr {a.lm_lr} "
          f"drop_mult {a.lm_drop_mult}; classifier bs {a.clas_bs} lr {a.clas_lr}, final {a.clas_final_epochs} ep; "
          f"models in {path}", flush=True)

    clock = Clock(device)
    pack = pack_tool()
    data = pack.load_packed(a.data)
    store = pack.store_of(data)
    docs = subset(data, a.small_docs if a.small else None, a.seed)
    n_tok = int(np.diff(data['offsets'])[docs].sum())
    clock.stage(f'load packed ids ({len(docs):,} docs)', tokens=f'{n_tok:,}')

    results = {}
    for k, direction in enumerate(directions):
        if k > 0 and a.budget is not None:
            per_dir = clock.elapsed - clock.rows[0]['secs']             # the first direction's time, loading excluded
            if clock.elapsed + per_dir > a.budget:
                print(f"[skip] {direction}: {clock.elapsed:.0f} s elapsed + ~{per_dir:.0f} s for another direction "
                      f"> budget {a.budget:.0f} s", flush=True)
                break
        results[direction] = run_direction(direction, data, store, docs, a, clock, device, path)
        if a.probs_dir: save_probs(Path(a.probs_dir), direction, *results[direction][:2])
    earlier = {}
    if a.prior_probs:        # the other direction's test probabilities from an earlier run (another GPU session)
        for direction in ('fwd', 'bwd'):
            if direction not in results and (Path(a.prior_probs)/f'{direction}_test_probs.npz').exists():
                earlier[direction] = load_probs(Path(a.prior_probs), direction)
                print(f"# {direction} test probabilities from {a.prior_probs} (an earlier run)", flush=True)
    both = {**{d: r[:2] for d, r in results.items()}, **earlier}
    if len(both) == 2:
        (pf, tf), (pb, tb) = both['fwd'], both['bwd']
        if not torch.equal(tf, tb): raise RuntimeError("the two directions' test sets are in different orders")
        ens = float((((pf + pb) / 2).argmax(-1) == tf).float().mean())
        clock.stage('fwd+bwd ensemble' + (' (one from an earlier run)' if earlier else ''), accuracy=ens)
    print(f"\n{'stage':<36} {'seconds':>8} {'elapsed':>8}  result")
    for r in clock.rows:
        extra = '  '.join(f'{k} {v:.4f}' if isinstance(v, float) else f'{k} {v}' for k, v in r.items()
                          if k not in ('stage', 'secs', 'elapsed'))
        print(f"{r['stage']:<36} {r['secs']:8.1f} {r['elapsed']:8.1f}  {extra}")
    print(f"total {clock.elapsed:.1f} s on {name}")
    if a.json: Path(a.json).write_text(json.dumps(dict(args=vars(a), device=name, stages=clock.rows), indent=1))


if __name__ == '__main__':
    main()
