"""A reader's check of the committed pages (the notebooks in nbs/): it fails when a page shows an error, an empty
output (a progress bar that left nothing, a blank stream), a word from outside the course (internal names a reader
cannot know), a speed figure typed into prose, or figures rendered from measurements.json that no longer match it.
Run by .ci/run; `python tools/check_pages.py` prints each problem with its page and cell.

Figures live in one file, measurements.json, written by the bench/ and experiments/ scripts and the recorded runs. A
page shows them through a cell marked `#| echo: false` that reads the file and returns a Markdown object; this check
re-runs each such cell and compares its Markdown with the committed output, so a page cannot keep a figure the file no
longer holds."""
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

# what a reader should never see on a page: paths of the machine the page was run on, Python's raw reprs of objects
# (a widget printed as text, an open file, an address), floats printed with every digit
MACHINE_PATH = re.compile(r'(?<![\w.])(/root/|/tmp/|/work/|/home/\w+/|/private/var/|[A-Z]:\\Users\\)')
RAW_REPR = re.compile(r'\b[VH]Box\(|\b\w*Progress\(|<_io\.\w+|\bobject at 0x[0-9a-f]+|<function \w+ at 0x|<bound method ')
LONG_FLOAT = re.compile(r'(?<![\w.])\d+\.\d{7,}(?![\d])')
RICH = {'text/html', 'text/markdown', 'image/png', 'image/svg+xml'}

def documented_names(cell) -> list[str]:
    "The names a cell puts on its page as doc entries: public names of an export cell, and explicit show_doc calls."
    src = ''.join(cell['source'])
    if cell['cell_type'] != 'code': return []
    names = re.findall(r'^\s*show_doc\(([\w.]+)', src, re.M)
    if re.search(r'^#\|\s*exports?\b', src, re.M):
        try: tree = ast.parse('\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!'))))
        except SyntaxError: return names
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and not node.name.startswith('_'):
                is_patch = any(getattr(d.func if isinstance(d, ast.Call) else d, 'id', None) == 'patch' for d in node.decorator_list)
                owner = node.args.args[0].annotation if is_patch and node.args.args else None
                names.append(f"{ast.unparse(owner)}.{node.name}" if owner is not None else node.name)
    return names

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

def problems(nb_path: Path, documented: dict | None = None) -> list[str]:
    "Every problem of one page; `documented` maps names to the page that documents them, across pages."
    nb, found = json.loads(nb_path.read_text(encoding='utf-8')), []
    documented = {} if documented is None else documented
    for i, cell in enumerate(nb['cells']):
        src = ''.join(cell['source'])
        where = f"{nb_path.name} cell {i}"
        for name in documented_names(cell):
            if name in documented: found.append(f"{where}: {name} is documented twice (also {documented[name]})")
            else: documented[name] = where
        if cell['cell_type'] == 'markdown' and MACHINE_PATH.search(src):
            found.append(f"{where}: a path of one machine ({MACHINE_PATH.search(src).group(0)!r})")
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
                data, text = out.get('data', {}), _text(out)
                if MACHINE_PATH.search(text): found.append(f"{where}: an output shows a path of one machine ({MACHINE_PATH.search(text).group(0)!r})")
                if not (set(data) & RICH) and RAW_REPR.search(text):
                    found.append(f"{where}: an output is a raw repr ({RAW_REPR.search(text).group(0)!r}): hide it or print something readable")
                if LONG_FLOAT.search(text): found.append(f"{where}: an unformatted float ({LONG_FLOAT.search(text).group(0)}): round it")
                if out['output_type'] == 'stream' and not _text(out).strip():
                    found.append(f"{where}: an empty output")
                elif data and set(data) <= {'text/html', 'text/plain'} and not _text(out).strip():
                    found.append(f"{where}: an empty output")
                elif 'text/html' in data and re.fullmatch(r'\s*(<[^>]*>\s*)*', ''.join(data['text/html'])):
                    found.append(f"{where}: an output of empty HTML (a progress bar that left nothing)")
    return found

if __name__ == '__main__':
    documented = {}
    all_found = [p for nb in sorted(NBS.glob('*.ipynb')) for p in problems(nb, documented)]
    for p in all_found: print(p)
    print(f"{len(all_found)} problem(s) in {len(list(NBS.glob('*.ipynb')))} pages")
    sys.exit(1 if all_found else 0)
