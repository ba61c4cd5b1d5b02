"fastai's public tokenization doors (chapter 01): the behaviour fastai documents, checked on our implementation."
import json, os, pickle, tarfile, time
from collections import Counter
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from ulmfit_lit.tokenize import *

FIX = Path(__file__).parent/'fixtures'
SAMPLE = Path(__file__).parents[1]/'ulmfit_lit'/'sample'/'imdb_sample.tgz'

def load(name): return json.loads((FIX/name).read_text(encoding='utf-8'))
def unpickle(path): return pickle.loads(Path(path).read_bytes())

@pytest.fixture(scope='module')
def sample_df():
    with tarfile.open(SAMPLE) as tf:
        m = next(m for m in tf.getmembers() if m.name.endswith('texts.csv'))
        return pd.read_csv(tf.extractfile(m))

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

# --- TokenizeWithRules, tokenize1, parallel_tokenize

def test_tokenize_with_rules_fastai_checks():
    f = TokenizeWithRules(BaseTokenizer(), rules=[replace_all_caps])
    assert list(f(["THIS isn't a problem"])) == [[TK_UP, 'this', "isn't", 'a', 'problem']]
    f = TokenizeWithRules(SpacyTokenizer())
    assert list(f(["This isn't a problem", 'Hi  there'])) == [[BOS, TK_MAJ, 'this', 'is', "n't", 'a', 'problem'],
                                                              [BOS, TK_MAJ, 'hi', 'there']]
    # the default post-rule replace_space joins a token's inner spaces
    f = TokenizeWithRules(BaseTokenizer(split_char="'"), rules=[])
    assert list(f(["This isn't a problem"])) == [['This▁isn', 't▁a▁problem']]
    assert list(TokenizeWithRules(BaseTokenizer(split_char="'"), rules=[], post_rules=[])(["a b'c"])) == [['a b', 'c']]
    # a single rule on its own: here it maps indices to texts
    texts = ['this is a text', 'this is another text']
    assert list(TokenizeWithRules(BaseTokenizer(), texts.__getitem__)([0, 1])) == [['this', 'is', 'a', 'text'],
                                                                                   ['this', 'is', 'another', 'text']]

def test_tokenize1_goes_through_tokenize_with_rules():
    assert tokenize1("This isn't a problem", SpacyTokenizer()) == [BOS, TK_MAJ, 'this', 'is', "n't", 'a', 'problem']
    assert tokenize1("This isn't a problem", tok=BaseTokenizer(), rules=[]) == ['This', "isn't", 'a', 'problem']
    assert tokenize1('a b', tok=BaseTokenizer('|'), rules=[]) == ['a▁b']            # post-rules on by default

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

# --- tokenize_folder, tokenize_files: fastai's files, and our Tokenized

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

# --- tokenize_csv, load_tokenized_csv

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

# --- Tokenizer.from_folder, Tokenizer.from_df

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

# --- Numericalize.setup on token lists

def test_numericalize_setup_on_token_lists():
    from fastcore.foundation import L
    start = 'This is an example of text'
    num = Numericalize(min_freq=1)
    num.setup(L(start.split(), 'this is another text'.split()))
    assert {x for x in num.vocab if not x.startswith('xxfake')} == set(defaults.text_spec_tok + 'This is an example of text this another'.split())
    assert len(num.vocab) % 8 == 0
    t = num(start.split())
    assert t.tolist() == [11, 9, 12, 13, 14, 10] and num.decode(t) == start.split()
    num = Numericalize(min_freq=2)
    num.setup([start.split(), 'this is another text'.split()])
    assert {x for x in num.vocab if not x.startswith('xxfake')} == set(defaults.text_spec_tok + ['is', 'text'])
    t = num(start.split())
    assert t.tolist() == [0, 9, 0, 0, 0, 10] and num.decode(t) == f'{UNK} is {UNK} {UNK} {UNK} text'.split()
    # a Counter still works and gives the same vocab; a given vocab is kept
    by_count = Numericalize(min_freq=2); by_count.setup(Counter(start.split() + 'this is another text'.split()))
    assert by_count.vocab == num.vocab
    fixed = Numericalize(vocab=['xxunk', 'a']); fixed.setup([['b', 'b', 'b']])
    assert fixed.vocab == ['xxunk', 'a']

def test_names_reach_ulmfit_lit_all():
    import ulmfit_lit.all as everything
    for name in ['TokenizeWithRules', 'parallel_tokenize', 'tokenize_folder', 'tokenize_files', 'tokenize_csv',
                 'load_tokenized_csv', 'fn_counter_pkl', 'fn_lengths_pkl', 'Tokenizer', 'Numericalize']:
        assert hasattr(everything, name), name
