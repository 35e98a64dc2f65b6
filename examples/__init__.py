"""Trainer/evaluator pairs for the PBT worker: a toy problem, a noisy quadratic and a small MLP.

Each subpackage exposes `study_config(...)`, `train(ctx)` and `evaluate(ctx, checkpoint)`; only
`examples.digits` needs PyTorch and scikit-learn (the `examples` extra).
"""
