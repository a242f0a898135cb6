"""Compare the plugin's vectorised ZBL baseline with LAMMPS's ``pair_style zbl`` on varied structures.

Prints the largest relative energy error, the largest force error relative to the largest force, and the
largest absolute errors near the outer cutoff, where both vanish. The comparison is ``tests/baseline/test_zbl.py``'s.

Usage: python benchmarks/zbl_vs_lammps.py
"""

from __future__ import annotations

import sys

from _common import REPO

sys.path.insert(0, str(REPO))
from tests.test_zbl import compare

if __name__ == '__main__':
    for inner, outer in ((1.0, 2.0), (1.0, 2.5), (2.0, 3.0)):
        result = compare(inner, outer)
        print(
            f'zbl {inner} {outer}: {result["count"]} structures; max relative energy error '
            f'{result["energy_rel"]:.1e}, max force error / max force {result["forces_rel"]:.1e}; '
            f'near the cutoff (|E|, |F| < 0.01): max |dE| {result["energy_abs_small"]:.1e} eV, '
            f'max |dF| {result["forces_abs_small"]:.1e} eV/Å'
        )
