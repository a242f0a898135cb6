"""Demo data for examples, tests and benchmarks (EMT-labelled cells): not part of a training's science."""
