"""AiiDA plugin that trains ACE interatomic potentials with Pacemaker, with full provenance."""

__version__ = '0.1.0'
