"""Research extras in PyTorch (MIL-NCE, HowTo100M) and numpy/scipy (BCFW); imported lazily."""
