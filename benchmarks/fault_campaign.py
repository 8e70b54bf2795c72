"""Fault injection: ``kill -9`` a command at random moments, resume it, compare bit for bit.

For each command (``search``, ``retrain``, ``discrete``, ``compare``, ``run`` on the tiny
configs of ``experiments/``) the campaign

1. runs it once, uninterrupted, into a reference work directory (and times it);
2. runs it again in fresh work directories ("chains"). Each launch of a chain is killed with
   SIGKILL at a moment chosen by a seeded RNG, then the same command is launched again (a
   resume), up to ``--kills-per-chain`` times, and finally once more to completion. The kill
   moments are of three kinds:

   - ``random``: a delay drawn uniformly over the reference run's duration;
   - ``save``: as soon as an orbax temporary directory (``*.orbax-checkpoint-tmp*``)
     appears in any ``checkpoints/`` directory of the work directory, plus 0-50 ms, i.e.
     during a checkpoint save;
   - ``after_save``: as soon as a new finished checkpoint step appears (the window between a
     checkpoint and the log line, summary and other outputs that follow it), plus 0-20 ms;

   a kill counts only if the process was alive when the signal landed (its exit status is
   -SIGKILL); it counts as "during a save" when it leaves behind an orbax temporary directory
   of this launch (those of an earlier kill stay until orbax cleans them up: ignored);
3. compares every output of each chain with the reference: JSON files after dropping
   wall-clock fields (:data:`VOLATILE`: times, ``*_s``, ``*_ms_*``, rates), with the work
   directory's path replaced in strings; JSONL logs line by line the same way; CSV by column
   the same way; other text files (``genotype.txt``, ``report.md``...) line by line, the
   lines that hold a wall-clock figure excepted; every checkpoint step present in both,
   restored with orbax, leaf by leaf, bit for bit (dtype, shape and bytes; a leaf named as a
   wall-clock field, such as the discrete loop's ``elapsed_s``, excepted). PNGs are
   skipped: they are drawn from the data the JSON files hold. Leftovers of a killed write
   (``.NAME.*.tmp`` files of an atomic write, orbax temporary directories) are counted as
   debris, not as differences.

It prints one table and writes JSON (per command: launches, chains, kills, kills during a
save, kills by trigger, resumes, identical, diffs, debris, failures).

Usage (the full campaign: 20+ kills for each of the five commands; every launch restarts the
process, so start-up and loading the compiled programs dominate; on the shared 2-core CPU at
load 15-20 the uninterrupted tiny runs alone took 2-11 minutes each, so the campaign takes
hours: one process per command, in parallel, where cores allow):

    .venv/bin/python benchmarks/fault_campaign.py --kills 20 --out fault_campaign.json
    .venv/bin/python benchmarks/fault_campaign.py --commands search --kills 3 --kills-per-chain 3

The commands run as ``python -m jaxnas.cli`` from the repository this file is in (so a
copy of the repository tests its own code), with ``$JAXNAS_CACHE_DIR`` shared by every launch
(``--cache-dir``). ``--fast-compile`` sets ``JAX_DISABLE_MOST_OPTIMIZATIONS=1`` for every
launch (the reference too), as the test suite does. tests/test_fault_campaign.py runs a short
version (a few kills of the tiny search).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The commands on their tiny configs; each gets `--workdir DIR --no-progress`.
COMMANDS: Dict[str, List[str]] = {
    'search': ['search', '--config', 'experiments/tiny.py', '--config.search.epochs=3'],
    'retrain': ['retrain', '--config', 'experiments/tiny_pipeline.py', '--genotype', 'DARTS_V2',
                '--config.retrain.epochs=3'],
    'discrete': ['discrete', '--config', 'experiments/digits_discrete.py:tiny', '--searcher=evolution'],
    'compare': ['compare', '--config', 'experiments/tiny.py', "--config.compare.relaxations=('darts', 'gdas')",
                '--config.compare.seeds=(0,)'],
    'run': ['run', '--config', 'experiments/tiny_pipeline.py'],
}
TRIGGERS = ('random', 'save', 'after_save')
TRIGGER_WEIGHTS = (0.5, 0.3, 0.2)
ORBAX_TMP = 'orbax-checkpoint-tmp'

# Wall-clock fields (and JSON files, by name: timings.json): a key containing "time", "timing"
# or "latency", a seconds/milliseconds unit as a word of the key (epoch_time_s, elapsed_s,
# step_compile_s, wall_time_s_this_call, latency_ms_median) or a rate per wall time.
VOLATILE = re.compile(r'tim(e|ing)|latency|(^|_)m?s(_|$)|per_(minute|second)|per_s$')
# Columns of a Markdown table, and other lines of a text file (report.md), that hold a wall-clock figure.
VOLATILE_COLUMN = re.compile(r'time|latency|\b(s|ms)\b', re.I)
VOLATILE_LINE = re.compile(r'\b(wall|time|timings?|seconds|minutes|latency|elapsed)\b|\d\s*(s|ms|min)\b', re.I)


# --------------------------------------------------------------------------- work-directory probes

def _checkpoint_dirs(workdir: str) -> List[str]:
    """Every ``checkpoints/`` directory under ``workdir`` (not descending into them)."""
    out = []
    for top, dirs, _ in os.walk(workdir):
        if os.path.basename(top) == 'checkpoints':
            out.append(top)
            dirs[:] = []
        else:
            dirs[:] = [d for d in dirs if not d.isdigit()]
    return out


def _entries(directory: str) -> List[str]:
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []


def saving(workdir: str) -> set:
    """The orbax temporary directories under ``workdir``: saves under way (or cut short)."""
    return {os.path.join(d, e) for d in _checkpoint_dirs(workdir) for e in _entries(d) if ORBAX_TMP in e}


def finished_steps(workdir: str) -> set:
    """``(checkpoints dir, step)`` of every finished checkpoint under ``workdir``."""
    return {(os.path.relpath(d, workdir), int(e)) for d in _checkpoint_dirs(workdir)
            for e in _entries(d) if e.isdigit()}


def debris(workdir: str) -> List[str]:
    """Leftovers of killed writes: temporary files of atomic writes, orbax temporary directories."""
    out = []
    for top, dirs, files in os.walk(workdir):
        for name in dirs + files:
            if ORBAX_TMP in name or (name.startswith('.') and name.endswith('.tmp')):
                out.append(os.path.relpath(os.path.join(top, name), workdir))
        dirs[:] = [d for d in dirs if ORBAX_TMP not in d and not d.isdigit()]
    return sorted(out)


# --------------------------------------------------------------------------- launching and killing

def environment(cache_dir: str, fast_compile: bool) -> dict:
    env = dict(os.environ)
    env['JAXNAS_CACHE_DIR'] = cache_dir
    env['PYTHONPATH'] = ROOT + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    env.pop('JAX_DISABLE_MOST_OPTIMIZATIONS', None)
    if fast_compile:
        env['JAX_DISABLE_MOST_OPTIMIZATIONS'] = '1'
    return env


def launch(argv: List[str], workdir: str, env: dict, log_path: str, *, trigger: Optional[str] = None,
           delay: float = 0.0, jitter: float = 0.0, timeout: float = 1800.0, poll: float = 0.003) -> dict:
    """Run ``jaxnas ARGV --workdir WORKDIR --no-progress``; with a ``trigger``, SIGKILL it at that moment.

    Returns ``{'rc', 'seconds', 'fired', 'killed', 'during_save', 'hung'}``: ``fired`` when the
    trigger came while the process ran, ``killed`` when the process died of the signal (it was
    alive when it landed), ``during_save`` when the kill left an orbax temporary directory.
    """
    cmd = [sys.executable, '-m', 'jaxnas.cli'] + argv + ['--workdir', workdir, '--no-progress']
    before = finished_steps(workdir) if trigger == 'after_save' else set()
    cut_short = saving(workdir)    # left by an earlier kill, until orbax cleans them up: not this launch's saves
    t0 = time.monotonic()
    with open(log_path, 'ab') as log:
        log.write(f"\n$ {' '.join(cmd)}  # trigger={trigger} delay={delay:.3f}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    fired = hung = False
    while proc.poll() is None:
        elapsed = time.monotonic() - t0
        if elapsed > timeout:
            hung = fired = True
        elif trigger == 'random':
            fired = elapsed >= delay
        elif trigger == 'save':
            fired = bool(saving(workdir) - cut_short)
        elif trigger == 'after_save':
            fired = bool(finished_steps(workdir) - before)
        if fired:
            if jitter and not hung:
                time.sleep(jitter)
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break
        time.sleep(poll if trigger in ('save', 'after_save') else 0.02)
    rc = proc.wait()
    killed = rc == -signal.SIGKILL and not hung
    return {'rc': rc, 'seconds': time.monotonic() - t0, 'fired': fired, 'killed': killed, 'hung': hung,
            'during_save': killed and bool(saving(workdir) - cut_short)}


def _tail(path: str, n: int = 6) -> str:
    with open(path, errors='replace') as f:
        return ' | '.join(line.rstrip() for line in f.read().splitlines()[-n:])


# --------------------------------------------------------------------------- comparison

def normalize(obj, workdir: str):
    """``obj`` without wall-clock fields (:data:`VOLATILE`), the work directory's path as ``<WORKDIR>``."""
    if isinstance(obj, dict):
        return {k: normalize(v, workdir) for k, v in obj.items() if not VOLATILE.search(str(k))}
    if isinstance(obj, list):
        return [normalize(v, workdir) for v in obj]
    if isinstance(obj, str):
        return obj.replace(workdir, '<WORKDIR>')
    return obj


def _diff_values(a, b, where: str, out: list) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{where}.{k}: only in {'resumed' if k in b else 'reference'}")
            else:
                _diff_values(a[k], b[k], f'{where}.{k}', out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff_values(x, y, f'{where}[{i}]', out)
    elif type(a) is not type(b) or a != b:
        if isinstance(a, float) and isinstance(b, float) and a != a and b != b:   # NaN == NaN here
            return
        out.append(f'{where}: reference {_short(a)} != resumed {_short(b)}')


def _short(v) -> str:
    text = json.dumps(v) if not isinstance(v, str) else repr(v)
    return text if len(text) <= 80 else text[:77] + '...'


def _read_lines(path: str) -> List[str]:
    with open(path, errors='replace') as f:
        return f.read().splitlines()


def _compare_file(rel: str, ref: str, got: str, ref_dir: str, got_dir: str, out: list) -> None:
    a_path, b_path = os.path.join(ref_dir, rel), os.path.join(got_dir, rel)
    if rel.endswith('.json') and VOLATILE.search(os.path.basename(rel)[:-len('.json')]):
        return
    if rel.endswith('.json'):
        with open(a_path) as fa, open(b_path) as fb:
            _diff_values(normalize(json.load(fa), ref), normalize(json.load(fb), got), rel, out)
    elif rel.endswith('.jsonl'):
        a = [json.loads(line) for line in _read_lines(a_path) if line.strip()]
        b = [json.loads(line) for line in _read_lines(b_path) if line.strip()]
        if len(a) != len(b):
            out.append(f'{rel}: {len(a)} lines in the reference, {len(b)} resumed')
        for i, (x, y) in enumerate(zip(a, b)):
            _diff_values(normalize(x, ref), normalize(y, got), f'{rel}:{i + 1}', out)
    elif rel.endswith('.csv'):
        def rows(path, workdir):
            with open(path, newline='') as f:
                return [normalize(dict(r), workdir) for r in csv.DictReader(f)]
        _diff_values(rows(a_path, ref), rows(b_path, got), rel, out)
    else:
        a, b = _text_lines(a_path, ref), _text_lines(b_path, got)
        if a != b:
            i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            out.append(f'{rel}: line {i + 1} differs: reference {_short(a[i] if i < len(a) else None)} '
                       f'!= resumed {_short(b[i] if i < len(b) else None)}')


def _text_lines(path: str, workdir: str) -> List[str]:
    """The lines of a text file that hold no wall-clock figure: Markdown tables lose the
    columns whose header names a time (:data:`VOLATILE_COLUMN`), other lines matching
    :data:`VOLATILE_LINE` are left out."""
    out, keep = [], None
    for line in _read_lines(path):
        line = line.replace(workdir, '<WORKDIR>')
        if line.startswith('|'):
            cells = line.strip().strip('|').split('|')
            if keep is None:     # a table's header
                keep = [i for i, c in enumerate(cells) if not VOLATILE_COLUMN.search(c)]
            out.append('|'.join(cells[i] for i in keep if i < len(cells)))
        else:
            keep = None
            if not VOLATILE_LINE.search(line):
                out.append(line)
    return out


def _restore(path: str):
    import orbax.checkpoint as ocp
    with ocp.StandardCheckpointer() as ckpt:
        return ckpt.restore(path)


def _compare_checkpoints(rel: str, ref_dir: str, got_dir: str, out: list, notes: list) -> None:
    import jax
    import numpy as np
    a_dir, b_dir = os.path.join(ref_dir, rel), os.path.join(got_dir, rel)
    a_steps = sorted(int(e) for e in _entries(a_dir) if e.isdigit())
    b_steps = sorted(int(e) for e in _entries(b_dir) if e.isdigit())
    if not a_steps or not b_steps or a_steps[-1] != b_steps[-1]:
        out.append(f'{rel}: latest step {a_steps[-1:] or None} in the reference, {b_steps[-1:] or None} resumed')
    elif a_steps != b_steps:
        notes.append(f'{rel}: steps kept {a_steps} in the reference, {b_steps} resumed')
    for step in sorted(set(a_steps) & set(b_steps)):
        a = jax.tree_util.tree_leaves_with_path(_restore(os.path.join(a_dir, str(step), 'default')))
        b = jax.tree_util.tree_leaves_with_path(_restore(os.path.join(b_dir, str(step), 'default')))
        a_keys = [jax.tree_util.keystr(p) for p, _ in a]
        b_keys = [jax.tree_util.keystr(p) for p, _ in b]
        if a_keys != b_keys:
            out.append(f'{rel}/{step}: different pytree structure ({len(a_keys)} vs {len(b_keys)} leaves)')
            continue
        for key, (path, x), (_, y) in zip(a_keys, a, b):
            if any(VOLATILE.search(str(getattr(k, 'key', getattr(k, 'name', '')))) for k in path):
                continue     # a wall clock in the state (the discrete loop's elapsed_s, for its time budget)
            x, y = np.asarray(x), np.asarray(y)
            if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                bad = int(np.sum(x != y)) if x.shape == y.shape else -1
                out.append(f'{rel}/{step}{key}: arrays differ ({bad} of {x.size} elements)')


def _files(workdir: str) -> tuple:
    """``(files, checkpoint dirs)`` relative to ``workdir``: the outputs to compare."""
    files, ckpts = [], []
    for top, dirs, names in os.walk(workdir):
        if os.path.basename(top) == 'checkpoints':
            ckpts.append(os.path.relpath(top, workdir))
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if d != 'tb']   # TensorBoard events: wall times; log.jsonl is compared
        for name in names:
            if name.endswith('.png') or name == '.lock' or (name.startswith('.') and name.endswith('.tmp')):
                continue
            files.append(os.path.relpath(os.path.join(top, name), workdir))
    return sorted(files), sorted(ckpts)


def compare_dirs(ref_dir: str, got_dir: str) -> tuple:
    """``(diffs, notes)``: every difference between two work directories' results (one line each)."""
    ref_dir, got_dir = os.path.abspath(ref_dir), os.path.abspath(got_dir)
    diffs, notes = [], []
    a_files, a_ckpts = _files(ref_dir)
    b_files, b_ckpts = _files(got_dir)
    for name in sorted(set(a_files) ^ set(b_files)) + sorted(set(a_ckpts) ^ set(b_ckpts)):
        diffs.append(f"{name}: only in {'the reference' if name in a_files + a_ckpts else 'the resumed run'}")
    for rel in sorted(set(a_files) & set(b_files)):
        try:
            _compare_file(rel, ref_dir, got_dir, ref_dir, got_dir, diffs)
        except (ValueError, OSError) as e:
            diffs.append(f'{rel}: unreadable ({type(e).__name__}: {e})')
    for rel in sorted(set(a_ckpts) & set(b_ckpts)):
        _compare_checkpoints(rel, ref_dir, got_dir, diffs, notes)
    return diffs, notes


# --------------------------------------------------------------------------- the campaign

def run_command(name: str, *, kills: int, seed: int, scratch: str, env: dict, kills_per_chain: int = 4,
                argv: Optional[List[str]] = None, plan: Optional[List[str]] = None,
                say: Callable[[str], None] = print, on_chain: Optional[Callable[[dict], None]] = None) -> dict:
    """The campaign of one command: a reference run, then chains of kills and resumes until
    ``kills`` kills have landed; returns the command's record.

    The trigger of each kill attempt is drawn from :data:`TRIGGERS` (weights
    :data:`TRIGGER_WEIGHTS`), or taken in turn from ``plan``; ``argv`` replaces the
    command's arguments of :data:`COMMANDS`; ``on_chain(record)`` is called after each chain.
    """
    argv = list(argv or COMMANDS[name])
    rng = random.Random(f'{seed}:{name}')
    base = os.path.join(scratch, name)
    os.makedirs(base, exist_ok=True)
    log_path = os.path.join(base, 'launches.log')
    record = {'command': name, 'argv': argv, 'seed': seed, 'launches': 0, 'chains': 0, 'kills': 0,
              'kills_during_save': 0, 'kills_by_trigger': {t: 0 for t in TRIGGERS}, 'completed_before_kill': 0,
              'resumes': 0, 'identical': False, 'diffs': [], 'notes': [], 'debris': [], 'failures': []}
    ref_dir = os.path.join(base, 'reference')
    r = launch(argv, ref_dir, env, log_path)
    record['launches'] += 1
    record['reference_s'] = round(r['seconds'], 2)
    if r['rc'] != 0:
        record['failures'].append(f"reference run exited {r['rc']}: {_tail(log_path)}")
        return record
    say(f'[{name}] reference run: {r["seconds"]:.1f} s')
    duration = r['seconds']
    chain = attempts = 0
    while record['kills'] < kills and chain < 4 * kills:
        chain += 1
        workdir = os.path.join(base, f'chain{chain}')
        chain_kills, launches, events, ok = 0, 0, [], True
        while True:
            if chain_kills < kills_per_chain and record['kills'] < kills:
                attempts += 1
                trigger = plan[(attempts - 1) % len(plan)] if plan else rng.choices(TRIGGERS, TRIGGER_WEIGHTS)[0]
                delay = rng.uniform(0.0, duration)
                jitter = {'save': rng.uniform(0.0, 0.05), 'after_save': rng.uniform(0.0, 0.02)}.get(trigger, 0.0)
            else:
                trigger, delay, jitter = None, 0.0, 0.0
            r = launch(argv, workdir, env, log_path, trigger=trigger, delay=delay, jitter=jitter,
                       timeout=3 * duration + 120)
            launches += 1
            record['launches'] += 1
            record['resumes'] += launches > 1
            if r['killed']:
                chain_kills += 1
                record['kills'] += 1
                record['kills_by_trigger'][trigger] += 1
                record['kills_during_save'] += r['during_save']
                events.append(f"{trigger}@{r['seconds']:.2f}s{' (in save)' if r['during_save'] else ''}")
                continue
            if r['hung']:
                record['failures'].append(f'chain{chain}: a launch hung past {3 * duration + 120:.0f} s')
                ok = False
            elif r['rc'] != 0:
                record['failures'].append(f"chain{chain}: launch {launches} exited {r['rc']}: {_tail(log_path)}")
                ok = False
            else:
                record['completed_before_kill'] += bool(trigger)
                events.append(f"{'resumed' if launches > 1 else 'ran'} to completion in {r['seconds']:.1f}s")
            break
        if not ok or not chain_kills:      # failed, or the launch outran its trigger: nothing to compare
            continue
        record['chains'] += 1
        diffs, notes = compare_dirs(ref_dir, workdir)
        record['diffs'] += [f'chain{chain}: {d}' for d in diffs]
        record['notes'] += [f'chain{chain}: {n}' for n in notes]
        record['debris'] += [f'chain{chain}: {d}' for d in debris(workdir)]
        say(f"[{name}] chain {chain}: {', '.join(events)}; {'identical' if not diffs else f'{len(diffs)} diffs'}")
        if on_chain:
            on_chain(record)
    record['identical'] = bool(record['chains']) and not record['diffs'] and not record['failures']
    return record


def summary_table(records: List[dict]) -> str:
    head = ('command', 'ref s', 'launches', 'chains', 'kills', 'in save', 'random/save/after', 'resumes',
            'identical', 'diffs', 'failures')
    rows = [head]
    for r in records:
        t = r['kills_by_trigger']
        rows.append((r['command'], f"{r.get('reference_s', 0):.0f}", r['launches'], r['chains'], r['kills'],
                     r['kills_during_save'], '/'.join(str(t.get(k, 0)) for k in TRIGGERS), r['resumes'],
                     'yes' if r['identical'] else 'NO', len(r['diffs']), len(r['failures'])))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    return '\n'.join('  '.join(str(v).ljust(w) for v, w in zip(row, widths)) for row in rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--commands', default=','.join(COMMANDS), help=f'comma-separated, of {", ".join(COMMANDS)}')
    p.add_argument('--kills', type=int, default=20, help='kills per command (default 20)')
    p.add_argument('--kills-per-chain', type=int, default=4, help='kills before a chain is resumed to completion')
    p.add_argument('--seed', type=int, default=0, help='seed of the kill moments')
    p.add_argument('--out', default='', help='JSON output file')
    p.add_argument('--scratch', default='', help='directory of the work directories (default: a temporary one)')
    p.add_argument('--keep', action='store_true', help='keep the work directories')
    p.add_argument('--cache-dir', default=os.environ.get('JAXNAS_CACHE_DIR', os.path.expanduser('~/.cache/jaxnas/xla')),
                   help='persistent compilation cache of every launch ($JAXNAS_CACHE_DIR)')
    p.add_argument('--fast-compile', action='store_true', help='JAX_DISABLE_MOST_OPTIMIZATIONS=1 for every launch')
    args = p.parse_args(argv)
    names = [n for n in args.commands.split(',') if n]
    unknown = [n for n in names if n not in COMMANDS]
    if unknown or args.kills < 1 or args.kills_per_chain < 1:
        p.error(f'unknown command {unknown[0]!r}; use {", ".join(COMMANDS)}' if unknown
                else '--kills and --kills-per-chain must be at least 1')
    scratch = args.scratch or tempfile.mkdtemp(prefix='jaxnas-fault-')
    env = environment(args.cache_dir, args.fast_compile)
    t0 = time.time()
    records = []

    def write(partial=None):
        import jax
        out = {'commands': records + ([partial] if partial else []), 'seed': args.seed,
               'kills_per_command': args.kills, 'kills_per_chain': args.kills_per_chain,
               'fast_compile': args.fast_compile, 'wall_s': time.time() - t0, 'jax': jax.__version__,
               'complete': partial is None, 'scratch': scratch if args.keep else None}
        if args.out:
            with open(args.out, 'w') as f:
                json.dump(out, f, indent=2)

    for name in names:
        records.append(run_command(name, kills=args.kills, seed=args.seed, scratch=scratch, env=env,
                                   kills_per_chain=args.kills_per_chain, say=lambda s: print(s, flush=True),
                                   on_chain=write))
        for line in records[-1]['diffs'][:10] + records[-1]['failures']:
            print(f'  {line}', flush=True)
    write()
    print(summary_table(records))
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0 if all(r['identical'] for r in records) else 1


if __name__ == '__main__':
    sys.exit(main())
