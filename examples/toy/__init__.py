"""Jaderberg et al.'s toy problem: two coordinates, two hyperparameters."""

from examples.toy.problem import evaluate, study_config, train, true_objective

__all__ = ["evaluate", "study_config", "train", "true_objective"]
