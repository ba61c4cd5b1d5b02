"Chapter 01 checks that are awkward in a notebook: fastai parity end to end, bad input, caches and crash safety."
import json, os, tarfile, io
from collections import Counter
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from ulmfit_lit.tokenize import *
from ulmfit_lit.tokenize import _apply_rules

FIX = Path(__file__).parent/'fixtures'
SAMPLE = Path(__file__).parents[1]/'ulmfit_lit'/'sample'/'imdb_sample.tgz'

def load(name): return json.loads((FIX/name).read_text(encoding='utf-8'))

@pytest.fixture(scope='module')
def sample_texts():
    with tarfile.open(SAMPLE) as tf:
        m = next(m for m in tf.getmembers() if m.name.endswith('texts.csv'))
        return list(pd.read_csv(tf.extractfile(m)).text)

def plain_spacy():
    "spaCy as fastai uses it (lexical attributes on), to compare our piece-cached tokenizer with."
    import spacy
    from spacy.symbols import ORTH
    nlp = spacy.blank('en')
    for w in defaults.text_spec_tok: nlp.tokenizer.add_special_case(w, [{ORTH: w}])
    return nlp.tokenizer

@pytest.mark.parametrize('n_workers', [1, 2])
def test_synth_tokens_match_fastai(n_workers):
    texts = load('synth_texts.json')
    assert tokenize_texts(texts, n_workers=n_workers) == load('synth_tokens.json')

def test_single_string_path_skips_replace_space():
    tkn = Tokenizer()
    ref = load('synth_tokens_transform.json')
    for t, r in zip(load('synth_texts.json'), ref): assert tkn(t) == r
    assert any('\n ' in tok for r in ref for tok in r)   # the fixture really exercises the difference

def test_imdb_sample_tokens_and_vocab_match_fastai(sample_texts):
    tkd = tokenize_texts_to_store(sample_texts, n_workers=2)
    ref = load('imdb_sample_tokens.json')
    assert tkd.token_lists() == ref
    assert make_vocab(tkd.count()) == load('imdb_sample_vocab.json')
    assert make_vocab(tokenize_texts_to_store(load('synth_texts.json'), n_workers=1).count()) == load('synth_vocab.json')

def test_pieces_equal_plain_spacy_including_straddling_patterns(sample_texts):
    tok, plain = SpacyTokenizer(), plain_spacy()
    cases = ["back'' ''return", "x' ''y", "x'' 'y", "it's 'em", "(-: ok :-) (*_*) (o:", "a'' ''b'' ''c", "''"]
    for t in cases + [_apply_rules(t, defaults.text_proc_rules) for t in sample_texts[:300]]:
        assert tok.tokenize1(t) == [x.text for x in plain(t)], t[:80]

def test_empty_and_whitespace_texts():
    assert tokenize_texts(['', ' ', '\n\n', 'Hi'], n_workers=1) == [['xxbos'], ['xxbos'], ['xxbos'], ['xxbos', 'xxmaj', 'hi']]
    assert tokenize_texts([], n_workers=2) == []
    tkd = tokenize_texts_to_store([''] * 5, n_workers=2)
    assert len(tkd) == 5 and tkd.store.lengths().tolist() == [1] * 5

def test_very_long_text(sample_texts):
    text = ' '.join(sample_texts[:20]) * 20   # about 500k characters in one document
    ours = tokenize_texts([text], n_workers=1)[0]
    ref = [replace_space(t.text) for t in plain_spacy()(_apply_rules(text, defaults.text_proc_rules))]
    assert ours == ref and len(ours) > 50_000

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

def write_corpus(folder, texts):
    for i, t in enumerate(texts):
        sub = folder/('pos' if i % 2 else 'neg'); sub.mkdir(parents=True, exist_ok=True)
        (sub/f'{i:04d}.txt').write_text(t, encoding='utf-8')

def test_folder_cache_reused_and_rebuilt(tmp_path, sample_texts):
    data = tmp_path/'reviews'; write_corpus(data, sample_texts[:40])
    ref = load('imdb_sample_tokens.json')
    tkd = tokenize_folder(data, n_workers=2)
    cache = tmp_path/'reviews_tok'
    assert (cache/'cache.json').exists()
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

def test_interrupted_run_leaves_no_trusted_cache(tmp_path, sample_texts):
    data = tmp_path/'reviews'; write_corpus(data, sample_texts[:30])
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

def test_tokenize_df_and_csv(tmp_path, sample_texts):
    df = pd.DataFrame({'label': ['a', 'b', 'c'], 'text': sample_texts[:3]})
    res, cnt = tokenize_df(df, 'text', n_workers=1)
    ref = load('imdb_sample_tokens.json')[:3]
    assert list(res.text) == ref and list(res.label) == ['a', 'b', 'c'] and list(res.text_length) == [len(r) for r in ref]
    assert cnt == Counter(t for r in ref for t in r)
    two = pd.DataFrame({'t1': ['Hello'], 't2': ['World']})
    assert tokenize_df(two, ['t1', 't2'], n_workers=1)[0].text[0] == ['xxbos', 'xxfld', '1', 'xxmaj', 'hello', 'xxfld', '2', 'xxmaj', 'world']
    df.to_csv(tmp_path/'r.csv', index=False)
    tkd = tokenize_csv(tmp_path/'r.csv', 'text', n_workers=1)
    assert tkd.token_lists() == ref and (tmp_path/'r_tok'/'cache.json').exists()

def test_store_numericalize_and_numericalize_agree(tmp_path, sample_texts):
    tkd = tokenize_texts_to_store(sample_texts[:200], n_workers=2)
    vocab = make_vocab(tkd.count())
    store, num = tkd.numericalize(vocab), Numericalize(vocab)
    assert store.ids.dtype == np.uint16 and len(store) == 200
    for i in (0, 57, 199): assert store[i].tolist() == num(tkd.tokens(i)).tolist()
    assert np.shares_memory(store[3], store.ids)
    store.save(tmp_path/'s'); loaded = TokenStore.load(tmp_path/'s')
    assert loaded.vocab == vocab and all((loaded[i] == store[i]).all() for i in range(200))
    assert tkd.count(range(50)) == Counter(t for i in range(50) for t in tkd.tokens(i))
    big = TokenStore.from_docs([[70000, 1]], vocab=['w'] * 70000 + ['x'])
    assert big.ids.dtype == np.uint32

def test_make_vocab_quirks():
    cnt = Counter({f'w{i}': 5 for i in range(7)})   # 9 special + 7 = 16, a multiple of 8: fastai still adds 8
    v = make_vocab(cnt)
    assert v[:9] == defaults.text_spec_tok and len(v) == 24 and v[-8:] == ['xxfake'] * 8
    assert make_vocab(Counter({'a': 2, 'b': 3})) == defaults.text_spec_tok + ['b'] + ['xxfake'] * 6

def test_decode_tokens_is_readable():
    toks = ['xxbos', 'xxmaj', 'this', 'was', "n't", 'xxup', 'bad', 'xxrep', '3', '!', 'xxwrep', '3', 'so', 'good', '.']
    assert decode_tokens(toks) == "This wasn't BAD!!! so so so good."

def test_sentencepiece_trains_once_and_tokenizes(tmp_path, sample_texts):
    sp = SentencePieceTokenizer(cache_dir=tmp_path, vocab_sz=800)
    tkd = tokenize_texts_to_store(sample_texts[:300], tok=sp, n_workers=2)
    assert tkd.tokens(0)[0] == '▁xxbos' and len(tkd) == 300
    models = list(tmp_path.glob('spm-*/spm.model'))
    assert len(models) == 1
    sp2 = SentencePieceTokenizer(cache_dir=tmp_path, vocab_sz=800); sp2.setup(sample_texts[:300], defaults.text_proc_rules)
    assert sp2.sp_model == models[0] and len(list(tmp_path.glob('spm-*'))) == 1

def test_full_imdb_fast_path_equals_plain_spacy(imdb_path):
    "The fast path (cached pieces, special-case matcher) gives spaCy's own tokens on a random 10,000 full-IMDb reviews."
    files = sorted(imdb_path.rglob('*.txt'))
    assert len(files) == 100_000                     # train 25k + test 25k + unsup 50k
    picked = [files[i] for i in np.random.default_rng(0).choice(len(files), 10_000, replace=False)]
    tkd = tokenize_files(picked, n_workers=2)
    plain = plain_spacy()
    for i, f in enumerate(picked):
        ref = [replace_space(t.text) for t in plain(_apply_rules(f.read_text(encoding='utf-8'), defaults.text_proc_rules))]
        assert tkd.tokens(i) == ref, f'{f}: {tkd.tokens(i)[:20]} vs {ref[:20]}'

