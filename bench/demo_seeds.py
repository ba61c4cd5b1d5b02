"""The demo's pipelines with several seeds on the IMDb sample's 200 validation reviews: mean and spread.

    python bench/demo_seeds.py [--seeds 1 2 3] [--no-random] [--lm-epochs N]

`--no-random` skips the same pipeline from random weights, keeping the pretrained pipeline and the bag-of-words
baseline. `--lm-epochs N` fine-tunes the language model on the sample first (a frozen epoch, then N), as the demo
does not by default. Writes measurements.json['demo_seeds'], or ['demo_seeds_lm_ft'] with --lm-epochs (chapter 07
shows both). Asserts nothing."""
import argparse, contextlib, datetime, io, json, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import record

from ulmfit_lit.cli import run_demo, bow_baseline, dls_from_source
from ulmfit_lit.download import URLs, untar_data

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--seeds', type=int, nargs='+', default=[1, 2, 3])
    p.add_argument('--no-random', action='store_true', help='skip the pipeline from random weights')
    p.add_argument('--lm-epochs', type=int, default=None, help='fine-tune the LM on the sample first (default: no)')
    a = p.parse_args()
    runs = []
    for seed in a.seeds:
        t = time.time()
        with contextlib.redirect_stdout(sys.stderr):
            res = run_demo(lm_epochs=a.lm_epochs, seed=seed, quiet=True, out=io.StringIO(), compare=not a.no_random)
            run = dict(seed=seed, pretrained=round(list(res.values())[0], 3))
            if a.no_random:               # the baseline alone, on the demo's own split and vocab
                csv = untar_data(URLs.IMDB_SAMPLE)/'texts.csv'
                dls_lm = dls_from_source(csv, is_lm=True, bs=32)
                run['bag_of_words'] = round(bow_baseline(dls_from_source(csv, False, 32, text_vocab=dls_lm.vocab), seed=seed), 3)
            else: run.update(random_weights=round(list(res.values())[1], 3), bag_of_words=round(list(res.values())[2], 3))
        run['seconds'] = round(time.time() - t)
        runs.append(run)
        print(json.dumps(run), flush=True)
    section = 'demo_seeds' if a.lm_epochs is None else 'demo_seeds_lm_ft'
    record(section, dict(lm_epochs=a.lm_epochs, runs=runs))   # atomically, with the date, the command and the machine

if __name__ == '__main__': main()
