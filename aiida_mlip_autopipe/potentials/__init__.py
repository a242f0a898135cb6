"""Uses of a trained potential: an ASE calculator, LAMMPS lines, its reference energies, its lineage, its plots."""
