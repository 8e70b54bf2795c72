import ml_collections
import pytest

from jaxnas import config as config_lib
from jaxnas.config import ConfigError


def test_parse_overrides_both_forms():
    parsed = config_lib.parse_overrides(['--config.a.b=1', '--config.c', 'x', '--config.d=0.5'])
    assert parsed == [('a.b', '1'), ('c', 'x'), ('d', '0.5')]     # text, read by the field's type
    assert all(isinstance(v, config_lib.CommandLineValue) for _, v in parsed)
    with pytest.raises(ConfigError, match='has no value'):
        config_lib.parse_overrides(['--config.a'])


def _leaves(c, prefix=''):
    for k, v in c.items():
        if isinstance(v, ml_collections.ConfigDict):
            yield from _leaves(v, f'{prefix}{k}.')
        else:
            yield f'{prefix}{k}', v


def test_every_field_has_a_command_line_form():
    """Each field's default, written as the README says (``a,b`` for tuples), reads back equal."""
    base = config_lib.base_config()
    fields = dict(_leaves(base))
    for key, default in fields.items():
        text = config_lib._cli_form(default) if default is not None else 'None'
        c = config_lib.apply_overrides(config_lib.base_config(), config_lib.parse_overrides([f'--config.{key}={text}']))
        value = dict(_leaves(c))[key]
        assert value == default and type(value) is type(default), (key, text, value)


def test_tuple_fields_take_lists_typed_per_element():
    c = config_lib.base_config()
    read = lambda arg: config_lib.apply_overrides(c, config_lib.parse_overrides([arg]))
    for text in ('darts,gdas', '(darts, gdas)', '[darts,gdas]', "('darts', 'gdas')"):
        assert read(f'--config.compare.relaxations={text}').compare.relaxations == ('darts', 'gdas')
    assert read('--config.compare.relaxations=snas').compare.relaxations == ('snas',)
    assert read('--config.compare.seeds=0,1,2').compare.seeds == (0, 1, 2)
    assert read('--config.compare.seeds=()').compare.seeds == ()
    assert read('--config.model.mbconv.widths=(12,16,24)').model.mbconv.widths == (12, 16, 24)
    cell = "Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=[2], reduce=[], reduce_concat=[2])"
    assert read(f'--config.discrete.cells={cell},|skip_connect~0|').discrete.cells == (cell, '|skip_connect~0|')
    with pytest.raises(ConfigError, match="'compare.seeds': element 'x' is not an integer"):
        read('--config.compare.seeds=0,x')
    with pytest.raises(ConfigError, match="element 'enas' is unknown; choose each from darts, gdas"):
        read('--config.compare.relaxations=darts,enas')


def test_scalars_read_by_field_type():
    c = config_lib.base_config()
    read = lambda arg: config_lib.apply_overrides(c, config_lib.parse_overrides([arg]))
    assert read('--config.name=123').name == '123'                       # a string field keeps the text
    assert read('--config.search.fuse_phases=false').search.fuse_phases is False
    assert read('--config.optim.w_lr=1e-2').optim.w_lr == 0.01
    assert read('--config.optim.w_lr=1').optim.w_lr == 1.0 and isinstance(c.optim.w_lr, float)
    assert read('--config.data.data_dir=/x/y').data.data_dir == '/x/y'
    assert read('--config.data.data_dir=None').data.data_dir is None     # a placeholder takes None
    assert read('--config.discrete.target=0.9').discrete.target == 0.9
    assert read('--config.compare.kwargs.pcdarts.k=2').compare.kwargs.pcdarts.k == 2   # new kwargs section
    for arg, message in (('--config.model.channels=8.5', "'model.channels': expected an integer, e.g. "
                                                         '--config.model.channels=8'),
                         ('--config.search.fuse_phases=2', 'expected true or false'),
                         ('--config.optim.w_lr=fast', 'expected a number'),
                         ('--config.model.channels=None', 'expected an integer')):
        with pytest.raises(ConfigError, match=message.replace('.', r'\.').replace('(', r'\(')):
            read(arg)


def test_choices_named_at_override_and_at_validation():
    table = config_lib.choices()
    assert {'space', 'relaxation.name', 'search.order', 'search.mode', 'data.name', 'discrete.searcher',
            'discrete.fitness.mode', 'discrete.fitness.objective'} <= set(table)
    base = config_lib.base_config()
    for key, options in table.items():
        default = dict(_leaves(base))[key]
        assert all(v in options for v in (default if isinstance(default, tuple) else (default,))), key
        bad = 'magic,darts' if isinstance(default, tuple) else 'magic'
        with pytest.raises(ConfigError) as info:          # at override time
            config_lib.apply_overrides(config_lib.base_config(), config_lib.parse_overrides([f'--config.{key}={bad}']))
        message = str(info.value)
        assert key in message and 'magic' in message and 'ml_collections' not in message
        assert all(str(o) in message for o in options if o), message
        c = config_lib.base_config()                      # at validation time (a config file's value)
        node, leaf = c, key.split('.')
        for part in leaf[:-1]:
            node = node[part]
        node[leaf[-1]] = ('magic',) if isinstance(default, tuple) else 'magic'
        with pytest.raises(ConfigError, match='choose'):
            config_lib.check_shared(c)
    with pytest.raises(ConfigError, match=r"'discrete\.fitness' is a section.*mode \(short_training\|"):
        config_lib.apply_overrides(config_lib.base_config(), config_lib.parse_overrides(['--config.discrete.fitness=x']))


def test_apply_overrides_type_checks():
    c = config_lib.get_config()
    config_lib.apply_overrides(c, [('model.channels', 16), ('optim.w_lr', 1), ('search.order', 'second')])
    assert c.model.channels == 16 and c.optim.w_lr == 1.0 and c.search.order == 'second'
    with pytest.raises(ConfigError, match="bad value 'x'"):
        config_lib.apply_overrides(c, [('model.layers', 'x')])
    with pytest.raises(ConfigError, match="unknown config field 'nope'"):
        config_lib.apply_overrides(c, [('nope.x', 1)])


def test_relaxation_kwargs_accept_new_keys():
    c = config_lib.get_config()
    config_lib.apply_overrides(c, [('relaxation.kwargs.temperature', 2.0)])
    config_lib.validate(c)
    config_lib.apply_overrides(c, [('relaxation.kwargs.tau', 2.0)])
    with pytest.raises(ConfigError):
        config_lib.validate(c)


def test_default_config_is_valid_and_experiments_load():
    config_lib.validate(config_lib.get_config())
    for spec in ('experiments/digits.py', 'experiments/digits.py:second', 'experiments/tiny.py',
                 'experiments/cifar10_darts.py:second'):
        config_lib.validate(config_lib.load_config(spec))
    assert config_lib.load_config('experiments/digits.py:second').search.order == 'second'
