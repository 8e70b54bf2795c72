"""The ``jaxnas`` command.

    jaxnas search [--config experiments/FILE.py[:ARG]] [--workdir DIR] [--config.FIELD=VALUE ...]

Each subcommand lives in its own module (listed in :data:`COMMAND_MODULES`), which
provides ``register(subparsers)``: it adds its parser with :func:`add_command` (the
options every command shares, and ``run(args, overrides)`` as its action) and its own
options. Errors in the user's input end with one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable

from jaxnas.errors import JaxnasError, one_line

COMMAND_MODULES = (
    'jaxnas.search',
    'jaxnas.compare',
    'jaxnas.discrete',
    'jaxnas.retrain',
    'jaxnas.pipeline',
    'jaxnas.cost_report',
    'jaxnas.pareto',
    'jaxnas.sweep',
    'jaxnas.aggregate',
)


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with its usage errors as one line (:class:`JaxnasError`, exit status 2)."""

    def error(self, message):
        raise JaxnasError(f'{message}; see {self.prog} --help')


def add_config_arguments(parser: argparse.ArgumentParser, default_help: str) -> None:
    """The options every config-driven command shares."""
    parser.add_argument('--config', default=None,
                        help=f'config file experiments/FILE.py[:ARG] (default: {default_help})')
    parser.add_argument('--workdir', default=None, help='output directory (default: runs/<config.name>); '
                        'an existing one with the same config is resumed')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def add_command(subparsers, name: str, run: Callable, *, help: str, description: str,
                default_config: str) -> argparse.ArgumentParser:
    """Add the parser of config-driven command ``name``: :func:`add_config_arguments` and
    ``run(args, overrides)`` as its action; returns the parser for the command's own options."""
    parser = subparsers.add_parser(name, help=help, description=description)
    add_config_arguments(parser, default_config)
    parser.set_defaults(run=run)
    return parser


GENOTYPE_FORMS = ('a published name (DARTS_V2), a Genotype(...) text, a NAS-Bench-201 string, '
                  'a genotype .json/.txt file, or a search output directory')


def add_genotype_option(parser: argparse.ArgumentParser, *, required: bool, help_prefix: str = '') -> None:
    """``--genotype SPEC`` (:data:`GENOTYPE_FORMS`), as ``jaxnas retrain`` and ``jaxnas run`` take it."""
    parser.add_argument('--genotype', required=required, default=None,
                        help=f'{help_prefix} ({GENOTYPE_FORMS})' if help_prefix else GENOTYPE_FORMS)


def load_config(args, overrides):
    """The config named by ``--config`` with the ``--config.FIELD=VALUE`` overrides applied."""
    from jaxnas import config as config_lib
    return config_lib.apply_overrides(config_lib.load_config(args.config),
                                      config_lib.parse_overrides(overrides))


def check_workdir(workdir: str) -> None:
    """A one-line error unless ``workdir`` is a directory this process can write, or can
    be created (its nearest existing parent is a writable directory). Creates nothing."""
    path = os.path.abspath(workdir)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise JaxnasError(f'--workdir {workdir} is a file, not a directory; pass a new --workdir')
        if not os.access(path, os.W_OK | os.X_OK):
            raise JaxnasError(f'--workdir {workdir} is not writable; pass a --workdir you can write to '
                              '(or fix its permissions)')
        return
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise JaxnasError(f'--workdir {workdir} cannot be created: {parent} is a file, not a directory; '
                          'pass a --workdir under a directory')
    if not os.access(parent, os.W_OK | os.X_OK):
        raise JaxnasError(f'--workdir {workdir} cannot be created: {parent} is not writable; pass a '
                          '--workdir you can write to (or fix its permissions)')


def prepare(args, overrides, validate: Callable, name: Callable,
            needs_data: Callable = lambda config: True) -> tuple:
    """What every command does before it runs: ``(config, workdir)``, the config loaded
    (:func:`load_config`), checked by :func:`jaxnas.config.check_shared` and ``validate``,
    the work directory ``--workdir`` or ``runs/<name(config)>`` checked by
    :func:`check_workdir`, the data set checked to be prepared (where
    ``needs_data(config)``), all before anything is written or compiled; the persistent
    compilation cache turned on."""
    from jaxnas import config as config_lib, data
    from jaxnas.search import enable_compilation_cache
    config = load_config(args, overrides)
    from jaxnas import parallel
    parallel.initialize(config)   # a multi-process run: before anything starts the backend
    config_lib.check_shared(config)
    validate(config)
    workdir = args.workdir or os.path.join('runs', name(config))
    check_workdir(workdir)
    if needs_data(config):
        data.check_prepared(config.data.name, config.data.data_dir)
    enable_compilation_cache()
    return config, workdir


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog='jaxnas', description='jaxnas: neural architecture search in JAX.',
        epilog='Config fields are overridden with --config.FIELD=VALUE, e.g. --config.model.channels=8.')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args, rest = parser.parse_known_args(argv)
    except JaxnasError as e:
        print(f'error: {one_line(e)}', file=sys.stderr)
        return 2
    if args.command is None:
        parser.print_help()
        return 2
    try:
        bad = [a for a in rest if a.startswith('-') and not a.startswith('--config.')]
        if bad:
            raise JaxnasError(f'unknown option {bad[0]}; see jaxnas {args.command} --help')
        return args.run(args, rest)
    except JaxnasError as e:
        print(f'error: {one_line(e)}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('interrupted; rerun the same command to resume from the last checkpoint', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
