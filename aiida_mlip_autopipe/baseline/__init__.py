"""The ZBL baseline (LAMMPS's ``pair_style zbl``) and delta learning on it: fit DFT minus ZBL, use ACE plus ZBL."""
