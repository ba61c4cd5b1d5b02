"""A reader's check of the committed pages (the notebooks in nbs/): it fails when a page shows an error, an empty
output (a progress bar that left nothing, a blank stream), a word from outside the course (internal names a reader
cannot know), a speed figure typed into prose, or figures rendered from measurements.json that no longer match it.
Run by .ci/run; `python tools/check_pages.py` prints each problem with its page and cell.

Figures live in one file, measurements.json, written by the bench scripts and the recorded runs. A page shows them
through a cell marked `#| echo: false` that reads the file and returns a Markdown object; this check re-runs each such
cell and compares its Markdown with the committed output, so a page cannot keep a figure the file no longer holds."""
import ast, json, os, re, sys
from pathlib import Path

NBS = Path(__file__).resolve().parent.parent/'nbs'
BANNED = [r'CONVENTIONS\.md', r"the issue'?s?\b", r'\bthis task\b', r'\bthis session\b', r'200 MB budget',
          r'10x aim', r'\bDEVELOPERS\.md\b', r'\bthe CEO\b', r'reference README', r'shared[/ ]reference',
          r'\.\./shared\b', r"another person'?s\b", r'\bwe aimed\b', r'\bacceptance\b']

def _text(output: dict) -> str:
    if output['output_type'] == 'stream': return ''.join(output.get('text', ''))
    data = output.get('data', {})
    return ''.join(''.join(v) if isinstance(v, list) else str(v) for k, v in data.items() if k.startswith('text'))

# a speed figure in prose ("7.2x", "2×", "8 times faster", "474 tokens/s", "4,600 tokens a second", "17 ms") must come
# from measurements.json instead
SPEED_IN_PROSE = re.compile(r'\b\d[\d.,]*\s?[x×](?=\W|$)(?! ?\d)|\b\d[\d.,]* times (faster|slower)'
                            r'|\b\d[\d.,]* (tokens|words|texts|batches|reviews|steps)( ?/ ?s\b| a second| per second)'
                            r'|\b\d[\d.,]* ?ms\b')

def rendered_markdown(src: str, cwd: Path) -> str:
    "Run a figure cell's code from the notebook's folder and return the Markdown its last expression makes."
    from IPython.display import Markdown
    tree = ast.parse(src)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    scope, here = {'Markdown': Markdown}, os.getcwd()
    os.chdir(cwd)
    try:
        exec(compile(tree, '<cell>', 'exec'), scope)
        value = eval(compile(ast.Expression(last.value), '<cell>', 'eval'), scope) if last else None
    finally: os.chdir(here)
    return getattr(value, 'data', '') or ''

def is_figure_cell(cell) -> bool:
    src = ''.join(cell['source'])
    return cell['cell_type'] == 'code' and bool(re.search(r'^#\|\s*echo:\s*false', src, re.M)) and 'measurements.json' in src

def problems(nb_path: Path) -> list[str]:
    nb, found = json.loads(nb_path.read_text(encoding='utf-8')), []
    for i, cell in enumerate(nb['cells']):
        src = ''.join(cell['source'])
        where = f"{nb_path.name} cell {i}"
        for pat in BANNED:
            if re.search(pat, src, re.I): found.append(f"{where}: words from outside the course: {pat!r}")
        if cell['cell_type'] == 'markdown':
            for m in SPEED_IN_PROSE.finditer(src):
                found.append(f"{where}: a speed figure typed into prose ({m.group(0)!r}): render it from measurements.json")
        if is_figure_cell(cell):
            committed = [''.join(o['data']['text/markdown']) for o in cell.get('outputs', []) if 'text/markdown' in o.get('data', {})]
            try: now = rendered_markdown(src, nb_path.parent)
            except Exception as e: found.append(f"{where}: its figure cell fails on today's measurements.json ({e!r})"); continue
            if committed != [now]: found.append(f"{where}: figures differ from measurements.json: re-run the cell")
        for out in cell.get('outputs', []):
            if out['output_type'] == 'error': found.append(f"{where}: an error output ({out.get('ename')})")
            elif out['output_type'] == 'stream' and out.get('name') == 'stderr' and 'Traceback' in _text(out):
                found.append(f"{where}: a traceback on stderr")
            elif out['output_type'] in ('stream', 'display_data', 'execute_result'):
                data = out.get('data', {})
                if out['output_type'] == 'stream' and not _text(out).strip():
                    found.append(f"{where}: an empty output")
                elif data and set(data) <= {'text/html', 'text/plain'} and not _text(out).strip():
                    found.append(f"{where}: an empty output")
                elif 'text/html' in data and re.fullmatch(r'\s*(<[^>]*>\s*)*', ''.join(data['text/html'])):
                    found.append(f"{where}: an output of empty HTML (a progress bar that left nothing)")
    return found

if __name__ == '__main__':
    all_found = [p for nb in sorted(NBS.glob('*.ipynb')) for p in problems(nb)]
    for p in all_found: print(p)
    print(f"{len(all_found)} problem(s) in {len(list(NBS.glob('*.ipynb')))} pages")
    sys.exit(1 if all_found else 0)
