"""A small WaveNet on speech synthesized with espeak-ng; PBT tunes Adam's learning rate (paper §4)."""
