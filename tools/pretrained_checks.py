"""Check that the checksums written in the notebooks match the shipped language model archive.

`make pretrain` runs this after copying a new `imdb_lm.tgz` into the package. It prints the values that belong in
`PACKAGED_CHECKS` (nbs/12_download.ipynb) and `IMDB_LM_SHA256` (nbs/05_language_model.ipynb), and fails while they differ.
"""
import hashlib, sys, tarfile
from pathlib import Path

from ulmfit_lit.download import PACKAGED_CHECKS, URLs
from ulmfit_lit.language_model import IMDB_LM_SHA256

root = Path(__file__).resolve().parent.parent
archive = root/'ulmfit_lit'/'pretrained'/'imdb_lm.tgz'
sha = lambda b: hashlib.sha256(b).hexdigest()
want = {'archive': (archive.stat().st_size, sha(archive.read_bytes()))}
with tarfile.open(archive) as tar:
    for name in ('imdb_lm.pth', 'imdb_lm.pkl'):
        want[name] = sha(tar.extractfile(f'imdb_lm/{name}').read())
have = {'archive': PACKAGED_CHECKS.get(URLs.IMDB_LM), **IMDB_LM_SHA256}
print(f"PACKAGED_CHECKS[URLs.IMDB_LM] = {want['archive']}")
print(f"IMDB_LM_SHA256 = {{'imdb_lm.pth': '{want['imdb_lm.pth']}', 'imdb_lm.pkl': '{want['imdb_lm.pkl']}'}}")
bad = [k for k in want if tuple(have[k]) != tuple(want[k]) if k == 'archive'] + \
      [k for k in want if k != 'archive' and have[k] != want[k]]
if bad: sys.exit(f"These differ from the notebooks: {bad}. Paste the lines above into nbs/12 and nbs/05, then nbdev_export.")
print("checksums in the package match the archive")
