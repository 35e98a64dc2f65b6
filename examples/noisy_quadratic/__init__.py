"""A 20-dimensional noisy quadratic where the best learning rate changes during training."""

from examples.noisy_quadratic.problem import NoisyQuadratic, evaluate, study_config, train

__all__ = ["NoisyQuadratic", "evaluate", "study_config", "train"]
