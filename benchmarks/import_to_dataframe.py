"""Benchmark: an ASE database of N x 32-atom structures to the DataFrame pickle pacemaker reads.

Ours: import the database (calcfunction, TrainingSetData), write the files the job gets (the sandbox of
``prepare_for_submission`` plus the copied ``.npz``), then the in-job conversion run by pacemaker's interpreter.
Baseline: what a user writes by hand, ``ase.db.connect(...).select()`` -> DataFrame -> ``to_pickle(gzip)``,
run with the same (pacemaker's) interpreter. Each step runs in its own process; the figures are the timed work
inside each process and the peak RSS of each process.

Usage: python benchmarks/import_to_dataframe.py [N ...]    (default: 10000; 100000 adds the 2 GiB check)
"""

from __future__ import annotations

import json
import sys
import textwrap

from _common import PACEMAKER_PYTHON, PLUGIN_PYTHON, WORK, ensure_profile, run_measured

MAKE_DB = textwrap.dedent("""
    import sys, numpy as np
    from ase import Atoms
    from ase.db import connect
    path, count = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(0)
    base = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0]])
    cells = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)])
    frac = (base[None, :, :] + cells[:, None, :]).reshape(-1, 3) / 2
    with connect(path) as db:
        for index in range(count):
            a = 3.6 * (1 + 0.02 * rng.standard_normal())
            atoms = Atoms(numbers=rng.choice([13, 29], size=32), scaled_positions=frac, cell=[2 * a] * 3, pbc=True)
            atoms.positions += 0.05 * rng.standard_normal((32, 3))
            from ase.calculators.singlepoint import SinglePointCalculator
            atoms.calc = SinglePointCalculator(atoms, energy=float(rng.normal(-100, 1)),
                                               forces=rng.normal(0, 0.3, (32, 3)), stress=rng.normal(0, 0.01, 6))
            db.write(atoms, config_type='bulk')
""")

BASELINE = textwrap.dedent("""
    import sys, time, json
    import pandas as pd
    from ase.db import connect
    start = time.perf_counter()
    rows = [dict(ase_atoms=row.toatoms(), energy=row.energy, energy_corrected=row.energy, forces=row.forces)
            for row in connect(sys.argv[1]).select()]
    pd.DataFrame(rows).to_pickle(sys.argv[2], compression='gzip', protocol=4)
    print(json.dumps({'seconds': time.perf_counter() - start}))
""")

AIIDA_SIDE = textwrap.dedent("""
    import sys, time, json, pathlib, shutil
    from aiida import load_profile, orm
    load_profile(sys.argv[3])
    from aiida.common.folders import Folder
    from aiida.engine.utils import instantiate_process
    from aiida.manage import get_manager
    from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation
    from aiida_mlip_autopipe.importers.ase_db import import_ase_db
    code = orm.InstalledCode(label='bench-pacemaker', computer=orm.load_computer('localhost'),
                             filepath_executable='/opt/pacemaker/bin/pacemaker')
    start = time.perf_counter()
    training_set = import_ase_db(sys.argv[1])
    imported = time.perf_counter()
    target = pathlib.Path(sys.argv[2])
    shutil.rmtree(target, ignore_errors=True); target.mkdir(parents=True)
    process = instantiate_process(get_manager().get_runner(), PacemakerCalculation, code=code.store(),
                                  training_set=training_set)
    info = process.prepare_for_submission(Folder(str(target)))
    for uuid, name, destination in info.local_copy_list:  # what the engine's upload does
        with orm.load_node(uuid).base.repository.open(name, 'rb') as source, open(target / destination, 'wb') as out:
            shutil.copyfileobj(source, out, 1 << 22)
    print(json.dumps({'seconds': time.perf_counter() - start, 'import_seconds': imported - start,
                      'structures': len(training_set)}))
""")


def measure(count: int, profile: str) -> dict:
    directory = WORK / f'import_{count}'
    directory.mkdir(parents=True, exist_ok=True)
    database = directory / 'dft.db'
    if not database.exists():
        run_measured([str(PACEMAKER_PYTHON), '-c', MAKE_DB, str(database), str(count)])
    _, baseline_rss, out = run_measured(
        [str(PACEMAKER_PYTHON), '-c', BASELINE, str(database), str(directory / 'baseline.pckl.gzip')]
    )
    baseline = json.loads(out)['seconds']
    _, aiida_rss, out = run_measured(
        [str(PLUGIN_PYTHON), '-c', AIIDA_SIDE, str(database), str(directory / 'job'), profile]
    )
    aiida = json.loads(out)
    script = directory / 'job' / 'pacemaker_io.py'
    convert_code = (
        'import sys, time, json, runpy\nstart = time.perf_counter()\n'
        f'sys.argv = ["pacemaker_io.py", "to-dataframe", "{directory}/job/training_set.npz", '
        f'"{directory}/job/training_data.pckl.gzip"]\n'
        f'runpy.run_path("{script}", run_name="not_main")["main"](sys.argv[1:])\n'
        'print(json.dumps({"seconds": time.perf_counter() - start}))\n'
    )
    _, convert_rss, out = run_measured([str(PACEMAKER_PYTHON), '-c', convert_code])
    convert = json.loads(out.strip().splitlines()[-1])['seconds']
    ours = aiida['seconds'] + convert
    return {
        'structures': count,
        'baseline_s': baseline,
        'baseline_peak_MiB': baseline_rss,
        'import_s': aiida['import_seconds'],
        'job_files_s': aiida['seconds'] - aiida['import_seconds'],
        'aiida_side_peak_MiB': aiida_rss,
        'in_job_conversion_s': convert,
        'in_job_conversion_peak_MiB': convert_rss,
        'ours_s': ours,
        'ours_peak_MiB': max(aiida_rss, convert_rss),
        'time_ratio': ours / baseline,
        'memory_ratio': max(aiida_rss, convert_rss) / baseline_rss,
    }


def main(counts: list[int]) -> None:
    profile = ensure_profile()
    for count in counts:
        result = measure(count, profile)
        print(json.dumps(result, indent=1))
        print(
            f'N={count}: baseline {result["baseline_s"]:.2f} s / {result["baseline_peak_MiB"]:.0f} MiB; '
            f'ours {result["ours_s"]:.2f} s (import {result["import_s"]:.2f} + job files {result["job_files_s"]:.2f} '
            f'+ in-job conversion {result["in_job_conversion_s"]:.2f}) / peak {result["ours_peak_MiB"]:.0f} MiB '
            f'(AiiDA side {result["aiida_side_peak_MiB"]:.0f} MiB); ratios: time {result["time_ratio"]:.2f}x '
            f'(goal <= 1.2), memory {result["memory_ratio"]:.2f}x (goal <= 1.5)'
        )
        if count >= 100_000:
            verdict = 'OK' if result['aiida_side_peak_MiB'] < 2048 else 'OVER'
            print(f'N={count}: AiiDA side peak {result["aiida_side_peak_MiB"]:.0f} MiB (goal < 2048 MiB): {verdict}')


if __name__ == '__main__':
    main([int(arg) for arg in sys.argv[1:]] or [10_000])
