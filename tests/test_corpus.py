"""ulmfit_lit.corpus (appendix A): fastai's bulk tokenization doors (tokenize_texts, parallel_tokenize, tokenize_folder,
tokenize_files, tokenize_df, tokenize_csv, Tokenizer) on fastai's own cases and the IMDb sample, bad input, and the
token cache: reused, rebuilt when anything it depends on changes, never half-written, and placed by one rule."""
import ctypes
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import spacy
from spacy.symbols import ORTH

import ulmfit_lit
import ulmfit_lit.all as everything
from ulmfit_lit.corpus import (Tokenized, Tokenizer, fn_counter_pkl, fn_lengths_pkl, load_tokenized_csv,
                               parallel_tokenize, token_cache_dir, tokenize_csv, tokenize_df, tokenize_files,
                               tokenize_folder, tokenize_texts, tokenize_texts_to_store)
from ulmfit_lit.tokenize import (BaseTokenizer, Numericalize, TokenStore, apply_rules, defaults, lowercase, make_vocab,
                                 replace_space)

FIX = Path(__file__).parent/'fixtures'
PKG = Path(ulmfit_lit.__file__).parent


def load(name): return json.loads((FIX/name).read_text(encoding='utf-8'))
def unpickle(path): return pickle.loads(Path(path).read_bytes())


def plain_spacy():
    "spaCy as fastai uses it (lexical attributes on), to compare our piece-cached tokenizer with."
    nlp = spacy.blank('en')
    for w in defaults.text_spec_tok: nlp.tokenizer.add_special_case(w, [{ORTH: w}])
    return nlp.tokenizer


def write_corpus(folder, texts):
    "Reviews alternately in folder/neg and folder/pos, named by their index."
    for i, t in enumerate(texts):
        sub = folder/('pos' if i % 2 else 'neg'); sub.mkdir(parents=True, exist_ok=True)
        (sub/f'{i:04d}.txt').write_text(t, encoding='utf-8')


def prepare_texts(tmp):
    "fastai's test corpus: 15 short texts in folders a, b, c, the same texts in a DataFrame and in a CSV."
    path = tmp/'tmp'
    for d in 'abc':
        (path/d).mkdir(parents=True)
        for i in range(5): (path/d/f'text{i}.txt').write_text(f'This is an example of text {d} {i}')
    texts = [f'This is an example of text {d} {i}' for i in range(5) for d in 'abc']
    df = pd.DataFrame({'text': texts, 'label': list(range(15))}, columns=['text', 'label'])
    df.to_csv(tmp/'input.csv', index=False)
    return path, df, tmp/'input.csv'


def expected(d, i): return ['xxbos', 'xxmaj', 'this', 'is', 'an', 'example', 'of', 'text', d, str(i)]


# --- fastai's tokens, in bulk ------------------------------------------------------------------------------------------

@pytest.mark.parametrize('n_workers', [1, 2])
def test_synth_tokens_match_fastai(n_workers):
    texts = load('synth_texts.json')
    assert tokenize_texts(texts, n_workers=n_workers) == load('synth_tokens.json')


def test_imdb_sample_tokens_and_vocab_match_fastai(sample_df):
    tkd = tokenize_texts_to_store(list(sample_df.text), n_workers=2)
    assert tkd.token_lists() == load('imdb_sample_tokens.json')
    assert make_vocab(tkd.count()) == load('imdb_sample_vocab.json')
    assert make_vocab(tokenize_texts_to_store(load('synth_texts.json'), n_workers=1).count()) == load('synth_vocab.json')


def test_empty_and_whitespace_texts():
    assert tokenize_texts(['', ' ', '\n\n', 'Hi'], n_workers=1) == [['xxbos'], ['xxbos'], ['xxbos'], ['xxbos', 'xxmaj', 'hi']]
    assert tokenize_texts([], n_workers=2) == []
    tkd = tokenize_texts_to_store([''] * 5, n_workers=2)
    assert len(tkd) == 5 and tkd.store.lengths().tolist() == [1] * 5


def test_very_long_text(sample_df):
    text = ' '.join(sample_df.text[:20]) * 20   # about 500k characters in one document
    ours = tokenize_texts([text], n_workers=1)[0]
    ref = [replace_space(t.text) for t in plain_spacy()(apply_rules(text, defaults.text_proc_rules))]
    assert ours == ref and len(ours) > 50_000


def test_tokenized_numericalize_agrees_with_numericalize(tmp_path, sample_df):
    tkd = tokenize_texts_to_store(list(sample_df.text[:200]), n_workers=2)
    vocab = make_vocab(tkd.count())
    store, num = tkd.numericalize(vocab), Numericalize(vocab)
    assert store.ids.dtype == np.uint16 and len(store) == 200
    for i in (0, 57, 199): assert store[i].tolist() == num(tkd.tokens(i)).tolist()
    assert np.shares_memory(store[3], store.ids)
    store.save(tmp_path/'s'); loaded = TokenStore.load(tmp_path/'s')
    assert loaded.vocab == vocab and all((loaded[i] == store[i]).all() for i in range(200))
    assert tkd.count(range(50)) == Counter(t for i in range(50) for t in tkd.tokens(i))


def test_single_string_path_skips_replace_space():
    "fastai's Tokenizer on one string runs no post-rule: a token keeps its inner spaces (the bulk path joins them)."
    tkn = Tokenizer()
    ref = load('synth_tokens_transform.json')
    for t, r in zip(load('synth_texts.json'), ref): assert tkn(t) == r
    assert any('\n ' in tok for r in ref for tok in r)   # the fixture really exercises the difference


# --- parallel_tokenize ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('n_workers', [0, 2])
def test_parallel_tokenize_pairs(n_workers):
    res = parallel_tokenize(['0 1', '1 2'], rules=[], n_workers=n_workers)
    assert not isinstance(res, list) and iter(res) is res                         # a generator, as fastai's
    assert sorted(res) == [(0, ['0', '1']), (1, ['1', '2'])]
    res1 = parallel_tokenize(['0 1', '1 2'], tok=BaseTokenizer(), rules=[], n_workers=n_workers)
    assert list(res1) == [(0, ['0', '1']), (1, ['1', '2'])]


def test_parallel_tokenize_gives_fastai_tokens_in_order():
    texts = load('synth_texts.json')[:60]
    pairs = list(parallel_tokenize(texts, n_workers=2))
    assert [i for i, _ in pairs] == list(range(60))
    assert [t for _, t in pairs] == load('synth_tokens.json')[:60]


def test_parallel_tokenize_items_through_rules(tmp_path, sample_df):
    "Items that are not texts reach the rules as they are (fastai reads files with a first `Path.read_text` rule)."
    files = [tmp_path/f'{i}.txt' for i in range(4)]
    for f, t in zip(files, sample_df.text): f.write_text(t, encoding='utf-8')
    pairs = parallel_tokenize(files, rules=[Path.read_text, *defaults.text_proc_rules], n_workers=2)
    assert [t for _, t in pairs] == load('imdb_sample_tokens.json')[:4]


def test_parallel_tokenize_calls_setup_with_items_and_rules():
    class Recording(BaseTokenizer):
        def setup(self, items, rules): self.seen = (list(items), rules)
    tok, rules = Recording(), [str.lower]
    assert list(parallel_tokenize(['A b', 'C'], tok=tok, rules=rules, n_workers=0)) == [(0, ['a', 'b']), (1, ['c'])]
    assert tok.seen == (['A b', 'C'], rules)


# --- files: bad input ----------------------------------------------------------------------------------------------------

def test_non_utf8_file_is_named_in_the_error(tmp_path):
    good, bad = tmp_path/'good.txt', tmp_path/'bad.txt'
    good.write_text('Fine text.'); bad.write_bytes(b'caf\xe9 au lait')
    with pytest.raises(ValueError, match='bad.txt') as e: tokenize_files([good, bad], n_workers=1)
    assert 'utf-8' in str(e.value)
    with pytest.raises(ValueError, match='bad.txt'): tokenize_files([good, bad] * 30, n_workers=2)
    tkd = tokenize_files([good, bad], n_workers=1, errors='replace')
    assert tkd.tokens(1) == tokenize_texts(['caf\ufffd au lait'], n_workers=1)[0] and '\ufffd' in ''.join(tkd.tokens(1))
    assert tokenize_files([bad], n_workers=1, encoding='latin-1').tokens(0) == ['xxbos', 'café', 'au', 'lait']


def test_crlf_files_read_like_path_read_text(tmp_path):
    f = tmp_path/'a.txt'; f.write_bytes(b'One.\r\nTwo.\rThree.')
    assert tokenize_files([f], n_workers=1).tokens(0) == tokenize_texts([f.read_text()], n_workers=1)[0]


def test_tokenize_files_arguments(tmp_path):
    path, _, _ = prepare_texts(tmp_path)
    files = sorted(path.rglob('*.txt'))
    with pytest.raises(ValueError, match='path'): tokenize_files(files, output_dir=tmp_path/'o', n_workers=1)
    with pytest.raises(ValueError, match='not both'):
        tokenize_files(files, path, tmp_path/'o', cache_dir=tmp_path/'c', n_workers=1)
    names = [f'doc{k}.tok' for k in range(len(files))]
    tokenize_files(files, path, tmp_path/'o', output_names=names, n_workers=1)
    assert (tmp_path/'o'/'doc0.tok').read_text() == ' '.join(expected('a', 0))
    assert set(unpickle(tmp_path/'o'/fn_lengths_pkl)) == {str(f.relative_to(path)) for f in files}
    # our own uses are unchanged: no output folder, or our cache only
    tkd = tokenize_files(files, n_workers=1)
    assert tkd.names == [str(f) for f in files] and tkd.output_dir is None
    with pytest.raises(TypeError): tkd/'counter.pkl'
    tokenize_files(files, cache_dir=tmp_path/'c', n_workers=1)
    assert (tmp_path/'c'/'cache.json').exists() and not (tmp_path/'c'/fn_counter_pkl).exists()


# --- tokenize_folder, tokenize_files: fastai's outputs and our cache --------------------------------------------------

def test_fastai_integration_folder_files_texts_df(tmp_path):
    path, df, _ = prepare_texts(tmp_path)
    tkd = tokenize_folder(path, n_workers=1)
    outp = tmp_path/'tmp_tok'
    assert isinstance(tkd, Tokenized) and tkd.output_dir == outp and tkd/fn_counter_pkl == outp/'counter.pkl'
    for d in 'abc':
        for i in range(5): assert (outp/d/f'text{i}.txt').read_text() == ' '.join(expected(d, i))
    cnt_a = unpickle(outp/fn_counter_pkl)
    assert isinstance(cnt_a, Counter) and (cnt_a['this'], cnt_a['a'], cnt_a['0'], cnt_a['xxbos']) == (15, 5, 3, 15)
    assert unpickle(outp/fn_lengths_pkl) == {f'{d}/text{i}.txt': 10 for d in 'abc' for i in range(5)}
    files = sorted(path.rglob('*.txt'))
    back = tokenize_files(files, path, output_dir=path/'d', n_workers=1)
    for f in files: assert (path/'d'/f.relative_to(path)).read_text() == ' '.join(expected(f.parent.name, f.name[4]))
    assert back.names == [str(f.relative_to(path)) for f in files] and unpickle(path/'d'/fn_counter_pkl) == cnt_a
    out = tokenize_texts(df['text'].values, n_workers=1)
    assert out == [(outp/d/f'text{i}.txt').read_text().split(' ') for i in range(5) for d in 'abc']
    res, cnt_b = tokenize_df(df, text_cols='text', n_workers=1)
    assert list(res.columns) == ['label', 'text', 'text_length'] and list(res['label']) == list(range(15))
    assert list(res['text']) == out and cnt_b == cnt_a


def test_folder_cache_reused_and_rebuilt(tmp_path, sample_df):
    data = tmp_path/'reviews'; write_corpus(data, sample_df.text[:40])
    ref = load('imdb_sample_tokens.json')
    tkd = tokenize_folder(data, n_workers=2)
    cache = tmp_path/'reviews_tok'
    assert token_cache_dir(data) == cache and (cache/'cache.json').exists()   # fastai's {path}_tok, beside the data
    by_name = dict(zip(tkd.names, range(len(tkd))))
    for i in range(40): assert tkd.tokens(by_name[f"{'pos' if i % 2 else 'neg'}/{i:04d}.txt"]) == ref[i]
    stamp = (cache/'cache.json').stat().st_mtime_ns
    again = tokenize_folder(data, n_workers=2)
    assert (cache/'cache.json').stat().st_mtime_ns == stamp          # reused, not rewritten
    assert again.token_lists() == tkd.token_lists() and isinstance(again.store.ids, np.memmap)
    # a cache made by other rules is not trusted
    other = tokenize_folder(data, n_workers=1, rules=[lowercase])
    assert (cache/'cache.json').stat().st_mtime_ns != stamp and 'xxmaj' not in other.words
    back = tokenize_folder(data, n_workers=1)
    assert back.token_lists() == tkd.token_lists()
    # a changed file is noticed
    f = data/'neg'/'0000.txt'; f.write_text('Completely different now.')
    assert tokenize_folder(data, n_workers=1).tokens(by_name['neg/0000.txt']) == ['xxbos', 'xxmaj', 'completely', 'different', 'now', '.']


def test_folder_outputs_follow_the_cache(tmp_path):
    path, _, _ = prepare_texts(tmp_path)
    tokenize_folder(path, n_workers=1)
    tok_file, cache = tmp_path/'tmp_tok'/'a'/'text0.txt', tmp_path/'tmp_tok'/'cache.json'
    stamps = tok_file.stat().st_mtime_ns, cache.stat().st_mtime_ns
    time.sleep(0.01)
    tokenize_folder(path, n_workers=1)                                  # reused: nothing rewritten
    assert (tok_file.stat().st_mtime_ns, cache.stat().st_mtime_ns) == stamps
    tokenize_folder(path, n_workers=1, skip_if_exists=False)            # forced rebuild
    assert cache.stat().st_mtime_ns != stamps[1] and tok_file.read_text() == ' '.join(expected('a', 0))
    tkd = tokenize_folder(path, n_workers=1, rules=[])                  # other rules: new tokens in the files too
    assert tok_file.read_text() == 'This is an example of text a 0' and tkd.tokens(0)[0] == 'This'
    assert unpickle(tmp_path/'tmp_tok'/fn_counter_pkl)['This'] == 15
    (path/'b'/'text1.txt').write_text('Completely different now.')        # a changed input file is noticed
    tokenize_folder(path, n_workers=1)
    assert (tmp_path/'tmp_tok'/'b'/'text1.txt').read_text() == 'xxbos xxmaj completely different now .'
    assert unpickle(tmp_path/'tmp_tok'/fn_lengths_pkl)['b/text1.txt'] == 6
    (tmp_path/'tmp_tok'/fn_counter_pkl).unlink()                        # fastai's files lost: written again
    tokenize_folder(path, n_workers=1)
    assert unpickle(tmp_path/'tmp_tok'/fn_counter_pkl)['completely'] == 1


def test_interrupted_run_leaves_no_trusted_cache(tmp_path, sample_df):
    data = tmp_path/'reviews'; write_corpus(data, sample_df.text[:30])
    def boom(t):
        if 'xxbos' in t and len(t) % 7 == 3: raise RuntimeError('interrupted')
        return t
    rules = list(defaults.text_proc_rules) + [boom]
    with pytest.raises(RuntimeError): tokenize_folder(data, n_workers=2, rules=rules)
    assert not (tmp_path/'reviews_tok').exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.reviews_tok')]   # temporary folder cleaned
    # a half-written cache (no completion marker), or one whose arrays were cut short, is rebuilt
    tkd = tokenize_folder(data, n_workers=1)
    cache = tmp_path/'reviews_tok'
    (cache/'cache.json').unlink()
    assert tokenize_folder(data, n_workers=1).token_lists() == tkd.token_lists()
    np.save(cache/'ids.npy', np.zeros(3, dtype=np.uint32))
    assert tokenize_folder(data, n_workers=1).token_lists() == tkd.token_lists()


# --- tokenize_df, tokenize_csv, load_tokenized_csv ---------------------------------------------------------------------

def test_tokenize_df_and_csv(tmp_path, sample_df):
    df = pd.DataFrame({'label': ['a', 'b', 'c'], 'text': sample_df.text[:3]})
    res, cnt = tokenize_df(df, 'text', n_workers=1)
    ref = load('imdb_sample_tokens.json')[:3]
    assert list(res.text) == ref and list(res.label) == ['a', 'b', 'c'] and list(res.text_length) == [len(r) for r in ref]
    assert cnt == Counter(t for r in ref for t in r)
    two = pd.DataFrame({'t1': ['Hello'], 't2': ['World']})
    assert tokenize_df(two, ['t1', 't2'], n_workers=1)[0].text[0] == ['xxbos', 'xxfld', '1', 'xxmaj', 'hello', 'xxfld', '2', 'xxmaj', 'world']
    df.to_csv(tmp_path/'r.csv', index=False)
    tkd = tokenize_csv(tmp_path/'r.csv', 'text', n_workers=1)
    assert tkd.token_lists() == ref and (tmp_path/'r_tok'/'cache.json').exists()


def test_fastai_integration_csv(tmp_path):
    _, df, csv_fname = prepare_texts(tmp_path)
    out, cnt = tokenize_df(df, text_cols='text', n_workers=1)
    out_fname = tmp_path/'output.csv'
    tkd = tokenize_csv(csv_fname, text_cols='text', outname=out_fname, n_workers=1)
    assert isinstance(tkd, Tokenized) and tkd.token_lists() == list(out.text)
    assert out_fname.read_text().splitlines()[:2] == ['label,text,text_length', '0,xxbos xxmaj this is an example of text a 0,10']
    back, back_cnt = load_tokenized_csv(out_fname)
    assert list(back.columns) == list(out.columns)
    for col in out.columns: assert list(back[col]) == list(out[col])
    assert back_cnt == cnt and unpickle(tmp_path/'output.pkl') == cnt


def test_csv_default_names_cache_and_rewrite(tmp_path, sample_df):
    sample_df[:20].to_csv(tmp_path/'r.csv', index=False)
    ref = load('imdb_sample_tokens.json')[:20]
    assert tokenize_csv(tmp_path/'r.csv', 'text', n_workers=1).token_lists() == ref
    assert (tmp_path/'r_tok'/'cache.json').exists() and (tmp_path/'r_tok.csv').exists() and (tmp_path/'r_tok.pkl').exists()
    df, cnt = load_tokenized_csv(tmp_path/'r_tok.csv')
    assert list(df.text) == ref and list(df.label) == list(sample_df.label[:20]) and list(df.is_valid) == list(sample_df.is_valid[:20])
    assert list(df.text_length) == [len(r) for r in ref] and cnt == Counter(t for r in ref for t in r)
    (tmp_path/'r_tok.csv').unlink()                                    # lost output: written again from the cache
    stamp = (tmp_path/'r_tok'/'cache.json').stat().st_mtime_ns
    tokenize_csv(tmp_path/'r.csv', 'text', n_workers=1)
    assert list(load_tokenized_csv(tmp_path/'r_tok.csv')[0].text) == ref
    assert (tmp_path/'r_tok'/'cache.json').stat().st_mtime_ns == stamp


def test_csv_two_text_columns_and_empty_tokens(tmp_path):
    pd.DataFrame({'title': ['Great', 'AWFUL'], 'review': ['Loved it.', 'hated it'], 'y': [1, 0]}).to_csv(tmp_path/'t.csv', index=False)
    tokenize_csv(tmp_path/'t.csv', ['title', 'review'], n_workers=1)
    df, _ = load_tokenized_csv(tmp_path/'t_tok.csv')
    assert list(df.columns) == ['y', 'text', 'text_length']
    assert df.text[1] == ['xxbos', 'xxfld', '1', 'xxup', 'awful', 'xxfld', '2', 'hated', 'it']
    # an empty cell is read as NaN and tokenized as 'nan' (fastai's `astype(str)`): a token, not a missing value
    pd.DataFrame({'text': ['', 'Null', 'a b']}).to_csv(tmp_path/'e.csv', index=False)
    tokenize_csv(tmp_path/'e.csv', 'text', rules=[str.lower], n_workers=1)   # 'null' alone: pandas' NA word
    df, cnt = load_tokenized_csv(tmp_path/'e_tok.csv')
    assert list(df.text) == [['nan'], ['null'], ['a', 'b']] and cnt == Counter(nan=1, null=1, a=1, b=1)
    class NoTokens:
        def __call__(self, items): return ([] for _ in items)
    tokenize_csv(tmp_path/'e.csv', 'text', outname=tmp_path/'none.csv', tok=NoTokens(), n_workers=1)
    df, cnt = load_tokenized_csv(tmp_path/'none.csv')
    assert list(df.text) == [[], [], []] and list(df.text_length) == [0, 0, 0] and cnt == Counter()


# --- Tokenizer.from_folder, Tokenizer.from_df --------------------------------------------------------------------------

def test_tokenizer_from_folder(tmp_path):
    path, _, _ = prepare_texts(tmp_path)
    tkn = Tokenizer.from_folder(path, n_workers=1)
    assert tkn.mode == 'folder' and tkn.output_dir == tmp_path/'tmp_tok'
    assert tkn.counter == unpickle(tmp_path/'tmp_tok'/fn_counter_pkl) and tkn.counter['this'] == 15
    assert tkn.lengths == unpickle(tmp_path/'tmp_tok'/fn_lengths_pkl)
    assert tkn(path/'b'/'text2.txt') == expected('b', 2)
    (path/'b'/'text2.txt').write_text('Something else')      # the folder's stored tokens are served, as in fastai
    assert tkn(path/'b'/'text2.txt') == expected('b', 2)
    other = tmp_path/'other.txt'; other.write_text('Not in the folder')
    assert tkn(other) == ['xxbos', 'xxmaj', 'not', 'in', 'the', 'folder']
    assert tkn('This is a test') == ['xxbos', 'xxmaj', 'this', 'is', 'a', 'test']
    assert tkn.decode(['a', 'b']) == 'a b'


def test_tokenizer_from_df(tmp_path):
    _, df, _ = prepare_texts(tmp_path)
    tkn = Tokenizer.from_df('text', n_workers=1)
    assert tkn.mode == 'df' and tkn.counter is None
    res = tkn.setup(df)
    ref, cnt = tokenize_df(df, 'text', n_workers=1)
    assert list(res.columns) == ['label', 'text', 'text_length'] and list(res.text) == list(ref.text)
    assert tkn.counter == cnt and list(tkn.lengths) == [10] * 15
    tkn.setup(df[:2])                                        # later calls (a validation set) keep the first Counter
    assert tkn.counter == cnt
    assert [tkn(t) for t in ['This is a test', 'this is another test']] == [
        ['xxbos', 'xxmaj', 'this', 'is', 'a', 'test'], ['xxbos', 'this', 'is', 'another', 'test']]
    two = Tokenizer.from_df(['text', 'label'], n_workers=1, tok_text_col='toks').setup(df[:1])
    assert list(two.columns) == ['toks', 'toks_length'] and two.toks[0][:3] == ['xxbos', 'xxfld', '1']
    with pytest.raises(ValueError, match='from_df'): Tokenizer().setup(df)


def test_names_reach_ulmfit_lit_all():
    for name in ['TokenizeWithRules', 'parallel_tokenize', 'tokenize_folder', 'tokenize_files', 'tokenize_csv',
                 'load_tokenized_csv', 'fn_counter_pkl', 'fn_lengths_pkl', 'Tokenizer', 'Numericalize',
                 'token_cache_dir', 'get_text_files']:
        assert hasattr(everything, name), name


# --- one cache-folder rule, tested read-only ----------------------------------------------------------------------------

_PR_CAPBSET_DROP, _DAC_CAPS = 24, (1, 2, 3)   # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER

def _drop_dac_caps():
    "In the child before exec: drop the capabilities that let root read and write past file permissions."
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in _DAC_CAPS:
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0: raise OSError(ctypes.get_errno(), 'prctl(PR_CAPBSET_DROP)')


def _unprivileged() -> tuple[dict | None, str]:
    "subprocess.run arguments that run Python without the right to write into read-only folders, and who that is."
    if os.getuid() != 0: return {}, f'uid {os.getuid()}'
    env = dict(os.environ, HOME='/', OMP_NUM_THREADS='1')
    probe = [sys.executable, '-c', 'import ulmfit_lit.data']
    # This interpreter may not be runnable by uid 65534 (it lives in root's private folder, say): then run as root
    # without the capabilities that override file permissions, which is what a user's lack of rights comes to.
    for how, who in ((dict(user=65534, group=65534, extra_groups=[]), 'uid 65534'),
                     (dict(preexec_fn=_drop_dac_caps), 'root without CAP_DAC_OVERRIDE')):
        try:
            if subprocess.run(probe, cwd='/', env=env, capture_output=True, timeout=120, **how).returncode == 0: return how, who
        except (OSError, subprocess.SubprocessError): pass
    return None, 'root, and neither uid 65534 can run this Python nor can root drop CAP_DAC_OVERRIDE'


_FROM_FOLDER = r'''
import json, os, sys
from pathlib import Path
from ulmfit_lit.corpus import token_cache_dir, tokenize_folder
from ulmfit_lit.data import TextDataLoaders
path = Path(sys.argv[1])
try:
    (path.parent/'.can_i_write').write_text('x'); (path.parent/'.can_i_write').unlink(); writable = True
except OSError: writable = False
dls = TextDataLoaders.from_folder(path, valid='test', bs=8, device='cpu')
x, y = dls.one_batch()
tkd = tokenize_folder(path, n_workers=1)          # fastai's door to the same folder: the same rule, the same cache
print(json.dumps(dict(writable=writable, cache=str(token_cache_dir(path)), classes=dls.vocab[1], x=x.tolist(),
                      y=y.tolist(), n_valid=sum(len(b[1]) for b in dls.valid), text=dls.decode(x[0]),
                      tokenize_folder=str(tkd.output_dir), n_docs=len(tkd))))
'''


def _tree(root: Path) -> dict:
    "Every path under `root` (itself included) with its mode, size and modification time."
    return {str(p.relative_to(root)): (p.stat().st_mode, p.stat().st_size, p.stat().st_mtime_ns)
            for p in [root, *root.rglob('*')]}


@pytest.fixture
def world_readable_tmp():
    "A temporary folder another user can read (pytest's tmp_path is private to its user); removed afterwards."
    base = Path(tempfile.mkdtemp(prefix='ulmfit_ro_'))
    base.chmod(0o755)
    yield base
    for p in [base, *base.rglob('*')]:
        if p.is_dir() and not p.is_symlink(): p.chmod(0o755)
    shutil.rmtree(base, ignore_errors=True)


def test_read_only_folder_caches_under_ulmfit_home(world_readable_tmp, sample_df):
    """A dataset folder in a place the user cannot write (a shared, read-only copy): `token_cache_dir`'s rule puts the
    cache in `ULMFIT_LIT_HOME/tok_cache/{name}_tok-{sha1 of the resolved path, 12 hex}`, nothing is written beside or
    into the data, the loaders work, and a second run reuses that cache."""
    base = world_readable_tmp
    shared = base/'shared'                          # the read-only parent: the rule asks whether *it* can be written
    path = shared/'imdb'
    pos, neg = sample_df[sample_df.label == 'positive'].text, sample_df[sample_df.label == 'negative'].text
    for split, start in (('train', 0), ('test', 20)):
        for label, texts in (('pos', pos), ('neg', neg)):
            (path/split/label).mkdir(parents=True)
            for i, t in enumerate(texts[start:start + 20]): (path/split/label/f'{i}.txt').write_text(t, encoding='utf-8')
    for p in sorted([shared, *shared.rglob('*')], key=lambda p: -len(p.parts)):   # files, then folders, deepest first
        p.chmod(0o555 if p.is_dir() else 0o444)
    home = base/'home'; home.mkdir(); home.chmod(0o777)
    run_as, who = _unprivileged()
    if run_as is None: pytest.skip(f'cannot run a process without write rights here: {who}')
    if os.access(shared, os.W_OK) and not run_as:
        pytest.skip(f'running as {who}, the folder is still writable after chmod 0o555: cannot test a read-only folder')
    before = _tree(shared)
    env = dict(os.environ, ULMFIT_LIT_HOME=str(home), HOME=str(home), OMP_NUM_THREADS='1')
    def run():
        r = subprocess.run([sys.executable, '-c', _FROM_FOLDER, str(path)], cwd=base, env=env, capture_output=True,
                           text=True, timeout=300, **run_as)
        assert r.returncode == 0, f'as {who}:\n{r.stderr[-3000:]}'
        return json.loads(r.stdout.strip().splitlines()[-1])
    first = run()
    if first['writable']: pytest.skip(f'as {who} the read-only folder could still be written: cannot test the rule')
    key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    cache = home/'tok_cache'/f'imdb_tok-{key}'
    assert first['cache'] == str(cache) and (cache/'cache.json').exists()
    assert first['classes'] == ['neg', 'pos'] and first['n_valid'] == 40
    assert len(first['x']) == len(first['y']) == 8 and set(first['y']) <= {0, 1}
    assert first['text'].startswith('xxbos ') and len(first['text'].split()) > 20     # real reviews came out
    assert first['tokenize_folder'] == str(cache) and first['n_docs'] == 80   # tokenize_folder: the same folder
    assert (cache/'counter.pkl').exists()                              # (with fastai's outputs there too)
    assert _tree(shared) == before                                     # nothing written into or beside the data
    stamp = (cache/'cache.json').stat().st_mtime_ns
    second = run()
    assert (cache/'cache.json').stat().st_mtime_ns == stamp            # the second run read that cache
    assert second['cache'] == first['cache'] and second['classes'] == first['classes']
    assert sorted(p.name for p in (home/'tok_cache').iterdir()) == [cache.name]
    assert _tree(shared) == before


# --- the cache key covers the module source ------------------------------------------------------------------------------

_TOKENIZE_FOLDER = r'''
import json, sys
from pathlib import Path
import ulmfit_lit
from ulmfit_lit.corpus import cache_key, tokenize_folder
from ulmfit_lit.tokenize import WordTokenizer, defaults
tkd = tokenize_folder(Path(sys.argv[1]), n_workers=1)
key = cache_key(WordTokenizer(), defaults.text_proc_rules, defaults.text_postproc_rules, encoding='utf-8', errors='strict')
print(json.dumps(dict(package=ulmfit_lit.__file__, key=key, tokens=dict(zip(tkd.names, tkd.token_lists())))))
'''


def test_cache_key_covers_the_module_source(tmp_path, sample_df):
    "A copy of the package tokenizes a folder; after an edit to its tokenize.py or corpus.py the cache is rebuilt."
    pkg = tmp_path/'src'/'ulmfit_lit'
    shutil.copytree(PKG, pkg, ignore=shutil.ignore_patterns('__pycache__', 'sample'))
    data = tmp_path/'reviews'; write_corpus(data, sample_df.text[:12])
    cache = tmp_path/'reviews_tok'/'cache.json'
    env = dict(os.environ, PYTHONPATH=str(tmp_path/'src'), ULMFIT_LIT_HOME=str(tmp_path/'home'), OMP_NUM_THREADS='1',
               PYTHONDONTWRITEBYTECODE='1')
    def run():
        r = subprocess.run([sys.executable, '-c', _TOKENIZE_FOLDER, str(data)], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        res = json.loads(r.stdout.strip().splitlines()[-1])
        assert Path(res['package']).parent == pkg                     # the copy ran, not the repository's package
        return res, json.loads(cache.read_text())['key'], cache.stat().st_mtime_ns
    first, key1, stamp1 = run()
    assert key1 == first['key']                                        # the key the cache carries is cache_key's
    ref = load('imdb_sample_tokens.json')
    assert first['tokens'] == {f"{'pos' if i % 2 else 'neg'}/{i:04d}.txt": ref[i] for i in range(12)}   # fastai's tokens
    same, key, stamp = run()
    assert (key, stamp) == (key1, stamp1) and same['key'] == first['key']             # unchanged source: reused
    for i, module in enumerate(['tokenize.py', 'corpus.py']):
        with open(pkg/module, 'a', encoding='utf-8') as f: f.write(f'\n# an edit that changes no behaviour ({i})\n')
        edited, key2, stamp2 = run()
        assert edited['key'] != first['key'] and key2 == edited['key'] != key1, module   # a new key...
        assert stamp2 != stamp1, module                                                   # ...so the cache was rebuilt
        assert edited['tokens'] == first['tokens']
        key1, stamp1, first = key2, stamp2, edited


# --- the full IMDb (only when the shared archive is there) --------------------------------------------------------------

def test_full_imdb_fast_path_equals_plain_spacy(imdb_path):
    "The fast path (cached pieces, special-case matcher) gives spaCy's own tokens on a random 10,000 full-IMDb reviews."
    files = sorted(imdb_path.rglob('*.txt'))
    assert len(files) == 100_000                     # train 25k + test 25k + unsup 50k
    picked = [files[i] for i in np.random.default_rng(0).choice(len(files), 10_000, replace=False)]
    tkd = tokenize_files(picked, n_workers=2)
    plain = plain_spacy()
    for i, f in enumerate(picked):
        ref = [replace_space(t.text) for t in plain(apply_rules(f.read_text(encoding='utf-8'), defaults.text_proc_rules))]
        assert tkd.tokens(i) == ref, f'{f}: {tkd.tokens(i)[:20]} vs {ref[:20]}'


def test_tokenizing_a_folder_that_cannot_take_a_cache_uses_a_user_cache(home, tmp_path):
    data = tmp_path/'ro'/'texts'
    data.mkdir(parents=True)
    for k in range(3): (data/f'{k}.txt').write_text(f'review number {k} was good')
    (tmp_path/'ro'/'texts_tok').write_text('not a folder: the cache cannot go here')
    tkd = tokenize_folder(data, n_workers=1)
    assert len(tkd) == 3 and tkd.tokens(0)[:2] == ['xxbos', 'review']
    assert list((home/'tok_cache').iterdir())[0].name.startswith('texts_tok-')
    assert len(tokenize_folder(data, n_workers=1)) == 3          # the second call reads that cache
