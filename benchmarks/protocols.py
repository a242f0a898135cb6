"""Benchmark: the training protocols (``fast``, ``moderate``, ``precise``) on EMT and on real DFT data.

For each data set and protocol, ``PacemakerTrainingWorkChain.get_builder_from_protocol`` on the loaded data,
run to the end; prints the fit's size, time and errors (pacemaker's own train/test metrics, test = the protocol's
held-out 10 %):

* Cu-Al EMT: 100 strained, rattled 32-atom fcc cells (``emt_structures``);
* Al DFT: 40 strained, rattled 2- and 4-atom cells, each a real pw.x scf through aiida-quantumespresso's
  ``PwBaseWorkChain`` (PBE, a norm-conserving pseudopotential made by ld1.x; the tests' DFT settings), collected
  from the group: absolute energies of about -56 eV/atom.

Usage: python benchmarks/protocols.py [PROTOCOL ...]   (default: all three; results also in _work/protocols.json)
Needs scripts/install_dft.sh (pw.x, ld1.x, aiida-quantumespresso). Threads: all cores (localhost's default).
"""

from __future__ import annotations

import json
import sys
import time

from _common import REPO, WORK, ensure_profile, pacemaker_code

PROTOCOLS = ('fast', 'moderate', 'precise')


def emt_data():
    from aiida import orm

    from aiida_mlip_autopipe.data.training_set import TrainingSetData
    from aiida_mlip_autopipe.demo.emt import emt_structures

    group, created = orm.Group.collection.get_or_create('protocols-emt')
    if created or not group.nodes:
        group.add_nodes(TrainingSetData.from_atoms(emt_structures(100, repeat=2, seed=3)).store())
    return group.label


def dft_data(count: int = 40) -> str:
    """A group of ``count`` finished ``PwBaseWorkChain`` runs on Al cells (made once)."""
    from aiida import orm
    from aiida.engine import run_get_node

    sys.path.insert(0, str(REPO))
    from tests.dft.conftest import al_cells, make_al_pseudo_family, pw_base_builder, require

    group, _ = orm.Group.collection.get_or_create('protocols-qe-al')
    if len(group.nodes) >= count:
        return group.label
    try:
        family = orm.Group.collection.get(label='protocols-ld1-Al')
    except Exception:
        folder = WORK / 'ld1'
        folder.mkdir(parents=True, exist_ok=True)
        family = make_al_pseudo_family(folder, 'protocols-ld1-Al')
    computer = orm.load_computer('localhost')
    try:
        pw = orm.load_code('pw@localhost')
    except Exception:
        pw = orm.InstalledCode(
            label='pw',
            computer=computer,
            filepath_executable=require('pw.x'),
            default_calc_job_plugin='quantumespresso.pw',
        )
        pw.store()
    start = time.perf_counter()
    for atoms in al_cells(count, seed=17)[len(group.nodes) :]:
        _, node = run_get_node(pw_base_builder(pw, family, atoms))
        assert node.is_finished_ok, (node.exit_status, node.exit_message)
        group.add_nodes(node)
    print(f'{count} pw.x scf runs: {time.perf_counter() - start:.0f} s')
    return group.label


def run_protocol(code, protocol: str, group: str) -> dict:
    from aiida.engine import run_get_node

    from aiida_mlip_autopipe.workflows.training import PacemakerTrainingWorkChain

    builder = PacemakerTrainingWorkChain.get_builder_from_protocol(
        code, protocol, overrides={'min_structures': 10, 'plots': False}, group=group
    )
    start = time.perf_counter()
    _, node = run_get_node(builder)
    wall = time.perf_counter() - start
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    metrics = node.outputs.metrics.get_dict()
    return {
        'protocol': protocol,
        'data': group,
        'pk': node.pk,
        'functions': metrics['num_functions'],
        'iterations': metrics.get('iterations'),
        'structures': f'{metrics["num_structures_train"]}+{metrics.get("num_structures_test", 0)}',
        'workflow_s': round(wall, 1),
        'fit_s': round(metrics.get('fit_time', float('nan')), 1),
        'train_E': round(metrics['rmse_energy_train'], 2),
        'train_F': round(metrics['rmse_forces_train'], 1),
        'test_E': round(metrics['rmse_energy_test'], 2),
        'test_F': round(metrics['rmse_forces_test'], 1),
    }


def main(protocols: list[str]) -> None:
    ensure_profile('protocols')
    from aiida import load_profile

    load_profile('protocols')
    code = pacemaker_code()
    groups = [emt_data(), dft_data()]
    rows = []
    header = (
        '| data | protocol | functions | iterations | structures (train+test) | workflow s | fit s | '
        'train meV/atom | train meV/Å | test meV/atom | test meV/Å |'
    )
    print(header)
    print('|' + '---|' * header.count(' | ') + '---|')
    for group in groups:
        for protocol in protocols:
            row = run_protocol(code, protocol, group)
            rows.append(row)
            print(
                f'| {group} | {protocol} | {row["functions"]} | {row["iterations"]} | {row["structures"]} | '
                f'{row["workflow_s"]} | {row["fit_s"]} | {row["train_E"]} | {row["train_F"]} | {row["test_E"]} | '
                f'{row["test_F"]} |',
                flush=True,
            )
    (WORK / 'protocols.json').write_text(json.dumps(rows, indent=1))


if __name__ == '__main__':
    main(sys.argv[1:] or list(PROTOCOLS))
