"""experiments/paper_search.py: every paper preset is a valid config of its relaxation."""
import os

import pytest

from jaxnas import config as config_lib, relax, spaces

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = os.path.join(ROOT, 'experiments', 'paper_search.py')
PRESETS = ('darts', 'gdas', 'snas', 'pcdarts', 'drnas', 'fairdarts', 'gdas_nb201')


@pytest.mark.parametrize('name', PRESETS)
def test_preset_is_valid_and_builds_its_relaxation(name):
    c = config_lib.load_config(f'{PATH}:{name}')
    config_lib.validate(c)
    assert c.data.name == 'cifar10' and c.model.channels == 16
    r = relax.make_relaxation(c.relaxation.name, space=spaces.get(c.space), total_steps=100,
                              **c.relaxation.kwargs.to_dict())
    assert c.relaxation.name == name.split('_')[0]
    expect = {'gdas': dict(mode='single_path'), 'gdas_nb201': dict(mode='single_path'),
              'snas': dict(single_level=True), 'pcdarts': dict(partial_channels=4, warmup_epochs=15.0),
              'drnas': dict(arch_weight_decay=0.0), 'fairdarts': dict(threshold=0.85),
              'darts': dict(mode='dense', single_level=False)}[name]
    assert {k: getattr(r, k) for k in expect} == expect
    assert (c.data.train_portion == 1.0) == r.single_level


def test_unknown_preset_is_one_line():
    with pytest.raises(config_lib.ConfigError) as e:
        config_lib.load_config(f'{PATH}:enas')
    assert 'unknown preset' in str(e.value) and '\n' not in str(e.value)
