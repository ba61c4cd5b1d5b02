"""The demo's three pipelines with several seeds on the IMDb sample's 200 validation reviews: mean and spread.

    python bench/demo_seeds.py [--seeds 1 2 3] [--no-random]

Writes measurements.json['demo_seeds'] (chapter 07 shows it). Asserts nothing."""
import argparse, contextlib, datetime, io, json, sys, time
from pathlib import Path

from ulmfit_lit.cli import run_demo

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--seeds', type=int, nargs='+', default=[1, 2, 3]); a = p.parse_args()
    runs = []
    for seed in a.seeds:
        t = time.time()
        with contextlib.redirect_stdout(sys.stderr): res = run_demo(seed=seed, quiet=True, out=io.StringIO())
        pre, rand, bow = res.values()
        runs.append(dict(seed=seed, pretrained=round(pre, 3), random_weights=round(rand, 3), bag_of_words=round(bow, 3),
                         seconds=round(time.time() - t)))
        print(json.dumps(runs[-1]), flush=True)
    m = Path(__file__).parent.parent/'measurements.json'
    data = json.loads(m.read_text()) if m.exists() else {}
    data['demo_seeds'] = dict(date=str(datetime.date.today()), command='python bench/demo_seeds.py', runs=runs)
    m.write_text(json.dumps(data, indent=1))

if __name__ == '__main__': main()
