"""Build the documentation site offline into _docs/.

nbdev processes the notebooks (show_doc, hidden cells, exports) into _proc/, exactly as `nbdev_docs` does before it
calls Quarto; then the pure-Python `smalldocs` builder renders _proc/ with the same _quarto.yml. Users who have
Quarto can run `nbdev_docs` instead and get the same site from the same files.
"""
import shutil
import subprocess
import sys
from pathlib import Path

from nbdev.config import get_config
from nbdev.quarto import nbdev_sidebar, refresh_quarto_yml
from nbdev.serve import proc_nbs
import ast
import json
import re
import nbdev.processors as processors


_nbdev_do_eval = processors._do_eval

def _do_eval(cell):
    """nbdev re-runs, for the docs, every cell that holds an import. A demo cell that imports something *and* uses
    variables of earlier demo cells then fails, since those cells are not re-run. We re-run export and show_doc cells
    as nbdev does, but import cells only when they hold nothing but imports."""
    res = _nbdev_do_eval(cell)
    if not res or cell.directives_.keys() & {'export', 'exports', 'exporti', 'exec_doc'}: return res
    trees = cell.parsed_()
    if all(isinstance(t, (ast.Import, ast.ImportFrom)) for t in trees): return True
    return processors._show_docs(trees) or None

processors._do_eval = _do_eval


def output_files(proc: Path) -> dict[str, str]:
    "Each notebook's page name as Quarto writes it: the `output-file` nbdev puts in its front matter (01_data -> data)."
    names = {}
    for nb in proc.glob('*.ipynb'):
        first = json.loads(nb.read_text(encoding='utf-8'))['cells'][0]
        m = re.search(r'^output-file:\s*(\S+)', ''.join(first['source']), re.M)
        if m: names[nb.stem] = m.group(1)
    return names


def name_pages(site: Path, proc: Path, doc_url: str):
    """smalldocs names a page after its notebook (01_tokenize.html); Quarto uses the `output-file` (tokenize.html),
    which is what nbdev's links to documented names point at, under the site's address. Rename the pages as Quarto
    does and make every link between them relative, so the site works from any folder, a file:// path included."""
    names = output_files(proc)
    for stem, out in names.items():
        if (site/f'{stem}.html').exists(): (site/f'{stem}.html').rename(site/out)
    page_link = re.compile(r'(?<=["\'/(])(' + '|'.join(map(re.escape, names)) + r')\.(?:html|ipynb)(?=[#"\')])') if names else None
    for f in list(site.rglob('*.html')) + list(site.rglob('*.json')) + list(site.rglob('*.xml')):
        text = f.read_text(encoding='utf-8')
        new = text.replace(doc_url, '')
        if page_link: new = page_link.sub(lambda m: names[m.group(1)], new)
        if new != text: f.write_text(new, encoding='utf-8')


def main():
    cfg = get_config()
    root = cfg.config_path
    refresh_quarto_yml()                      # nbs/nbdev.yml from settings.ini
    nbdev_sidebar()                           # nbs/sidebar.yml listing the chapters
    proc = root/'_proc'
    if proc.exists(): shutil.rmtree(proc)
    proc_nbs(path=str(cfg.nbs_path), n_workers=1, force=True)
    for name in ('nbdev.yml', 'sidebar.yml'):  # proc_nbs copies the folder; make sure the metadata files came along
        src = cfg.nbs_path/name
        if src.exists(): shutil.copy(src, proc/name)
    smalldocs = Path(sys.executable).parent/'smalldocs'
    subprocess.run([str(smalldocs if smalldocs.exists() else 'smalldocs'), 'render', '--quiet', str(proc)], check=True)
    site = proc/cfg.doc_path.name             # nbdev.yml sets the output-dir to doc_path (_docs)
    if not site.exists(): sys.exit(f'smalldocs wrote no {site}')
    name_pages(site, proc, f"{cfg.doc_host}{cfg.doc_baseurl}".rstrip('/') + '/')
    out = root/cfg.doc_path.name
    if out.exists(): shutil.rmtree(out)
    shutil.move(str(site), str(out))
    print(f'site written to {out} ({len(list(out.rglob("*.html")))} pages)')


if __name__ == '__main__':
    main()
