"""A catalogue of bad inputs to every command (search, compare, discrete, retrain, run).

Each case runs ``jaxnas.cli.main(argv)`` in-process with ``--workdir`` in a fresh
temporary directory and asserts the contract of a bad input: exit status 2, exactly one
line on stderr beginning ``error:`` that names the field (or file) and the fix, nothing
on stdout, no file or directory written (the work directory is not created, the current
directory gets no ``runs/``, the input files are unchanged) and no program compiled.
"""
import os

import jax
import pytest

from jaxnas import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, 'experiments', 'tiny.py')
DISCRETE = os.path.join(ROOT, 'experiments', 'digits_discrete.py') + ':tiny'
NATS_FAKE = os.path.join(ROOT, 'tests', 'data', 'nats_bench_fake', 'NATS-tss-v1_0-3ffb9-simple')

# Input files the cases name as {in}/NAME; {in} is a directory made once per module.
FILES = {
    'afile': 'not a directory\n',
    'raises.py': 'def get_config(arg=None):\n    raise ValueError("boom")\n',
    'raises_lines.py': 'def get_config(arg=None):\n    raise RuntimeError("first line\\nsecond line")\n',
    'noget.py': 'x = 1\n',
    'syntax.py': 'def get_config(:\n',
    'returns_dict.py': 'def get_config():\n    return {}\n',
    'noarg.py': 'from jaxnas.config import base_config\n\n\ndef get_config():\n    return base_config()\n',
    'invalid.json': '{nope',
    'darts_bad.json': '{"space": "darts", "normal": 5}',
    'space_unknown.json': '{"space": "foo"}',
    'nb201_bad.json': '{"space": "nb201", "cell": 3}',
    'mbconv_bad.json': '{"space": "mbconv", "stages": [["skip"]]}',
    'list.json': '[1, 2]',
    'garbage.txt': 'garbage\n',
}
DIRS = ('emptydir', 'tfds_empty')

DARTS_BAD_OP = ("Genotype(normal=[('bogus_op', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
                "('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], "
                "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
                "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
                "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
DARTS_ODD = "Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=[2], reduce=[], reduce_concat=[2])"
NB201_BAD_OP = '|nor_conv_3x3~0|+|bad~0|nor_conv_3x3~1|+|skip_connect~0|skip_connect~1|skip_connect~2|'

# (id, argv, what stderr must name: the field or file, and words of the fix)
CASES = [
    # ---- search: fields, types, ranges, choices ------------------------------------------
    ('unknown-field', ['search', '--config', TINY, '--config.model.chanels=8'], ["'model.chanels'", 'fields here']),
    ('unknown-section', ['search', '--config', TINY, '--config.nope.x=1'], ["'nope'", 'fields here']),
    ('value-not-section', ['search', '--config', TINY, '--config.model.channels.x=3'],
     ["'model.channels'", '--config.model.channels=VALUE']),
    ('section-not-value', ['search', '--config', TINY, '--config.model=3'],
     ["'model'", '--config.model.FIELD=VALUE', 'channels']),
    ('empty-field-name', ['search', '--config', TINY, '--config.=3'], ['--config.=3', '--config.FIELD=VALUE']),
    ('int-not-a-number', ['search', '--config', TINY, '--config.model.channels=abc'],
     ["'model.channels'", 'expected an integer', '--config.model.channels=2']),
    ('int-given-float', ['search', '--config', TINY, '--config.search.epochs=1.5'],
     ["'search.epochs'", 'expected an integer']),
    ('bool-not-bool', ['search', '--config', TINY, '--config.search.fuse_phases=maybe'],
     ["'search.fuse_phases'", 'true or false']),
    ('float-not-a-number', ['search', '--config', TINY, '--config.optim.w_lr=fast'],
     ["'optim.w_lr'", 'expected a number']),
    ('seed-not-int', ['search', '--config', TINY, '--config.seed=abc'], ["'seed'", 'expected an integer']),
    ('negative-epochs', ['search', '--config', TINY, '--config.search.epochs=-1'], ['search.epochs=-1', 'must be >= 1']),
    ('batch-0', ['search', '--config', TINY, '--config.data.batch_size=0'], ['data.batch_size=0', 'must be']),
    ('portion-above-1', ['search', '--config', TINY, '--config.data.train_portion=1.5'],
     ['data.train_portion=1.5', 'must be in']),
    ('portion-0', ['search', '--config', TINY, '--config.data.train_portion=0'], ['data.train_portion=0', 'must be in']),
    ('negative-limit', ['search', '--config', TINY, '--config.data.limit=-5'], ['data.limit=-5', 'must be']),
    ('eval-batch-0', ['search', '--config', TINY, '--config.data.eval_batch_size=0'],
     ['data.eval_batch_size=0', 'must be']),
    ('lr-0', ['search', '--config', TINY, '--config.optim.w_lr=0'], ['optim.w_lr=0', 'must be > 0']),
    ('momentum-1', ['search', '--config', TINY, '--config.optim.w_momentum=1.0'], ['optim.w_momentum', 'must be in']),
    ('lr-min-above-lr', ['search', '--config', TINY, '--config.optim.w_lr_min=1.0'], ['optim.w_lr_min', 'optim.w_lr']),
    ('grad-clip-0', ['search', '--config', TINY, '--config.optim.grad_clip=0'], ['optim.grad_clip', 'must be > 0']),
    ('channels-1', ['search', '--config', TINY, '--config.model.channels=1'], ['model.channels=1', 'must be >= 2']),
    ('hessian-iters-0', ['search', '--config', TINY, '--config.search.hessian_iters=0'],
     ['search.hessian_iters=0', 'must be >= 1']),
    ('unknown-relaxation', ['search', '--config', TINY, '--config.relaxation.name=enas'],
     ['relaxation.name', 'choose one of', 'gdas']),
    ('unknown-space', ['search', '--config', TINY, '--config.space=nasbench101'], ['space', 'choose one of', 'nb201']),
    ('unknown-order', ['search', '--config', TINY, '--config.search.order=third'],
     ['search.order', 'choose one of', 'finite_difference']),
    ('unknown-mode', ['search', '--config', TINY, '--config.search.mode=sparse'],
     ['search.mode', 'choose one of', 'single_path']),
    ('unknown-data-set', ['search', '--config', TINY, '--config.data.name=imagenet'],
     ['data.name', 'choose one of', 'cifar10']),
    ('unknown-relaxation-kwarg', ['search', '--config', TINY, '--config.relaxation.kwargs.tau=2.0'],
     ['relaxation.kwargs', 'tau']),
    ('darts-channels-not-divisible', ['search', '--config', TINY, '--config.relaxation.name=pcdarts',
                                      '--config.model.channels=6'], ['model.channels=6', 'divisible', 'k=4']),
    ('nb201-channels-not-divisible', ['search', '--config', TINY, '--config.space=nb201',
                                      '--config.relaxation.name=pcdarts', '--config.model.channels=6'],
     ['model.channels=6', 'divisible']),
    ('mbconv-widths-not-divisible', ['search', '--config', TINY, '--config.space=mbconv',
                                     '--config.relaxation.name=pcdarts', '--config.model.mbconv.widths=12,18,24'],
     ['model.mbconv.widths', 'divisible']),
    ('mbconv-widths-vs-strides', ['search', '--config', TINY, '--config.space=mbconv',
                                  '--config.model.mbconv.widths=12,16'], ['model.mbconv.strides', 'one stride per stage']),
    ('data-not-prepared', ['search', '--config', TINY, '--config.data.name=cifar10',
                           '--config.data.data_dir={in}/tfds_empty'], ["'cifar10'", 'not prepared', 'tfds build cifar10']),
    ('override-without-value', ['search', '--config', TINY, '--config.seed'], ['--config.seed', '--config.seed=VALUE']),
    ('positional-argument', ['search', '--config', TINY, 'positional'], ["'positional'", '--config.model.channels=8']),
    ('unknown-option', ['search', '--config', TINY, '--bogus'], ['--bogus', 'jaxnas search --help']),
    # ---- config files ----------------------------------------------------------------------
    ('config-missing', ['search', '--config', '{in}/nope.py'], ['{in}/nope.py', 'does not exist', 'experiments/']),
    ('config-not-python', ['search', '--config', '{in}/garbage.txt'], ['garbage.txt', 'path/to/file.py']),
    ('config-no-get-config', ['search', '--config', '{in}/noget.py'], ['{in}/noget.py', 'get_config']),
    ('config-raises', ['search', '--config', '{in}/raises.py'], ['{in}/raises.py', 'ValueError: boom', 'fix the file']),
    ('config-raises-multiline', ['run', '--config', '{in}/raises_lines.py'],
     ['{in}/raises_lines.py', 'RuntimeError: first line / second line']),
    ('config-syntax-error', ['search', '--config', '{in}/syntax.py'], ['{in}/syntax.py', 'SyntaxError']),
    ('config-returns-dict', ['search', '--config', '{in}/returns_dict.py'],
     ['{in}/returns_dict.py', 'must return an ml_collections.ConfigDict']),
    ('config-takes-no-arg', ['search', '--config', '{in}/noarg.py:x'],
     ['{in}/noarg.py', 'takes no argument', '--config {in}/noarg.py']),
    # ---- work directories ------------------------------------------------------------------
    ('workdir-under-file', ['search', '--config', TINY, '--workdir', '{in}/afile/sub'],
     ['{in}/afile/sub', '{in}/afile is a file', 'pass a --workdir']),
    ('workdir-is-file', ['retrain', '--config', TINY, '--genotype', 'DARTS_V2', '--workdir', '{in}/afile'],
     ['--workdir {in}/afile is a file', 'pass a new --workdir']),
    ('run-workdir-under-file', ['run', '--config', TINY, '--workdir', '{in}/afile/x/y'],
     ['{in}/afile is a file', 'pass a --workdir']),
    # ---- compare -----------------------------------------------------------------------------
    ('compare-unknown-relaxation', ['compare', '--config', TINY, '--config.compare.relaxations=darts,enas'],
     ['compare.relaxations', "'enas'", 'choose each from']),
    ('compare-no-relaxations', ['compare', '--config', TINY, '--config.compare.relaxations=()'],
     ['compare.relaxations=()', 'name at least one relaxation']),
    ('compare-seeds-not-int', ['compare', '--config', TINY, '--config.compare.seeds=a,b'],
     ["'compare.seeds'", "element 'a'", 'integers separated by commas']),
    ('compare-no-seeds', ['compare', '--config', TINY, '--config.compare.seeds=[]'],
     ['compare.seeds=()', 'give at least one seed']),
    ('compare-kwargs-of-absent-relaxation', ['compare', '--config', TINY, '--config.compare.relaxations=darts',
                                             '--config.compare.kwargs.zeta.k=1'], ['compare.kwargs', "'zeta'"]),
    ('compare-data-not-prepared', ['compare', '--config', TINY, '--config.compare.relaxations=darts',
                                   '--config.data.name=cifar100', '--config.data.data_dir={in}/tfds_empty'],
     ["'cifar100'", 'tfds build cifar100']),
    ('compare-workdir-under-file', ['compare', '--config', TINY, '--config.compare.relaxations=darts,gdas',
                                    '--workdir', '{in}/afile/study'],
     ['{in}/afile is a file', 'pass a --workdir']),
    ('compare-pcdarts-k-vs-channels', ['compare', '--config', TINY, '--config.compare.relaxations=(darts,pcdarts)',
                                       '--config.compare.kwargs.pcdarts.k=3'], ['model.channels=2', 'divisible', 'k=3']),
    # ---- discrete ----------------------------------------------------------------------------
    ('discrete-searcher-option', ['discrete', '--config', DISCRETE, '--searcher', 'annealing'],
     ['--searcher', "'annealing'", 'evolution', 'jaxnas discrete --help']),
    ('discrete-fitness-option', ['discrete', '--config', DISCRETE, '--fitness', 'magic'],
     ['--fitness', "'magic'", 'short_training']),
    ('discrete-searcher', ['discrete', '--config', DISCRETE, '--config.discrete.searcher=annealing'],
     ['discrete.searcher', 'choose one of', 'reinforce']),
    ('discrete-fitness-section', ['discrete', '--config', DISCRETE, '--config.discrete.fitness=magic'],
     ["'discrete.fitness'", '--config.discrete.fitness.FIELD=VALUE', 'mode (short_training|weight_sharing|tabular)']),
    ('discrete-fitness-mode', ['discrete', '--config', DISCRETE, '--config.discrete.fitness.mode=oracle'],
     ['discrete.fitness.mode', 'choose one of', 'weight_sharing']),
    ('discrete-objective', ['discrete', '--config', DISCRETE, '--config.discrete.fitness.objective=best'],
     ['discrete.fitness.objective', 'choose one of', 'mnas']),
    ('discrete-objective-without-cost', ['discrete', '--config', DISCRETE, '--config.discrete.fitness.objective=linear'],
     ['discrete.fitness.cost', 'needs a cost']),
    ('discrete-batch-0', ['discrete', '--config', DISCRETE, '--config.discrete.batch_size=0'],
     ['discrete.batch_size=0', 'must be']),
    ('discrete-no-budget', ['discrete', '--config', DISCRETE, '--config.discrete.max_evaluations=0'],
     ['discrete.max_evaluations=0', 'must be >= 1']),
    ('discrete-steps-0', ['discrete', '--config', DISCRETE, '--config.discrete.short_training.steps=0'],
     ['discrete.short_training.steps=0', 'must be >= 1']),
    ('discrete-sample-above-population', ['discrete', '--config', DISCRETE,
                                          '--config.discrete.evolution.sample_size=50'],
     ['discrete.evolution', 'sample_size (50) must be <= population_size']),
    ('discrete-unknown-searcher-field', ['discrete', '--config', DISCRETE, '--config.discrete.evolution.tournament=3'],
     ["'discrete.evolution.tournament'", 'population_size']),
    ('discrete-negative-lr', ['discrete', '--config', DISCRETE, '--searcher=reinforce',
                              '--config.discrete.reinforce.learning_rate=-1.0'],
     ['discrete.reinforce', 'learning_rate must be']),
    ('discrete-network', ['discrete', '--config', DISCRETE, '--config.discrete.short_training.network=resnet'],
     ['discrete.short_training.network', 'choose one of', 'evalnet']),
    ('discrete-execution', ['discrete', '--config', DISCRETE, '--config.discrete.short_training.execution=vectorised'],
     ['discrete.short_training.execution', 'choose one of', 'single_path']),
    ('discrete-batch-norm', ['discrete', '--config', DISCRETE, '--config.discrete.fitness.mode=weight_sharing',
                             '--config.discrete.weight_sharing.batch_norm=group'],
     ['discrete.weight_sharing.batch_norm', 'choose one of', 'running']),
    ('discrete-shared-relaxation', ['discrete', '--config', DISCRETE, '--config.discrete.fitness.mode=weight_sharing',
                                    '--config.discrete.weight_sharing.relaxation=enas'],
     ['discrete.weight_sharing.relaxation', 'choose one of', 'random_path']),
    ('discrete-tabular-without-path', ['discrete', '--config', DISCRETE, '--config.space=nb201',
                                       '--config.discrete.fitness.mode=tabular'],
     ['discrete.tabular.path', 'NATS-tss-v1_0-3ffb9-simple']),
    ('discrete-tabular-path-missing', ['discrete', '--config', DISCRETE, '--config.space=nb201',
                                       '--config.discrete.fitness.mode=tabular', '--config.discrete.tabular.path={in}/nats'],
     ['discrete.tabular.path', '{in}/nats', 'exists']),
    ('discrete-tabular-on-darts', ['discrete', '--config', DISCRETE, '--config.discrete.fitness.mode=tabular',
                                   f'--config.discrete.tabular.path={NATS_FAKE}'],
     ['discrete.fitness.mode', 'no tabular benchmark']),
    ('discrete-data-not-prepared', ['discrete', '--config', DISCRETE, '--config.data.name=cifar10',
                                    '--config.data.data_dir={in}/tfds_empty'], ["'cifar10'", 'tfds build cifar10']),
    ('discrete-bad-cell', ['discrete', '--config', DISCRETE, '--config.discrete.cells=bogus'],
     ['discrete.cells', "'bogus'", 'published name']),
    # ---- retrain: genotypes of every space, as text and as files -----------------------------
    ('retrain-no-genotype', ['retrain', '--config', TINY], ['--genotype', 'jaxnas retrain --help']),
    ('genotype-unknown-name', ['retrain', '--config', TINY, '--genotype', 'DARTS_V9'],
     ["'DARTS_V9'", 'DARTS_V2', 'MOBILENETV2', 'architecture string']),
    ('darts-text-unknown-op', ['retrain', '--config', TINY, '--genotype', DARTS_BAD_OP], ["'bogus_op'", 'sep_conv_3x3']),
    ('darts-text-odd-pairs', ['retrain', '--config', TINY, '--genotype', DARTS_ODD], ['pairs']),
    ('nb201-text-unknown-op', ['retrain', '--config', TINY, '--genotype', NB201_BAD_OP],
     ["'bad'", 'choose one of none, skip_connect']),
    ('nb201-text-nodes', ['retrain', '--config', TINY, '--genotype', '|nor_conv_3x3~0|+'], ['has 2 node(s)', 'has 3']),
    ('mbconv-text-unknown-op', ['retrain', '--config', TINY, '--genotype', 'mbconv:k9e6'],
     ["'k9e6'", 'choose one of k3e3']),
    ('mbconv-text-empty-layer', ['retrain', '--config', TINY, '--genotype', 'mbconv:k3e3--k3e3'],
     ["'mbconv:k3e3--k3e3'", "'mbconv:k3e6-k5e3|"]),
    ('genotype-json-missing', ['retrain', '--config', TINY, '--genotype', '{in}/nope.json'],
     ['{in}/nope.json', 'does not exist']),
    ('genotype-json-invalid', ['retrain', '--config', TINY, '--genotype', '{in}/invalid.json'],
     ['{in}/invalid.json', 'not valid JSON']),
    ('darts-json-content', ['retrain', '--config', TINY, '--genotype', '{in}/darts_bad.json'],
     ['genotype JSON', 'normal, normal_concat, reduce, reduce_concat']),
    ('genotype-json-space', ['retrain', '--config', TINY, '--genotype', '{in}/space_unknown.json'],
     ["'foo'", 'choose one of darts, nb201, mbconv']),
    ('nb201-json-content', ['retrain', '--config', TINY, '--genotype', '{in}/nb201_bad.json'],
     ['NAS-Bench-201 genotype JSON', '"arch"']),
    ('mbconv-json-content', ['retrain', '--config', TINY, '--genotype', '{in}/mbconv_bad.json'],
     ['stage 0 starts with skip', 'must be an MBConv op']),
    ('genotype-json-list', ['retrain', '--config', TINY, '--genotype', '{in}/list.json'],
     ['list', 'JSON object {"space": ...}']),
    ('genotype-txt-missing', ['retrain', '--config', TINY, '--genotype', '{in}/nope.txt'],
     ['{in}/nope.txt', 'does not exist']),
    ('genotype-txt-garbage', ['retrain', '--config', TINY, '--genotype', '{in}/garbage.txt'],
     ["'garbage'", 'Genotype(...) text']),
    ('genotype-dir-without-genotype', ['retrain', '--config', TINY, '--genotype', '{in}/emptydir'],
     ['{in}/emptydir has no genotype.txt', 'jaxnas search --workdir {in}/emptydir']),
    ('genotype-dir-missing', ['retrain', '--config', TINY, '--genotype', '{in}/missing/search'],
     ['{in}/missing/search', 'does not exist']),
    # ---- retrain: its config -------------------------------------------------------------------
    ('retrain-epochs-0', ['retrain', '--config', TINY, '--genotype', 'DARTS_V2', '--config.retrain.epochs=0'],
     ['retrain.epochs=0', 'must be >= 1']),
    ('retrain-batch-0', ['retrain', '--config', TINY, '--genotype', 'DARTS_V2', '--config.retrain.batch_size=0'],
     ['retrain.batch_size=0', 'must be >= 2']),
    ('retrain-batch-above-data', ['retrain', '--config', TINY, '--genotype', 'DARTS_V2',
                                  '--config.retrain.batch_size=100000'], ['retrain.batch_size=100000', 'larger than']),
    ('retrain-dtype', ['retrain', '--config', TINY, '--genotype', 'DARTS_V2', '--config.retrain.compute_dtype=float16'],
     ['retrain.compute_dtype', 'choose one of', 'bfloat16']),
    ('retrain-seed-batching', ['retrain', '--config', TINY, '--genotype', 'DARTS_V2',
                               '--config.retrain.seed_batching=pmap'], ['retrain.seed_batching', 'choose one of', 'vmap']),
    ('retrain-network', ['retrain', '--config', TINY, '--genotype', 'DARTS_V2', '--config.retrain.network=mobilenet'],
     ['retrain.network', 'choose one of', 'imagenet']),
    ('retrain-aux-channels', ['retrain', '--config', TINY, '--genotype', 'DARTS_V2', '--config.retrain.aux_channels=128'],
     ['retrain.aux_channels=(128,)', 'two positive widths']),
    ('retrain-drop-path-1', ['retrain', '--config', TINY, '--genotype', 'DARTS_V2', '--config.retrain.drop_path_prob=1.0'],
     ['retrain.drop_path_prob', 'must be in [0, 1)']),
    ('retrain-portion-above-1', ['retrain', '--config', TINY, '--genotype', 'DARTS_V2',
                                 '--config.data.train_portion=2.0'], ['data.train_portion=2.0', 'must be in']),
    ('retrain-unknown-data-set', ['retrain', '--config', TINY, '--genotype', 'DARTS_V2', '--config.data.name=bogus'],
     ['data.name', 'choose one of', 'digits']),
    ('retrain-data-not-prepared', ['retrain', '--config', TINY, '--genotype', 'DARTS_V2', '--config.data.name=svhn_cropped',
                                   '--config.data.data_dir={in}/tfds_empty'], ["'svhn_cropped'", 'tfds build svhn_cropped']),
    ('retrain-mbconv-macro', ['retrain', '--config', TINY, '--genotype', 'MOBILENETV2', '--config.space=mbconv',
                              '--config.retrain.mbconv.strides=1,2'], ['retrain.mbconv', 'stride']),
    # ---- run (the pipeline) --------------------------------------------------------------------
    ('run-seeds-0', ['run', '--config', TINY, '--config.pipeline.num_seeds=0'], ['pipeline.num_seeds=0', 'must be >= 1']),
    ('run-search-epochs', ['run', '--config', TINY, '--config.pipeline.search_epochs=-1'],
     ['pipeline.search_epochs=-1', 'must be >= 0']),
    ('run-baseline-blocks', ['run', '--config', TINY, '--config.baseline.blocks=1,1'],
     ['baseline.blocks=(1, 1)', 'three positive block counts']),
    ('run-baseline-tolerance', ['run', '--config', TINY, '--config.baseline.tolerance=2.0'],
     ['baseline.tolerance', 'must be in (0, 1)']),
    ('run-genotype-name', ['run', '--config', TINY, '--genotype', 'nope_name'], ["'nope_name'", 'DARTS_V2']),
    ('run-genotype-dir', ['run', '--config', TINY, '--genotype', '{in}/emptydir'], ['{in}/emptydir has no genotype.txt']),
    ('run-data-not-prepared', ['run', '--config', TINY, '--config.data.name=mnist',
                               '--config.data.data_dir={in}/tfds_empty'], ["'mnist'", 'tfds build mnist']),
]


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp('inputs')
    for name, text in FILES.items():
        (root / name).write_text(text)
    for name in DIRS:
        (root / name).mkdir()
    return str(root)


# The one-op programs jax 0.10 compiles to put a constant table on the device (searchers'
# and relaxations' masks, made while a config is checked); anything else is a program of
# the run's and must not compile for a bad input.
DEVICE_PUT = {'jit(stage)'}


@pytest.fixture(scope='module')
def compiles():
    """Names of the programs XLA compiled since the module started."""
    seen = []

    def listener(event, duration, fun_name=None, **kwargs):
        if event == '/jax/core/compile/backend_compile_duration':
            seen.append(fun_name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    yield seen
    jax.monitoring.unregister_event_duration_listener(listener)


def _snapshot(root):
    return sorted((d, tuple(sorted(fs)), tuple(sorted(ds))) for d, ds, fs in os.walk(root))


def test_catalogue_has_every_command_and_enough_cases():
    assert len(CASES) >= 50 and len({c[0] for c in CASES}) == len(CASES)
    assert {c[1][0] for c in CASES} == {'search', 'compare', 'discrete', 'retrain', 'run'}


@pytest.mark.parametrize('argv, names', [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(argv, names, inputs, compiles, tmp_path, monkeypatch, capsys):
    cwd = tmp_path / 'cwd'
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    workdir = str(tmp_path / 'wd')
    argv = [a.replace('{in}', inputs) for a in argv]
    if '--workdir' not in argv:
        argv = argv[:1] + ['--workdir', workdir] + argv[1:]
    argv.append('--no-progress')
    before, n_compiles = _snapshot(inputs), len(compiles)
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, err
    assert err.startswith('error: ') and err.endswith('\n') and err.count('\n') == 1, err
    for name in names:
        assert name.replace('{in}', inputs) in err, (name, err)
    assert out == ''
    assert not os.path.exists(workdir) and os.listdir(cwd) == []     # no work directory, no runs/
    assert _snapshot(inputs) == before                               # inputs untouched
    compiled = set(compiles[n_compiles:]) - DEVICE_PUT
    assert not compiled, f'a bad input must be refused before anything compiles: {compiled}'


def test_default_workdir_not_created_in_cwd(tmp_path, monkeypatch, capsys):
    """Without --workdir the default runs/<name> is not created for a bad input either."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(['search', '--config', TINY, '--config.search.epochs=0']) == 2
    assert 'search.epochs=0' in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason='root can write to a read-only directory')
def test_read_only_workdir_parent(tmp_path, capsys):
    parent = tmp_path / 'ro'
    parent.mkdir()
    parent.chmod(0o500)
    try:
        rc = cli.main(['search', '--config', TINY, '--workdir', str(parent / 'wd'), '--no-progress'])
        err = capsys.readouterr().err
        assert rc == 2 and err.count('\n') == 1 and 'is not writable' in err and 'pass a --workdir' in err
        assert os.listdir(parent) == []
    finally:
        parent.chmod(0o700)
