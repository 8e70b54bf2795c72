"""The ``jaxnas`` command.

    jaxnas search [--config experiments/FILE.py[:ARG]] [--workdir DIR] [--config.FIELD=VALUE ...]

Errors in the user's input end with one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from jaxnas.errors import JaxnasError


def _search(args, overrides) -> int:
    from jaxnas import config as config_lib, search
    config = config_lib.apply_overrides(config_lib.load_config(args.config),
                                        config_lib.parse_overrides(overrides))
    config_lib.validate(config)
    workdir = args.workdir or os.path.join('runs', config.name)
    search.enable_compilation_cache()
    summary = search.run_search(config, workdir, progress=not args.no_progress)
    print(json.dumps(summary, indent=2))
    if summary['complete']:
        print(f"\nfinal genotype ({workdir}/genotype.txt):\n{summary['genotype']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='jaxnas', description='jaxnas: neural architecture search in JAX.',
        epilog='Config fields are overridden with --config.FIELD=VALUE, e.g. --config.model.channels=8.')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    p = sub.add_parser('search', help='differentiable search (DARTS bilevel) on a data set',
                       description='Run or resume a differentiable architecture search.')
    p.add_argument('--config', default=None,
                   help='config file experiments/FILE.py[:ARG] (default: DARTS on the embedded digits)')
    p.add_argument('--workdir', default=None, help='output directory (default: runs/<config.name>); '
                   'an existing one with the same config is resumed')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.set_defaults(run=_search)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        bad = [a for a in rest if a.startswith('-') and not a.startswith('--config.')]
        if bad:
            raise JaxnasError(f'unknown option {bad[0]}; see jaxnas {args.command} --help')
        return args.run(args, rest)
    except JaxnasError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('interrupted; rerun the same command to resume from the last checkpoint', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
