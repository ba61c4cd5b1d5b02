"""Check every link of the built site (`_docs/` by default): each relative link must name a file of the site and, when
it has a `#fragment`, an element of that page with that id. Links to this repository's source on GitHub must name a
file that exists here. Other external links are listed, not fetched (there is no network here).

    python tools/check_links.py [_docs]"""
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
REPO_BLOB = re.compile(r'https://github\.com/ulmfit-lit/ulmfit-lit/(?:blob|tree)/[^/]+/(?P<path>[^#?]*)')


class Page(HTMLParser):
    "The ids a page defines and the links it makes."
    def __init__(self):
        super().__init__()
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get('id'): self.ids.add(attrs['id'])
        if tag == 'a' and attrs.get('name'): self.ids.add(attrs['name'])
        for key in ('href', 'src'):
            if attrs.get(key): self.links.append(attrs[key])


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding='utf-8', errors='replace'))
    return page


def broken_links(site: Path) -> tuple[list[str], int]:
    "Every broken link of the site as 'page: link (why)', and the number of external links left unchecked."
    pages = {p: parse(p) for p in sorted(site.rglob('*.html'))}
    broken, external = [], 0
    for path, page in pages.items():
        where = path.relative_to(site)
        for link in page.links:
            if link.startswith(('mailto:', 'javascript:', 'data:')): continue
            blob = REPO_BLOB.match(link)
            if blob:
                if not (ROOT/unquote(blob['path'])).exists(): broken.append(f"{where}: {link} (no such file in the repository)")
                continue
            parts = urlsplit(link)
            if parts.scheme or parts.netloc:
                external += 1
                continue
            target = (path.parent/unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir(): target = target/'index.html'
            if not target.exists():
                broken.append(f"{where}: {link} (no file {target.relative_to(site.resolve()) if target.is_relative_to(site.resolve()) else target})")
                continue
            if parts.fragment and target.suffix == '.html':
                ids = pages[target].ids if target in pages else parse(target).ids
                if unquote(parts.fragment) not in ids: broken.append(f"{where}: {link} (no id {parts.fragment!r} on that page)")
    return broken, external


if __name__ == '__main__':
    site = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT/'_docs').resolve()
    if not site.is_dir(): sys.exit(f"no site at {site}: build it first with `make docs`")
    broken, external = broken_links(site)
    for line in broken: print(line)
    n_pages = len(list(site.rglob('*.html')))
    print(f"{len(broken)} broken link(s) in {n_pages} pages; {external} external link(s) not fetched (no network)")
    sys.exit(1 if broken else 0)
