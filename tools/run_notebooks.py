"""Run chapters in place so their pages show today's outputs: `python tools/run_notebooks.py nbs/01_tokenize.ipynb ...`.

Each notebook runs top to bottom in a fresh kernel from its own folder, as `nbdev_test` runs it. Cells flagged with a
test flag of settings.ini (`slow`, `gpu`, `fullimdb`) are skipped and keep their committed outputs, which come from a
real run; `--flags slow fullimdb` runs those too. A cell that fails stops its notebook with the error shown, and the
notebook file is left as it was. The ULMFIT_LIT_HOME of the run is the Makefile's test home unless one is set.
"""
import argparse
import configparser
import os
import re
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def test_flags() -> list[str]:
    "The cell flags that `make test` skips, from settings.ini."
    cfg = configparser.ConfigParser()
    cfg.read(ROOT/'settings.ini')
    return cfg['DEFAULT'].get('tst_flags', '').split()


def cell_flags(src: str) -> set[str]:
    "The `#| flag` directives of a code cell."
    return {m.group(1) for m in re.finditer(r'^#\|\s*(\w+)\s*$', src, re.M)}


def run(nb_path: Path, run_flags: set[str], timeout: int) -> float:
    "Execute `nb_path` in place, skipping flagged cells not in `run_flags`; return the seconds it took."
    nb = nbformat.read(nb_path, as_version=4)
    skip = set(test_flags()) - run_flags
    client = NotebookClient(nb, timeout=timeout, kernel_name='python3', resources={'metadata': {'path': str(nb_path.parent)}})
    start = time.time()
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != 'code': continue
            if cell_flags(cell.source) & skip: continue
            client.execute_cell(cell, i)
            # a live widget is only a text repr once saved (its state is not kept): the page keeps no output for it
            cell.outputs = [o for o in cell.outputs if 'application/vnd.jupyter.widget-view+json' not in o.get('data', {})]
    nbformat.write(nb, nb_path)
    return time.time() - start


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('notebooks', nargs='+', type=Path)
    p.add_argument('--flags', nargs='*', default=[], help='flagged cells to run as well (e.g. slow fullimdb)')
    p.add_argument('--timeout', type=int, default=3600, help='seconds one cell may take')
    args = p.parse_args()
    os.environ.setdefault('ULMFIT_LIT_HOME', str(ROOT/'.test_home'))
    for nb in args.notebooks:
        secs = run(nb, set(args.flags), args.timeout)
        print(f'{nb}: {secs:.0f} s', flush=True)


if __name__ == '__main__':
    main()
