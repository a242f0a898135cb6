"""DFT results in the AiiDA database (Quantum ESPRESSO's ``PwCalculation`` / ``PwBaseWorkChain``) collected into
``TrainingSetData`` by calcfunctions whose inputs are the source nodes: used by the importers' command line, the
training and active-learning workflows, the labellers and validation alike."""
