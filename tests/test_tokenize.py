"""ulmfit_lit.tokenize (chapter 01): fastai's rules and tokenizer classes, spaCy's tokens, SentencePiece, the vocab,
Numericalize, decoding and the TokenStore, checked on fastai's own cases and on the shipped IMDb sample."""
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import spacy
from fastcore.foundation import L
from spacy.symbols import ORTH

from ulmfit_lit.corpus import tokenize_texts_to_store
from ulmfit_lit.tokenize import (BOS, TK_MAJ, TK_UP, UNK, BaseTokenizer, Numericalize, SentencePieceTokenizer,
                                 SpacyTokenizer, TokenizeWithRules, TokenStore, apply_rules, decode_tokens, defaults,
                                 make_vocab, replace_all_caps, tokenize1)

FIX = Path(__file__).parent/'fixtures'


def load(name): return json.loads((FIX/name).read_text(encoding='utf-8'))


def plain_spacy():
    "spaCy as fastai uses it (lexical attributes on), to compare our tokenizer with."
    nlp = spacy.blank('en')
    for w in defaults.text_spec_tok: nlp.tokenizer.add_special_case(w, [{ORTH: w}])
    return nlp.tokenizer


# --- the rules and the tokenizer classes --------------------------------------------------------------------------

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


def test_spacy_tokenizer_equals_plain_spacy_including_straddling_patterns(sample_df):
    "Our SpacyTokenizer (lexical attributes off) splits as fastai's spaCy does, on tricky patterns and real reviews."
    tok, plain = SpacyTokenizer(), plain_spacy()
    cases = ["back'' ''return", "x' ''y", "x'' 'y", "it's 'em", "(-: ok :-) (*_*) (o:", "a'' ''b'' ''c", "''"]
    for t in cases + [apply_rules(t, defaults.text_proc_rules) for t in sample_df.text[:300]]:
        assert tok.tokenize1(t) == [x.text for x in plain(t)], t[:80]


# --- SentencePiece --------------------------------------------------------------------------------------------------

def test_sentencepiece_trains_once_and_tokenizes(tmp_path, sample_df):
    texts = list(sample_df.text[:300])
    sp = SentencePieceTokenizer(cache_dir=tmp_path, vocab_sz=800)
    tkd = tokenize_texts_to_store(texts, tok=sp, n_workers=2)
    assert tkd.tokens(0)[0] == '▁xxbos' and len(tkd) == 300
    models = list(tmp_path.glob('spm-*/spm.model'))
    assert len(models) == 1
    sp2 = SentencePieceTokenizer(cache_dir=tmp_path, vocab_sz=800); sp2.setup(texts, defaults.text_proc_rules)
    assert sp2.sp_model == models[0] and len(list(tmp_path.glob('spm-*'))) == 1   # the same texts: trained once


# --- vocab, Numericalize, decoding ------------------------------------------------------------------------------------

def test_make_vocab_quirks():
    cnt = Counter({f'w{i}': 5 for i in range(7)})   # 9 special + 7 = 16, a multiple of 8: fastai still adds 8
    v = make_vocab(cnt)
    assert v[:9] == defaults.text_spec_tok and len(v) == 24 and v[-8:] == ['xxfake'] * 8
    assert make_vocab(Counter({'a': 2, 'b': 3})) == defaults.text_spec_tok + ['b'] + ['xxfake'] * 6


def test_numericalize_setup_on_token_lists():
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


def test_decode_tokens_is_readable():
    toks = ['xxbos', 'xxmaj', 'this', 'was', "n't", 'xxup', 'bad', 'xxrep', '3', '!', 'xxwrep', '3', 'so', 'good', '.']
    assert decode_tokens(toks) == "This wasn't BAD!!! so so so good."


# --- the token store ----------------------------------------------------------------------------------------------------

def test_token_store_views_save_load_and_id_width(tmp_path, sample_df):
    tok = SpacyTokenizer()
    docs = [tokenize1(t, tok) for t in sample_df.text[:50]]
    num = Numericalize(); num.setup(docs)
    store = TokenStore.from_docs([num(d).tolist() for d in docs], vocab=num.vocab)
    assert store.ids.dtype == np.uint16 and len(store) == 50 and store.lengths().tolist() == [len(d) for d in docs]
    assert np.shares_memory(store[3], store.ids)                                   # a document is a view, no copy
    for i in (0, 17, 49): assert store.tokens(i) == num.decode(num(docs[i]))
    store.save(tmp_path/'s'); loaded = TokenStore.load(tmp_path/'s')
    assert isinstance(loaded.ids, np.memmap) and loaded.vocab == num.vocab
    assert all((loaded[i] == store[i]).all() for i in range(50))
    big = TokenStore.from_docs([[70000, 1]], vocab=['w'] * 70000 + ['x'])
    assert big.ids.dtype == np.uint32                                              # past 65,536 words: 32-bit ids
    with pytest.raises(ValueError, match='offsets'): TokenStore(np.zeros(3, np.uint16), np.array([0, 2]))
    (tmp_path/'s'/'store.json').write_text(json.dumps(dict(n_docs=50, n_tokens=3, dtype='uint16')))
    with pytest.raises(ValueError, match='inconsistent'): TokenStore.load(tmp_path/'s')   # arrays cut short: refused


def test_sentencepiece_keeps_its_model_in_the_course_home(home, tmp_path, monkeypatch, sample_df):
    monkeypatch.chdir(tmp_path)
    texts = list(sample_df.text[:200])
    sp = SentencePieceTokenizer(vocab_sz=500)
    sp.setup(texts, defaults.text_proc_rules)
    assert not (tmp_path/'tmp').exists()                           # nothing written where the user stands
    assert any((home/'sentencepiece').iterdir())
    assert str(sp.sp_model).startswith(str(home/'sentencepiece'))   # the trained model is there
