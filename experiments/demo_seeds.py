"""The demo's pipelines with several seeds on the IMDb sample's 200 validation reviews: mean and spread.

    python experiments/demo_seeds.py [--seeds 1 2 3] [--no-random] [--lm-epochs N] [--heldout 2000]

Each seed runs what `run_demo` runs (`ulmfit_pipeline` from the shipped language model, and `bow_baseline`), on the
demo's split and vocab (as `run_demo`: the language model's own words, or the sample's with --lm-epochs). `--no-random`
skips the same pipeline from random weights. `--lm-epochs N` fine-tunes the language model on the sample first (a
frozen epoch, then N), as the demo does not by default. `--heldout N` also
scores the pretrained classifier and the bag-of-words model of each seed on N reviews of the full IMDb's test set
that are not in the sample (a seeded random draw; needs `untar_data(URLs.IMDB)`): 200 reviews are a noisy yardstick,
N more are a steadier one. `seconds` is the time of the pipelines and the baseline, not of the held-out scoring.
Writes measurements.json['demo_seeds'], or ['demo_seeds_lm_ft'] with --lm-epochs (chapter 08 shows the first);
`--no-record` prints only. Asserts nothing."""
import argparse, contextlib, json, random, sys, tempfile, time
from pathlib import Path

import pandas as pd
import torch

from ulmfit_lit.awd_lstm import load_itos
from ulmfit_lit.baseline import BagOfWords, bow_baseline, loader_docs
from ulmfit_lit.download import URLs, untar_data
from ulmfit_lit.language_model import pretrained_files, resolve_pretrained
from ulmfit_lit.recipe import dls_from_source, model_configs, ulmfit_pipeline

from common import record_figures


def heldout_reviews(sample_texts: set, categories: list, n: int, seed: int = 0) -> tuple[list, torch.Tensor]:
    "`n` reviews of IMDb's test set that are not in the sample, drawn with `seed`: (texts, label ids in `categories`)."
    imdb = untar_data(URLs.IMDB)
    files = [(f, c) for c in categories for f in sorted((imdb/'test'/c[:3]).glob('*.txt'))]   # test/neg, test/pos
    random.Random(seed).shuffle(files)
    texts, labels = [], []
    for f, c in files:
        text = f.read_text()
        if text.strip() in sample_texts: continue           # the sample's 1,000 reviews come from IMDb too
        texts.append(text); labels.append(categories.index(c))
        if len(texts) == n: break
    return texts, torch.tensor(labels)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--seeds', type=int, nargs='+', default=[1, 2, 3])
    p.add_argument('--no-random', action='store_true', help='skip the pipeline from random weights')
    p.add_argument('--lm-epochs', type=int, default=None, help='fine-tune the LM on the sample first (default: no)')
    p.add_argument('--heldout', type=int, default=0, help='also score on this many IMDb test reviews not in the sample')
    p.add_argument('--no-record', action='store_true', help='print only; leave measurements.json alone')
    a = p.parse_args()
    csv = untar_data(URLs.IMDB_SAMPLE)/'texts.csv'
    name = resolve_pretrained('imdb', quiet=True)                               # run_demo's default
    dls_lm = dls_from_source(csv, is_lm=True, bs=32)                            # as run_demo makes them
    vocab = load_itos(pretrained_files(False, name)[1]) if a.lm_epochs is None else dls_lm.vocab
    dls = dls_from_source(csv, is_lm=False, bs=32, text_vocab=vocab)
    configs = model_configs(None, name)
    if a.heldout:
        texts, labels = heldout_reviews(set(t.strip() for t in pd.read_csv(csv).text), list(dls.vocab[1]), a.heldout)
        test_dl = dls.test_dl(texts)
        test_docs = [test_dl.doc(i) for i in range(len(texts))]               # test_dl keeps the texts' order
    runs = []
    for seed in a.seeds:
        t = time.time()
        with contextlib.redirect_stdout(sys.stderr):
            learn = ulmfit_pipeline(dls_lm, dls, Path(tempfile.mkdtemp(prefix='demo_seeds_')), configs, name,
                                    a.lm_epochs, seed=seed, quiet=True)
            run = dict(seed=seed, pretrained=round(float(learn.validate()[1]), 3))
            if not a.no_random:
                rand = ulmfit_pipeline(dls_lm, dls, Path(tempfile.mkdtemp(prefix='demo_seeds_')), configs, None,
                                       a.lm_epochs, seed=seed, quiet=True)
                run['random_weights'] = round(float(rand.validate()[1]), 3)
            run['bag_of_words'] = round(bow_baseline(dls, seed=seed), 3)
            run['seconds'] = round(time.time() - t)
            if a.heldout:
                probs = learn.get_preds(dl=test_dl)[0]
                run['heldout_pretrained'] = round(float((probs.argmax(1) == labels).float().mean()), 4)
                bow = BagOfWords(len(dls.vocab[0]), seed=seed)                     # bow_baseline's model, same seed
                bow.fit(loader_docs(dls.train), dls.train.labels)
                run['heldout_bag_of_words'] = round(float((bow.predict(test_docs) == labels).float().mean()), 4)
        runs.append(run)
        print(json.dumps(run), flush=True)
    figures = dict(lm_epochs=a.lm_epochs, pretrained=name, runs=runs)
    if a.heldout:
        figures['heldout'] = dict(n=len(labels), positive_share=round(float(labels.float().mean()), 4),
                                  source="IMDb test reviews not in the sample, drawn with seed 0")
    section = 'demo_seeds' if a.lm_epochs is None else 'demo_seeds_lm_ft'
    record_figures(section, figures, a)   # atomically, with the date, the command and the machine

if __name__ == '__main__': main()
