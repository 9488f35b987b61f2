"""The run layer: train, evaluate, predict, segments and export over a run directory.

`rundir` owns the directory's format (config.json, checkpoints, model.keras, float16 weights,
history); the commands are importable functions that the CLI calls.
"""
