"""Performance predictors: regressors from an architecture's encoding to its measured metric.

``create_predictor("gbt" | "mlp-ensemble" | "gp", **settings)``; ``fit(X, y)``, ``predict(X)``,
``predict_with_std(X)``, ``rank_correlation(X_held_out, y_held_out)``. ``encode_many`` turns
token sequences into X for a space. The predictor modules are imported when their name is first
asked for (``registry.PREDICTORS`` declares them), so importing this package loads neither
scikit-learn's models nor torch.
"""

from .base import PREDICTORS, Predictor, create_predictor, rank_correlation
from .encodings import encode, encode_many

__all__ = ["PREDICTORS", "Predictor", "create_predictor", "rank_correlation", "encode", "encode_many"]
