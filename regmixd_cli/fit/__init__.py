"""Fitting: transition rows, the model forms, training, cross-validation, ensembles."""
