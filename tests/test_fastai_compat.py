"""Appendix G, `ulmfit_lit.fastai_compat` and `from ulmfit_lit.all import *`: fastai 2.8.12's text namespace (every name
either given or left out for a stated reason), and the behaviour of fastai's smaller names, checked against what fastai
itself does (the values come from running fastai 2.8.12; none of its code is here)."""
import copy
import inspect
import json
import pickle
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from fastcore.foundation import L
from fastcore import test as fct
from torch import nn

from ulmfit_lit.awd_lstm import AWD_LSTM, awd_lstm_clas_config
from ulmfit_lit.classifier import text_classifier_learner
from ulmfit_lit.data import LMDataLoader, SortedDL, TextDataLoaders
from ulmfit_lit.fastai_compat import (Module, Pad_Chunk, Pad_Input, load_ignore_keys, load_model_text, one_param,
                                      pad_chunk, pad_input, params, tensor, to_cpu, to_detach, to_np,
                                      trainable_params)
from ulmfit_lit.tokenize import (LMTensorText, SentencePieceTokenizer, SubwordTokenizer, TensorCategory, TensorText,
                                 defaults, eu_langs)

FIXTURES = Path(__file__).parent/'fixtures'
T = torch.tensor

# ---- the names: fastai 2.8.12's `from fastai.text.all import *` (tests/fixtures/fastai_text_all_names.json, made by
# make_fastai_names_reference.py with the real fastai) against ours. Each of fastai's names is either in PRESENT
# or in one group of LEFT_OUT with the reason it is left out; both lists are checked both ways, so neither can rot.

LEFT_OUT = {   # group: (why it is left out, the names)
    'vision': (
        "vision pieces fastai's core modules define (image tensors, getters and augmentations, segmentation "
        'metrics): no use in text, and they need PIL/torchvision',
        """ArrayBase ArrayImage ArrayImageBW ArrayImageBase ArrayMask ChannelsLast CutMix Dice DiceLoss DiceMulti
        ImageGetter IntToFloatTensor Jaccard JaccardCoeff JaccardCoeffMulti JaccardMulti MixHandler MixUp Normalize
        SegmentationInterpretation TensorFlowField TensorImage TensorImageBW TensorImageBase TensorMask
        broadcast_vec foreground_acc get_image_files image_extensions make_cross_image reduce_loss show_image
        show_image_batch show_images show_titled_image subplots"""),
    'layers': (
        "fastai's CNN and generic building blocks (ConvLayer, ResBlock, LinBnDrop...): the AWD-LSTM's own "
        'layers are in ulmfit_lit.awd_lstm',
        """AdaptiveAvgPool AdaptiveConcatPool1d AdaptiveConcatPool2d AvgPool BatchNorm BatchNorm1dFlat Cat ConvLayer
        Debugger Embedding Flatten Identity InstanceNorm Lambda LinBnDrop MaxPool MergeLayer MishJit MishJitAutoFn
        NoneReduce NormType ParameterModule PartialLambda PixelShuffle_ICNR PoolFlatten PoolType
        PooledSelfAttention2d ProdLayer ResBlock ResizeBatch SEBlock SEModule SEResNeXtBlock SelfAttention
        SeparableBlock SequentialEx SimpleCNN SimpleSelfAttention SwishJit TimeDistributed ToTensorBase View
        adaptive_pool children_and_parameters flatten_model has_children icnr_init in_channels init_default
        init_linear mish module sequential sigmoid sigmoid_ swish trunc_normal_ vleaky_relu"""),
    'transforms': (
        "fastai's typed Transform/Pipeline data design (Datasets, TfmdLists, TfmdDL, type dispatch), not "
        'copied: ours tokenizes once into a token store that TextDataLoaders and DataBlock slice',
        """CollectDataCallback DataLoader Datasets DisplayedTransform FilteredBase Func InplaceTransform ItemTransform
        PartialDL Pipeline Sig SkipItemException TfmdDL TfmdLists Transform WeightedDL cast collate_error
        compose_tfms decode_at default_set_meta dispatch explode_types fa_collate fa_convert gather_attr_names
        gather_attrs get_func get_show_batch_func mk_transform retain_meta retain_type retain_types show_at
        show_batch show_results test_set transform"""),
    'data_blocks': (
        "blocks, splitters and getters beyond the text tutorial's: ours has TextBlock, CategoryBlock, "
        'GrandparentSplitter, RandomSplitter, ColSplitter, ColReader, parent_label',
        """AttrGetter Categorize Category CategoryMap EncodedMultiCategorize EndSplitter FileGetter FileSplitter
        FuncSplitter IndexSplitter ItemGetter MaskSplitter MultiCategorize MultiCategory MultiCategoryBlock
        OneHotEncode RandomSubsetSplitter RegexLabeller RegressionBlock RegressionSetup ToTensor TrainTestSplitter
        TransformBlock get_c"""),
    'torch_core': (
        "fastai's tensor plumbing for its typed transforms (TensorBase, Titled*, show_title...) and helpers "
        'the text path never needs: ours has tensor, Module, params, one_param, to_device, to_detach, to_cpu,'
        ' to_np',
        """Chunks ShowTitle TensorBase TensorMultiCategory TitledFloat TitledInt TitledStr TitledTensorScalar
        TitledTuple apply apply_init apply_leaf base_doc batch_to_samples concat cond_init display_df
        distrib_barrier doc find_bs find_device flatten_check get_empty_df get_first get_model get_random_states
        grad_module ismin_torch item_find logit maybe_gather nested_reorder no_random notmax_torch np_func one_hot
        one_hot_decode requires_grad script_bwd script_fwd script_save_ctx script_use_ctx set_random_states
        setup_cuda show_title to_concat to_float to_half unsqueeze unsqueeze_"""),
    'callbacks': (
        "callbacks and learner internals beyond ULMFiT's recipe (early stopping, CSV logging, hooks, gradient"
        " accumulation...): RNNCallback's work is done by our RNNRegularizer",
        """ActivationStats BnFreeze CSVLogger CastToTensor EarlyStoppingCallback FetchPredsCallback GatherPredsCallback
        GradientAccumulation Hook HookCallback Hooks MCDropoutCallback RNNCallback ReduceLROnPlateau
        ShortEpochCallback ShowGraphCallback SkipToEpoch TrackerCallback ValueMetric before_batch_cb bn_types
        dummy_eval has_params hook_output hook_outputs layer_info load_model mk_metric model_sizes module_summary
        num_features_model replacing_yield rnn_cbs save_model set_bn_eval total_params"""),
    'renamed': (
        'the same callback under another name here: TerminateOnNaN',
        """TerminateOnNaNCallback"""),
    'fp16': (
        "fastai's pre-autocast fp16 path and its AMPMode enum: ours is to_fp16()/to_bf16() and "
        'MixedPrecision(dtype) on torch.autocast',
        """AMPMode ModelToHalf NonNativeMixedPrecision copy_clone get_master grad_overflow test_overflow
        to_master_grads to_model_params"""),
    'schedules': (
        "lowercase schedule makers and the lr_find suggestions other than valley (fastai's default): ours has"
        ' SchedLin, SchedCos, SchedExp, SchedNo and valley',
        """SchedPoly annealer minimum sched_cos sched_exp sched_lin sched_no slide steep"""),
    'optimizers': (
        "fastai's stepper-based Optimizer, the optimizers built on it and their steps: ours trains with Adam "
        "(torch's AdamW) and SGD",
        """Lamb Larc Lookahead OptimWrapper Optimizer QHAdam RAdam RMSProp adam_step average_grad average_sqr_grad
        debias detuplify_pg l2_reg lamb_step larc_layer_lr larc_step momentum_step pytorch_hp_map qhadam_step
        radam_step ranger rms_prop_step set_item_pg sgd_step step_stat weight_decay"""),
    'metrics': (
        'scikit-learn-backed and task-specific metrics: ULMFiT reports accuracy and Perplexity',
        """APScoreBinary APScoreMulti AccumMetric BalancedAccuracy BrierScore BrierScoreMulti CohenKappa
        CorpusBLEUMetric ExplainedVariance F1Score F1ScoreMulti FBeta FBetaMulti HammingLoss HammingLossMulti
        LossMetric LossMetrics MatthewsCorrCoef MatthewsCorrCoefMulti PearsonCorrCoef Precision PrecisionMulti
        R2Score Recall RecallMulti RocAuc RocAucBinary RocAucMulti SpearmanCorrCoef accuracy_multi error_rate
        exp_rmspe mae mse msle optim_metric perplexity rmse skm_to_fastai top_k_accuracy"""),
    'losses': (
        "losses for other tasks: both of ULMFiT's models train with CrossEntropyLossFlat",
        """BCELossFlat BCEWithLogitsLossFlat BaseLoss FocalLoss FocalLossFlat L1LossFlat LabelSmoothingCrossEntropy
        LabelSmoothingCrossEntropyFlat MSELossFlat"""),
    'interpret': (
        "fastai's generic Interpretation: ours is ClassificationInterpretation (confusion matrix, top_losses "
        'as a table)',
        """Interpretation plot_top_losses"""),
    'progress': (
        "fastprogress's bars: ours draws its own (ProgressCallback, download progress), with no fastprogress "
        'dependency',
        """master_bar progress_bar"""),
    'config': (
        "fastai's configuration and download plumbing: ours keeps archives, data and models under "
        'ulmfit_home() ($ULMFIT_LIT_HOME)',
        """fastai_cfg fastai_path nb_urls prefetch_data"""),
    'fastcore_rest': (
        "the long tail of fastcore's utilities: all.py imports by name the part fastai's text code and tests "
        'use (L, first, ifnone, store_attr, patch, delegates...), not fastcore.all',
        """AttrDict AttrDictDefault AutoInit BasicRepr BypassNewMeta CachedIter CollBase Config ContextManagers DepProp
        EventTimer FixSigMeta Float FullString GetAttrBase ImportEnum Inf Int IterLen NS NewChkMeta NotStr NullType
        PartialFormatter PrePostInitMeta PrettyString SaveReturn Self ShowPrint Stateful Str StrEnum
        SuggestionMethod TruncatedString UNSET Unset ValEnum add add_docs add_props adict anno_dict anno_ret
        annotations any_is_instance arg0 arg1 arg2 arg3 arg4 argnames argwhere array_equal asave_iter asdict
        atomic_save attrdict autostart basic_repr bunzip camel2snake camel2words class2attr clean_cli_output
        compile_re console_help copy_func curryable custom_dir cycle dataclass_src delegate_attr delegated
        detect_mime df_equal dict2obj docs dstar dumps empty2none eq eval_type event exec_eval exec_import
        exec_local exec_new expand_wildcards extend_enum exttypes fail_clean fastuple fdelegates fenced
        fenced_blocks filter_dict filter_ex filter_keys filter_values find_file_parents first_match flatmap flatten
        flexicache flexiclass friendly_name frontmatter funcs_kwargs ge gen get_annotations_ex get_class
        get_source_link getattrs getcallable globtastic groupby gt hasattrs hl_md humanize id_words
        ignore_exceptions image_size img_bytes import_no_init in_ in_colab in_ipython in_jupyter in_notebook
        init_args instantiate inum_methods ipython_shell is_ is_array is_bool is_indexer is_namedtuple is_not
        is_typeddict is_usable_tool isinstance_str joins kindsort last last_index last_match le linesplitter llmtool
        load_mod loads loads_multi local2utc loop_first loop_first_last loop_last lt make_nullable map_ex mapped
        mapt mask2idxs maybe_attr maybe_open metadec method mk_class mkdir mod modified_env modify_exception
        mtime_policy mul n_friendly_names ne negate nested_attr nested_callable nested_idx nested_setdefault not_
        null nullable_dc num_cpus num_methods obj2dict only open_file otherwise parse_env partial_format partition
        partition_dict patch_to pglob product properties read_config_file remove_prefix remove_suffix renumerate
        replicate repo_details repr_dict req ret_false ret_true revive_dates risinstance rnum_methods rstar
        rsync_multi rtoken_hex run save_config_file save_iter set_nested_idx set_num_threads setattrs shell
        shufflish sig_with_params signature_ex snake2camel sorted_ex spark_chars sparkline splice_sig splitter ssh
        star stop str2bool str2date str2dt str2float str2int str2list str_diff str_enum strcat stringfmt_names
        strloader sub take_lines test_sig time_policy timed_cache to_bool to_camel to_date to_int to_kebab to_list
        to_pascal to_snake tonull trace trim_wraps true truediv trunc_ctr truncstr try_attrs type2str type_hints
        type_map typed union2tuple uniqueify unqid untar_dir use_kwargs use_kwargs_dict using_attr utc2local val2idx
        vars_pub ver2tuple walk walk_join with_cast working_directory wrap_class xdumps zip_cycle"""),
    'fastcore_test': (
        "fastcore.test helpers beyond the ones fastai's text notebooks call (test_eq, test_ne, test_close, "
        'test_fail, test_is, test_eq_type, test_stdout)',
        """ExceptionExpected TEST_IMAGE TEST_IMAGE_BW exception expect_fail is_close nequals test test_fig_exists
        test_shuffled test_warns"""),
    'fastcore_tooling': (
        "fastcore's HTML builders (one-letter names such as A, B, P would shadow a user's variables), HTTP, "
        'async, CLI, parallel and documentation tools: nothing to do with text models',
        """A Article Aside Audio B Body Br Button CachedAwaitable Canvas Caption CliError Code Col Colgroup Dd Debounce
        Details Div Dl DocmentList DocmentTbl DocmentText Dt E Em Embed ExceptionsHTTP FT Fieldset Figcaption Figure
        Footer Form H1 H2 H3 H4 H5 H6 HTTP400BadRequestError HTTP401UnauthorizedError HTTP402PaymentRequiredError
        HTTP403ForbiddenError HTTP404NotFoundError HTTP405MethodNotAllowedError HTTP406NotAcceptableError
        HTTP407ProxyAuthRequiredError HTTP408RequestTimeoutError HTTP409ConflictError HTTP410GoneError
        HTTP411LengthRequiredError HTTP412PreconditionFailedError HTTP413PayloadTooLargeError HTTP414URITooLongError
        HTTP415UnsupportedMediaTypeError HTTP416RangeNotSatisfiableError HTTP417ExpectationFailedError
        HTTP418AmAteapotError HTTP421MisdirectedRequestError HTTP422UnprocessableEntityError HTTP423LockedError
        HTTP424FailedDependencyError HTTP425TooEarlyError HTTP426UpgradeRequiredError
        HTTP428PreconditionRequiredError HTTP429TooManyRequestsError HTTP431HeaderFieldsTooLargeError
        HTTP451LegalReasonsError HTTP4xxClientError HTTP500InternalServerError HTTP501NotImplementedError
        HTTP502BadGatewayError HTTP503ServiceUnavailableError HTTP504GatewayTimeoutError
        HTTP505HTTPVersionNotSupportedError HTTP506VariantAlsoNegotiatesError HTTP507InsufficientStorageError
        HTTP508LoopDetectedError HTTP510NotExtendedError HTTP511NetworkAuthenticationRequiredError
        HTTP5xxServerError Head Header Hr Html I Iframe Img Input Label Legend Li Link Main Mark MarkdownRenderer
        Math Meta Nav Noscript Object Ol OpGroup Option P Param Pre ProcessPoolExecutor S Safe Script Section Select
        ShowDocRenderer Slot Small Source Span Strike Strong Style Sub Summary Sup Svg Table Tbody Td Template
        Textarea Tfoot Th Thead ThreadPoolExecutor Title Tr U Ul Video XML acache ann_parts anno2str anno_parser
        args_from_prog athreaded attrmap bg_task bool_arg call_parse can_render ctx_sync dict2xml
        disable_async_magics docments docstring enable_async_magics extract_docstrings free_port ft full_docs
        get_dataclass_source get_name get_source highlight http_response is_async_callable is_cli is_port_free
        isdataclass iter_sync mapa maybe_aiter maybe_await mk_doc mk_getattr mk_groups mk_sig noopa parallel
        parallel_async parallel_async_dict parallel_async_gen parallelable parse_cli parse_docstring qual_name
        reawaitable recv_once run_sync sanitize_param_name sanitized_params set_ctx showtags sig2str sig_source
        snake start_client start_server startproc startthread store_false store_true then threaded to_aiter to_xml
        tobytes url_default_headers urlclean urldest urljson urlopen urlopener urlquote urlread urlretrieve urlsave
        urlvalid urlwrap valmap voids wait_port_free wait_port_free_async wait_until waitfor waitfor_async"""),
    'imports': (
        "modules and names fastai's imports.py star-imports and so re-exports (typing extras, samplers, yaml,"
        " scipy...): all.py gives the ones fastai's text code uses (np, pd, torch, nn, F, Counter, re, "
        'tempfile...)',
        """BatchSampler BuiltinFunctionType BuiltinMethodType ByteTensor CategoricalDtype Dict DoubleTensor Enum
        FloatTensor FunctionType Generator HalfTensor IN_COLAB IN_IPYTHON IN_JUPYTER IN_NOTEBOOK IntEnum
        IterableDataset Iterator LambdaType Lock LongTensor MethodDescriptorType MethodType MethodWrapperType Mish
        MutableMapping MutableSequence NoneType Number Process Queue RandomSampler Real Sampler Sequence
        SequentialSampler Set SimpleNamespace Swish TextWrapper TypeVar WrapperDescriptorType all_equal array
        as_completed as_tensor bz2 collections concurrent contextmanager copy csv datetime deepcopy default_collate
        default_convert dropwhile empty enum functools get_worker_info glob hashlib inplace_relu inspect io
        is_numeric_dtype itertools matplotlib methodcaller mimetypes multiprocessing namedtuple ndarray ndimage
        numbers one_is_instance operator platform pv queues redirect_stdout requests scipy set_trace starmap string
        string_classes strtyps takewhile tarfile threading types typing urllib yaml zip_longest zipfile"""),
    'submodules': (
        "fastai's own submodule names that the star import leaks (fastai.text.models.awdlstm, .core)",
        """awdlstm core"""),
}

# fastai's names that `from ulmfit_lit.all import *` gives too
PRESENT = '''
    AWD_LSTM Adam Any AvgLoss AvgMetric AvgSmoothLoss BOS BaseTokenizer Callable Callback CancelBackwardException
    CancelBatchException CancelEpochException CancelFitException CancelStepException CancelTrainException
    CancelValidException CategoryBlock ClassificationInterpretation ColReader ColSplitter Counter
    CrossEntropyLossFlat DataBlock DataLoaders EOS EmbeddingDropout F FLD GetAttr GradientClip GrandparentSplitter
    Iterable L LMDataLoader LMLearner LMTensorText LRFinder Learner LinearDecoder List Metric MixedPrecision
    ModelResetter Module Numericalize Optional OrderedDict PAD Pad_Chunk Pad_Input ParamScheduler Path Perplexity
    PoolingLinearClassifier ProgressCallback RNNDropout RNNRegularizer RandomSplitter Recorder ReindexCollection SGD
    SaveModelCallback SchedCos SchedExp SchedLin SchedNo SentenceEncoder SentencePieceTokenizer SequentialRNN
    SigmoidRange SortedDL SpacyTokenizer SubwordTokenizer TK_MAJ TK_REP TK_UP TK_WREP Tensor TensorCategory
    TensorText TextBlock TextDataLoaders TextLearner TokenizeWithRules Tokenizer TrainEvalCallback Tuple UNK URLs
    Union WeightDropout WordTokenizer accuracy attrgetter awd_lstm_clas_config awd_lstm_clas_split
    awd_lstm_lm_config awd_lstm_lm_split bind chunked clean_raw_keys coll_repr combine_scheds combined_cos compose
    decode_spec_tokens default_device defaultdict defaults delegates detuplify dropout_mask equals eu_langs
    even_mults first fix_html fn_counter_pkl fn_lengths_pkl get_files get_language_model get_text_classifier
    get_text_files ifnone is_coll is_iter is_listy itemgetter join_path_file json language_model_learner listify
    load_ignore_keys load_learner load_model_text load_pickle load_tokenized_csv lowercase make_vocab maps
    masked_concat_pool match_embeds math merge nn noop noops norm_bias_params norm_types np num_distrib one_param os
    pad_chunk pad_input pad_input_chunk parallel_tokenize params parent_label partial partialler patch pd pickle plt
    random range_of rank_distrib re reduce replace_all_caps replace_maj replace_rep replace_space replace_wrep
    reverse_text rm_useless_spaces round_multiple save_pickle set_seed setify shutil sigmoid_range spec_add_spaces
    store_attr sys tempfile tensor test_close test_eq test_eq_type test_fail test_is test_ne test_stdout
    text_classifier_learner time to_cpu to_detach to_device to_np tokenize1 tokenize_csv tokenize_df tokenize_files
    tokenize_folder tokenize_texts torch trainable_params tuplify untar_data valley warn warnings'''


def _ours() -> dict:
    ns = {}
    exec('from ulmfit_lit.all import *', ns)
    ns.pop('__builtins__', None)
    return ns

@pytest.fixture(scope='module')
def fastai_names() -> dict:
    ref = json.loads((FIXTURES/'fastai_text_all_names.json').read_text())
    assert (ref['fastai'], ref['count'], len(ref['names'])) == ('2.8.12', 1189, 1189)
    return ref['names']


def test_every_fastai_text_name_is_given_or_left_out_for_a_reason(fastai_names):
    seen = {}
    for group, (reason, names) in LEFT_OUT.items():
        assert reason.strip() and '\n' not in reason, f"group {group!r} needs a one-line reason"
        for n in names.split():
            assert n not in seen, f"{n} is in two groups: {seen[n]!r} and {group!r}"
            seen[n] = group
    present = PRESENT.split()
    assert len(set(present)) == len(present) and not set(present) & set(seen), set(present) & set(seen)
    assert set(seen) | set(present) == set(fastai_names), {
        'neither given nor left out': sorted(set(fastai_names) - set(seen) - set(present)),
        'not a fastai name': sorted((set(seen) | set(present)) - set(fastai_names))}


def test_left_out_names_are_really_absent(fastai_names):
    ours = _ours()
    given_after_all = {g: sorted(n for n in names.split() if n in ours) for g, (_, names) in LEFT_OUT.items()}
    assert not any(given_after_all.values()), f"given now: move them to PRESENT {given_after_all}"


def test_present_names_are_given(fastai_names):
    ours = _ours()
    assert sorted(n for n in fastai_names if n in ours) == sorted(PRESENT.split())


def test_star_import_gives_the_usual_modules_and_helpers():
    ours = _ours()
    assert ours['np'] is np and ours['pd'] is pd and ours['torch'] is torch and ours['nn'] is nn and ours['F'] is F
    assert ours['L'] is L and ours['test_eq'] is fct.test_eq and ours['Tensor'] is torch.Tensor
    assert ours['partial'] is partial
    assert ours['tensor'] is tensor and ours['Path'] is Path and hasattr(Path, 'ls')   # fastcore's ls() on every Path
    assert ours['defaults'] is defaults and ours['first']([5, 6]) == 5
    assert ours['L'](1, 2, 3).map(lambda o: o * 2) == [2, 4, 6]
    assert not {'A', 'B', 'P', 'S', 'main'} & set(ours)          # no one-letter HTML builders, no CLI entry point


# ---- tensor, Module and the small torch helpers ----

def test_tensor_takes_what_fastais_takes():
    for x, dtype, shape in [([1, 2, 3], torch.int64, (3,)), (range(3), torch.int64, (3,)), ((1, 2), torch.int64, (2,)),
                            (np.array([1, 2]), torch.int64, (2,)), (3, torch.int64, ()),
                            ([1.5, 2], torch.float32, (2,)),
                            (2.5, torch.float32, ()), (np.array([1., 2.]), torch.float32, (2,))]:
        t = tensor(x)
        assert type(t) is torch.Tensor and (t.dtype, tuple(t.shape)) == (dtype, shape), (x, t)
    assert tensor(1, 2, 3).tolist() == [1, 2, 3]
    assert tensor([T([1, 2]), T([3, 4])]).tolist() == [[1, 2], [3, 4]]
    assert tensor([1., 2.], dtype=torch.float64).dtype == torch.float64     # an explicit dtype is kept


def test_module_needs_no_super_init_and_the_param_helpers():
    class Net(Module):
        def __init__(self, n): self.lin, self.emb = nn.Linear(n, 3), nn.Embedding(5, n)
    net = Net(2)
    assert isinstance(net, nn.Module) and [tuple(p.shape) for p in params(net)] == [(3, 2), (3,), (5, 2)]
    net.emb.weight.requires_grad_(False)
    assert trainable_params(net) == [net.lin.weight, net.lin.bias] and one_param(net) is net.lin.weight
    b = {'x': (T([1.]).requires_grad_(), [T([2.])]), 'n': 3}
    d = to_detach(b)
    assert not d['x'][0].requires_grad and d['n'] == 3 and isinstance(d['x'][1], list)
    assert to_cpu(b)['x'][0].device.type == 'cpu'
    assert isinstance(to_np((T([1, 2]), T([3])))[0], np.ndarray)


# ---- SubwordTokenizer, eu_langs ----

def test_subword_tokenizer_is_sentencepiece_with_fastais_settings(home):
    assert SubwordTokenizer is SentencePieceTokenizer
    assert eu_langs == ['bg', 'cs', 'da', 'de', 'el', 'en', 'es', 'et', 'fi', 'fr', 'ga', 'hr', 'hu', 'it', 'lt', 'lv',
                        'mt', 'nl', 'pl', 'pt', 'ro', 'sk', 'sl', 'sv']
    sig = inspect.signature(SubwordTokenizer).parameters
    fastai_sig = dict(lang='en', special_toks=None, sp_model=None, vocab_sz=None, max_vocab_sz=30000,
                      model_type='unigram', char_coverage=None, cache_dir='tmp')
    assert list(sig) == list(fastai_sig)
    # the same defaults but cache_dir: fastai trains under ./tmp of the working folder, ours under the course's home
    assert ({k: p.default for k, p in sig.items() if k != 'cache_dir'}
            == {k: v for k, v in fastai_sig.items() if k != 'cache_dir'})
    assert SubwordTokenizer().cache_dir == home/'sentencepiece'
    assert SubwordTokenizer('de').char_coverage == SubwordTokenizer().char_coverage == 0.99999   # small alphabets
    assert SubwordTokenizer('ja').char_coverage == 0.9998
    assert SubwordTokenizer('ja', char_coverage=0.5).char_coverage == 0.5
    assert SubwordTokenizer().special_toks == defaults.text_spec_tok and len(defaults.text_spec_tok) == 9


def test_subword_tokenizer_splits_text_as_fastbook_uses_it(home, sample_df):
    texts = list(sample_df.text[:200])
    sp = SubwordTokenizer(vocab_sz=1000)
    sp.setup(texts)
    pieces = next(iter(sp([texts[0]])))
    assert ''.join(pieces).replace('▁', ' ').strip() == ' '.join(texts[0].split())   # pieces: the text, cut up
    assert pieces[0].startswith('▁') and len(pieces) < len(texts[0])
    import sentencepiece as spm
    model = spm.SentencePieceProcessor(); model.Load(str(sp.sp_model))
    # as fastai trains it: the special tokens are its first pieces, each after a word start (▁)
    assert model.GetPieceSize() <= 1000
    assert [model.IdToPiece(i) for i in range(9)] == ['▁' + t for t in defaults.text_spec_tok]


# ---- TensorText, LMTensorText, TensorCategory ----

def test_tensor_text_types_and_how_they_print(capsys):
    t = TensorText([1, 2, 3])
    assert isinstance(t, torch.Tensor) and t.dtype == torch.int64 and t.tolist() == [1, 2, 3]   # ints, not floats
    assert issubclass(LMTensorText, TensorText) and issubclass(TensorCategory, torch.Tensor)
    assert repr(t) == str(t) == 'TensorText([1, 2, 3])'
    print(t)
    assert capsys.readouterr().out == 'TensorText([1, 2, 3])\n'
    assert repr(LMTensorText([[1, 2, 3], [4, 5, 6]])) == 'LMTensorText([[1, 2, 3],\n              [4, 5, 6]])'
    assert repr(TensorCategory([0, 1])) == 'TensorCategory([0, 1])'
    # as fastai prints a wide one: rows wrapped and aligned under the class name
    assert repr(TensorText(torch.arange(40).view(2, 20))) == (
        'TensorText([[ 0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14, 15, 16,\n'
        '             17, 18, 19],\n'
        '            [20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36,\n'
        '             37, 38, 39]])')
    assert type(TensorText(T([4, 5]))) is TensorText and TensorText([4, 5], dtype=torch.int32).dtype == torch.int32
    back = pickle.loads(pickle.dumps(LMTensorText([[1, 2]])))
    assert type(back) is LMTensorText and back.tolist() == [[1, 2]]


@pytest.fixture(scope='module')
def small_dls(tmp_path_factory, sample_df):
    "Language-model and classifier loaders on 40 + 40 reviews of the sample, in a home of their own."
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('ULMFIT_LIT_HOME', str(tmp_path_factory.mktemp('compat_home')))
        df = sample_df.groupby('is_valid').head(40).reset_index(drop=True)
        lm = TextDataLoaders.from_df(df, text_col='text', is_lm=True, valid_col='is_valid', bs=8)
        clas = TextDataLoaders.from_df(df, text_col='text', label_col='label', valid_col='is_valid', bs=8,
                                       text_vocab=lm.vocab)
        yield lm, clas


def test_batches_carry_fastais_types(small_dls):
    lm, clas = small_dls
    for dl in (lm.train, lm.valid):
        x, y = dl.one_batch()
        assert (type(x), type(y)) == (LMTensorText, TensorText) and x.dtype == y.dtype == torch.int64
        assert torch.equal(x[:, 1:], y[:, :-1])
    for dl in (clas.train, clas.valid):
        x, y = dl.one_batch()
        assert (type(x), type(y)) == (TensorText, TensorCategory) and x.dtype == y.dtype == torch.int64
    batch = clas.test_dl(['This movie was bad']).one_batch()
    assert len(batch) == 1 and type(batch[0]) is TensorText and batch[0][0, :2].tolist() == [2, 8]   # xxbos xxmaj


# ---- padding: pad_input (with decode), pad_chunk, Pad_Chunk (with decode) ----

THREE = [(T([1, 2, 3]), 1), (T([4, 5]), 2), (T([6]), 3)]

def test_pad_input_pads_at_the_end_to_the_longest():
    fct.test_eq(pad_input(THREE, pad_idx=0), [(T([1, 2, 3]), 1), (T([4, 5, 0]), 2), (T([6, 0, 0]), 3)])
    fct.test_eq(pad_input(THREE), [(T([1, 2, 3]), 1), (T([4, 5, 1]), 2), (T([6, 1, 1]), 3)])   # pad_idx=1 default

def test_pad_input_pad_first_and_backwards():
    fct.test_eq(pad_input(THREE, pad_idx=0, pad_first=True), [(T([1, 2, 3]), 1), (T([0, 4, 5]), 2), (T([0, 0, 6]), 3)])
    # backwards: the text is reversed, and the padding still ends up at the end
    fct.test_eq(pad_input(THREE, pad_idx=0, backwards=True), [(T([3, 2, 1]), 1), (T([5, 4, 0]), 2), (T([6, 0, 0]), 3)])
    fct.test_eq(pad_input(THREE, pad_idx=0, backwards=True, pad_first=True),
            [(T([3, 2, 1]), 1), (T([0, 5, 4]), 2), (T([0, 0, 6]), 3)])

def test_pad_input_pads_only_the_given_fields_each_to_its_own_longest():
    pairs = [(T([1, 2, 3]), T([6])), (T([4, 5]), T([4, 5])), (T([6]), T([1, 2, 3]))]
    fct.test_eq(pad_input(pairs, pad_idx=0, pad_fields=1),
            [(T([1, 2, 3]), T([6, 0, 0])), (T([4, 5]), T([4, 5, 0])), (T([6]), T([1, 2, 3]))])
    both = pad_input([(T([1, 2, 3, 4]), T([9])), (T([5]), T([7, 8]))], pad_idx=0, pad_fields=[0, 1])
    fct.test_eq(both, [(T([1, 2, 3, 4]), T([9, 0])), (T([5, 0, 0, 0]), T([7, 8]))])

def test_pad_input_takes_arrays_and_lists_too():
    out = pad_input([(np.array([1, 2]), 'a'), ([3], 'b')], pad_idx=0)
    assert [(x.tolist(), y) for x, y in out] == [([1, 2], 'a'), ([3, 0], 'b')]

def test_pad_input_keeps_tensor_text_and_decodes_what_it_padded():
    "fastai's test: `pad_input.decode` strips the padding of the last call, whatever pad_idx it used."
    x = pad_input([(TensorText([1, 2, 3]), 1), (TensorText([4, 5]), 2), (TensorText([6]), 3)], pad_idx=0)
    fct.test_eq(x, [(T([1, 2, 3]), 1), (T([4, 5, 0]), 2), (T([6, 0, 0]), 3)])
    assert all(type(s[0]) is TensorText for s in x)
    fct.test_eq(pad_input.decode(x[1][0]), T([4, 5]))
    pad_input(THREE)                                               # pad_idx=1 again: decode strips 1s again
    fct.test_eq(pad_input.decode(T([1, 1, 7, 1])), T([7]))

def test_Pad_Input_is_pad_input_with_settings_and_decodes():
    pi = Pad_Input(pad_idx=0, pad_first=True)
    batch = pi(THREE)
    fct.test_eq(batch, pad_input(THREE, pad_idx=0, pad_first=True))
    assert pi.decodes(batch[1][0]).tolist() == [4, 5]
    assert pi.decode(batch[2][0]).tolist() == [6]
    assert Pad_Input().decodes(T([1, 1, 7, 1])).tolist() == [7]

def test_pad_chunk_pads_one_text_whole_chunks_first():
    x = T([1, 2, 3])
    assert pad_chunk(x, pad_idx=0, seq_len=3, pad_len=8).tolist() == [0, 0, 0, 1, 2, 3, 0, 0]
    assert pad_chunk(x, pad_idx=0, seq_len=3, pad_len=8, pad_first=False).tolist() == [1, 2, 3, 0, 0, 0, 0, 0]
    assert pad_chunk(x, pad_idx=0, seq_len=4, pad_len=9).tolist() == [0, 0, 0, 0, 1, 2, 3, 0, 0]   # 6 pads: 4 + 2
    assert pad_chunk(x, pad_len=3).tolist() == [1, 2, 3]                                   # nothing to add
    assert pad_chunk(x).tolist() == [1, 2, 3, 1, 1, 1, 1, 1, 1, 1]   # defaults: pad_len=10, seq_len=72 (no whole chunk)
    assert pad_chunk(x.to(torch.int32), pad_len=5).dtype == torch.int32                    # keeps the text's dtype

def test_pad_chunk_too_long_a_text_is_a_clear_error():
    with pytest.raises(ValueError, match='more than pad_len=3'): pad_chunk(torch.arange(5), pad_len=3)

def test_Pad_Chunk_callable_and_decodes():
    pc = Pad_Chunk(pad_idx=0, seq_len=2)
    samples = [(T([1, 2, 3, 4, 5, 6]), 1), (T([1, 2, 3]), 2), (T([1, 2]), 3)]
    out = pc(samples)
    fct.test_eq(out, [(T([1, 2, 3, 4, 5, 6]), 1), (T([0, 0, 1, 2, 3, 0]), 2), (T([0, 0, 0, 0, 1, 2]), 3)])
    assert [pc.decodes(x).tolist() for x, _ in out] == [[1, 2, 3, 4, 5, 6], [1, 2, 3], [1, 2]]
    fct.test_eq(Pad_Chunk(pad_idx=0, seq_len=2, pad_first=False)([(s[0],) for s in samples]),
            [(T([1, 2, 3, 4, 5, 6]),), (T([1, 2, 3, 0, 0, 0]),), (T([1, 2, 0, 0, 0, 0]),)])
    fct.test_eq(Pad_Chunk(pad_idx=0, seq_len=2, n_inp=2)([(T([1, 2, 3, 4, 5, 6]), T([1, 2]), 1)]),
            [(T([1, 2, 3, 4, 5, 6]), T([0, 0, 0, 0, 1, 2]), 1)])
    assert Pad_Chunk(pad_idx=0, decode=False).decodes(T([0, 0, 4])).tolist() == [0, 0, 4]
    assert Pad_Chunk().decodes(T([1, 1, 4, 5, 1])).tolist() == [4, 5]

def test_Pad_Chunk_pads_every_text_field_and_decodes_a_batch():
    "fastai's notebook example: two TensorText fields padded to one length, then `decode` of the whole batch."
    pc = Pad_Chunk(pad_idx=0, seq_len=3)
    out = pc([(TensorText([1, 2, 3, 4, 5, 6]), TensorText([1, 2]), 1)])
    fct.test_eq(out, [(T([1, 2, 3, 4, 5, 6]), T([0, 0, 0, 1, 2, 0]), 1)])          # what fastai 2.8.12 gives
    assert [type(v) for v in out[0]] == [TensorText, TensorText, int]
    dec = pc.decode(out)
    fct.test_eq(dec, [(T([1, 2, 3, 4, 5, 6]), T([1, 2]), 1)])
    assert [type(v) for v in dec[0]] == [TensorText, TensorText, int]


# ---- SortedDL's fastai doors: a list of (x, y) samples, before_batch and create_batch ----

DS = [(T([1, 2]), 1), (T([3, 4, 5, 6]), 2), (T([7]), 3), (T([8, 9, 10]), 4)]

def test_sorted_dl_before_batch_pads_the_samples_of_each_batch():
    dl = SortedDL(DS, bs=2, before_batch=partial(pad_input, pad_idx=0))
    fct.test_eq(list(dl), [(T([[3, 4, 5, 6], [8, 9, 10, 0]]), T([2, 4])), (T([[1, 2], [7, 0]]), T([1, 3]))])  # fastai's
    dst = [(TensorText(x), y) for x, y in DS]
    batches = list(SortedDL(dst, bs=2, before_batch=Pad_Chunk(pad_idx=1, seq_len=2)))
    fct.test_eq(batches, [(T([[3, 4, 5, 6], [8, 9, 10, 1]]), T([2, 4])), (T([[1, 2], [7, 1]]), T([1, 3]))])   # fastai's
    assert [(type(x), type(y)) for x, y in batches] == [(TensorText, torch.Tensor)] * 2


def test_sorted_dl_create_batch_replaces_the_collation():
    dl = SortedDL(DS, bs=2, create_batch=partial(pad_input, pad_idx=-1))
    first = next(iter(dl))
    assert type(first) is list                                      # the padded samples, not stacked tensors
    fct.test_eq(first, [(T([3, 4, 5, 6]), 2), (T([8, 9, 10, -1]), 4)])   # fastai's: nothing pads before create_batch
    g = torch.Generator().manual_seed(0)
    ds = [(torch.arange(int(torch.randint(1, 11, (1,), generator=g))), i) for i in range(101)]
    batches = list(SortedDL(ds, bs=2, create_batch=partial(pad_input, pad_idx=-1), shuffle=True, num_workers=0, seed=0))
    assert sorted(i for b in batches for _, i in b) == list(range(101))
    assert max(len(x) for x, _ in batches[0]) == max(len(x) for x, _ in ds)      # the longest text leads
    for b in batches:                                               # each batch padded to its own longest, with -1
        longest = max(int((x != -1).sum()) for x, _ in b)
        assert all(len(x) == longest for x, _ in b)


# ---- LMDataLoader.new ----

def test_lm_dataloader_new_changes_only_what_it_is_given():
    ints = [torch.arange(a, b) for a, b in [(0, 5), (5, 11), (11, 19), (19, 21), (21, 23)]]
    dl = LMDataLoader(ints, bs=4, seq_len=3)
    assert len(dl) == 2
    d2 = dl.new(seq_len=2)
    assert (len(d2), d2.bs, d2.seq_len) == (3, 4, 2)                                    # fastai's figures
    x, y = next(iter(d2))
    assert x.tolist() == [[0, 1], [5, 6], [10, 11], [15, 16]] and y.tolist() == [[1, 2], [6, 7], [11, 12], [16, 17]]
    d3 = dl.new(bs=2)
    assert (len(d3), d3.bs, d3.seq_len) == (4, 2, 3)
    assert next(iter(d3))[0].tolist() == [[0, 1, 2], [11, 12, 13]]
    assert type(dl.new()) is LMDataLoader and dl.new().seq_len == 3 and not dl.new().shuffle
    assert LMDataLoader(ints, bs=4, seq_len=3, shuffle=True).new().shuffle
    assert [b[0].tolist() for b in dl.new()] == [b[0].tolist() for b in dl]           # the same batches


# ---- Tensor.__array_eq__: fastcore's test_eq on tensors, as under fastai ----

def test_test_eq_compares_tensors_that_require_grad():
    t = torch.randn(3, requires_grad=True)
    fct.test_eq(t, t.detach().clone())                                  # without fastai's patch: .numpy() raises
    fct.test_fail(lambda: fct.test_eq(t, t.detach() + 1))
    fct.test_ne(t, t.detach() + 1)
    fct.test_fail(lambda: fct.test_eq(T([1, 2]), T([[1, 2]])))               # another shape is another tensor
    fct.test_eq(T([1., 2.]), T([1, 2]))                                  # values compared, as fastai's torch.equal does
    fct.test_eq(T(3), 3)
    m = nn.Linear(2, 2)
    fct.test_eq(copy.deepcopy(m).weight, m.weight)


# ---- load_model_text, load_ignore_keys ----

SMALL = dict(awd_lstm_clas_config, emb_sz=16, n_hid=32, n_layers=2)

def _trained(dls, tmp_path):
    learn = text_classifier_learner(dls, AWD_LSTM, config=SMALL, pretrained=False, path=tmp_path, quiet=True)
    learn.fit(1, 1e-3)
    return learn

def _fresh(dls, tmp_path):
    learn = text_classifier_learner(dls, AWD_LSTM, config=SMALL, pretrained=False, path=tmp_path, quiet=True)
    learn.create_opt()
    return learn

def _same_weights(a, b): return all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())

def test_load_model_text_loads_model_and_optimizer(small_dls, tmp_path):
    dls = small_dls[1]
    src, dst = _trained(dls, tmp_path), _fresh(dls, tmp_path)
    file = src.save('both')
    assert not _same_weights(src.model, dst.model)
    assert load_model_text(file, dst.model, dst.opt) is dst.model
    assert _same_weights(src.model, dst.model)
    s_state, d_state = src.opt.state_dict()['state'], dst.opt.state_dict()['state']
    assert len(d_state) == len(s_state) > 0
    for k in s_state:
        for name, v in s_state[k].items():
            if torch.is_tensor(v): assert torch.equal(d_state[k][name], v)

def test_load_model_text_with_opt_false_leaves_the_optimizer(small_dls, tmp_path):
    dls = small_dls[1]
    src, dst = _trained(dls, tmp_path), _fresh(dls, tmp_path)
    file = src.save('both')
    load_model_text(file, dst.model, dst.opt, with_opt=False)
    assert _same_weights(src.model, dst.model) and len(dst.opt.state) == 0

def test_load_model_text_bare_state_dict_and_old_fastai_keys(small_dls, tmp_path):
    dls = small_dls[1]
    src, dst = _trained(dls, tmp_path), _fresh(dls, tmp_path)
    sd = src.model.state_dict()
    bare = tmp_path/'bare.pth'
    torch.save(sd, bare)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        load_model_text(bare, dst.model, dst.opt)                    # no optimizer state, not asked for: no warning
    assert _same_weights(src.model, dst.model)
    with pytest.warns(UserWarning, match='holds no optimizer state'):
        load_model_text(bare, dst.model, dst.opt, with_opt=True)
    # an old fastai checkpoint also holds the dropped copy of each recurrent matrix: it is dropped on loading
    old = dict(sd)
    for k in [k for k in sd if k.endswith('.weight_hh_l0_raw')]:
        old[k.replace('.weight_hh_l0_raw', '.module.weight_hh_l0')] = torch.zeros_like(sd[k])
    torch.save({'model': old, 'opt': src.opt.state_dict()}, tmp_path/'old.pth')
    other = _fresh(dls, tmp_path)
    load_model_text(tmp_path/'old.pth', other.model, other.opt)
    assert _same_weights(src.model, other.model)

def test_load_model_text_optimizer_mismatch_warns_only_when_asked(small_dls, tmp_path):
    dls = small_dls[1]
    src = _trained(dls, tmp_path)
    file = src.save('both')
    dst = _fresh(dls, tmp_path)
    wrong_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)   # a different parameter layout
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        load_model_text(file, dst.model, wrong_opt)                  # with_opt=None: quietly skipped
    assert _same_weights(src.model, dst.model)
    with pytest.warns(UserWarning, match='optimizer state .* was not loaded'):
        load_model_text(file, dst.model, wrong_opt, with_opt=True)
    with pytest.warns(UserWarning, match='no optimizer to load it into'):
        load_model_text(file, dst.model, None, with_opt=True)

def test_load_model_text_strict_and_weights_only(small_dls, tmp_path):
    dst = _fresh(small_dls[1], tmp_path)
    bad = tmp_path/'bad.pth'
    torch.save({'model': {'nope': torch.zeros(1)}}, bad)
    with pytest.raises(RuntimeError): load_model_text(bad, dst.model, dst.opt)
    evil = tmp_path/'evil.pth'
    torch.save({'model': dst.model.state_dict(), 'extra': object()}, evil)   # a pickled object: refused
    with pytest.raises(pickle.UnpicklingError, match='[Ww]eights only'): load_model_text(evil, dst.model, dst.opt)

def test_load_ignore_keys_pairs_tensors_by_position():
    a, b = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)), nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    renamed = {f'other.{i}': v for i, v in enumerate(b.state_dict().values())}     # names that match nothing
    assert load_ignore_keys(a, renamed) is a and _same_weights(a, b)
    before = {k: v.clone() for k, v in a.state_dict().items()}
    with pytest.raises(ValueError, match='cannot pair up'): load_ignore_keys(a, dict(list(renamed.items())[:3]))
    swapped = dict(zip(renamed, [renamed['other.2'], renamed['other.3'], renamed['other.0'], renamed['other.1']]))
    with pytest.raises(ValueError, match=r"is \(4, 3\) but its partner .* is \(2, 4\); nothing was loaded"):
        load_ignore_keys(a, swapped)
    assert all(torch.equal(v, before[k]) for k, v in a.state_dict().items())
