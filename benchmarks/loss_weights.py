"""Measure what the loss-weight mapping and the default settings give on the quick start's data.

Fits the 60 + 10 Cu-Al EMT structures of ``examples/train_emt.py`` with the default settings (100 functions per
element, 100 BFGS iterations, kappa 0.3 = LossWeights(energy=0.7, forces=0.3)) and with other loss weights, and
prints the test RMSEs (energy meV/atom, force component meV/Å).

Usage: python benchmarks/loss_weights.py
"""

from __future__ import annotations

from _common import REPO, ensure_profile

VARIANTS = {
    'defaults (energy 0.7, forces 0.3 -> kappa 0.3)': {},
    'LossWeights(energy=1, forces=1) -> kappa 0.5': {'loss_weights': {'energy': 1.0, 'forces': 1.0}},
    'LossWeights(energy=0.95, forces=0.05) -> kappa 0.05': {'loss_weights': {'energy': 0.95, 'forces': 0.05}},
    'LossWeights(energy=0.05, forces=0.95) -> kappa 0.95': {'loss_weights': {'energy': 0.05, 'forces': 0.95}},
}


def main() -> None:
    profile = ensure_profile()  # sets AIIDA_PATH: before importing aiida
    from aiida import load_profile, orm

    load_profile(profile)
    from aiida.engine import run_get_node

    from aiida_mlip_autopipe.calculations.pacemaker import PacemakerCalculation
    from aiida_mlip_autopipe.data.training_set import TrainingSetData
    from aiida_mlip_autopipe.demo.emt import emt_structures

    code = orm.InstalledCode(
        label='pacemaker-loss',
        computer=orm.load_computer('localhost'),
        filepath_executable=str(REPO / '.venv-pacemaker' / 'bin' / 'pacemaker'),
    ).store()
    training = TrainingSetData.from_atoms(emt_structures(60, repeat=2, seed=1)).store()
    test = TrainingSetData.from_atoms(emt_structures(10, repeat=2, seed=2)).store()
    options = {'resources': {'num_machines': 1}}  # threads: the computer's default
    print('| settings | kappa | train E | train F | test E | test F | iterations | fit time |')
    print('|---|---|---|---|---|---|---|---|')
    for name, settings in VARIANTS.items():
        _, node = run_get_node(
            PacemakerCalculation,
            code=code,
            training_set=training,
            test_set=test,
            settings=orm.Dict(settings),
            metadata={'options': options},
        )
        if not node.is_finished_ok:
            print(f'| {name} | failed [{node.exit_status}] {node.exit_message} |')
            continue
        m = node.outputs.metrics
        kappa = 0.3 if not settings else settings['loss_weights']['forces'] / sum(settings['loss_weights'].values())
        print(
            f'| {name} | {kappa:.2f} | {m["rmse_energy_train"]:.2f} | {m["rmse_forces_train"]:.1f} | '
            f'{m["rmse_energy_test"]:.2f} | {m["rmse_forces_test"]:.1f} | {m["iterations"]} | {m["fit_time"]:.0f} s |',
            flush=True,
        )


if __name__ == '__main__':
    main()
