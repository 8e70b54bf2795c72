import pytest

from jaxnas import config as config_lib
from jaxnas.config import ConfigError


def test_parse_overrides_both_forms():
    assert config_lib.parse_overrides(['--config.a.b=1', '--config.c', 'x', '--config.d=0.5']) == [
        ('a.b', 1), ('c', 'x'), ('d', 0.5)]
    with pytest.raises(ConfigError, match='has no value'):
        config_lib.parse_overrides(['--config.a'])


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
