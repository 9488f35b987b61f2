"""Kaggle submissions: formats (write/read), validate, score, and the 2019 segment task."""
