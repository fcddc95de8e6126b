"""Fitting: transition rows, the model forms, training, cross-validation, ensembles.

`fit_model` turns a store into a `FittedModel` (with its cross-validation report);
`save_model`/`load_model` write and read the model directory.
"""

from regmixd_cli.fit.evaluate import evaluate_model
from regmixd_cli.fit.files import load_model, model_hash, save_model
from regmixd_cli.fit.model import FitConfig, FittedModel, XGBSettings
from regmixd_cli.fit.training import fit_model

__all__ = [
    "FitConfig", "FittedModel", "XGBSettings", "evaluate_model", "fit_model", "load_model",
    "model_hash", "save_model",
]  # fmt: skip
