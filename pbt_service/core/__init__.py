"""Pure domain: search space, fitness, mutation and evolution. No I/O, no clock, no global RNG."""
