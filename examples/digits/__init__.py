"""A PyTorch MLP on scikit-learn's digits; needs the `examples` extra (torch, scikit-learn)."""

from examples.digits.problem import DigitsMLP, build_model, evaluate, study_config, train

__all__ = ["DigitsMLP", "build_model", "evaluate", "study_config", "train"]
