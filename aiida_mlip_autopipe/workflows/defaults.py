"""The training workflow's defaults, which the façade (:class:`~aiida_mlip_autopipe.trainer.TrainingConfig`) shares:
one place for both, importable without loading aiida's engine."""

from __future__ import annotations

__all__ = ('DEFAULT_MIN_STRUCTURES', 'DEFAULT_SPLIT_SEED', 'DEFAULT_TEST_FRACTION')

#: Refuse to train on fewer structures.
DEFAULT_MIN_STRUCTURES = 50
#: Fraction of the structures held out as the test set.
DEFAULT_TEST_FRACTION = 0.1
#: Seed of the train/test split.
DEFAULT_SPLIT_SEED = 42
