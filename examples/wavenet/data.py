"""Speech made on the spot with espeak-ng (Debian package `espeak-ng`), as 8-bit mu-law samples.

Training speech: six sentences, each in two voices at two pitches; validation speech: two other
sentences in a third voice setting, so the validation loss measures generalization to unseen
words. espeak-ng is deterministic, so every run (and every worker) gets the same data. Audio is
decimated from 22,050 Hz to 7,350 Hz (mean of 3 samples, a crude low-pass) to keep the model's
receptive field meaningful at CPU scale.

    python -m examples.wavenet.data --out runs/wavenet/data     # writes speech.npz once
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import threading
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 7350
DECIMATE = 3
CLASSES = 256
TRAIN_TEXT = (
    "The quick brown fox jumps over the lazy dog.",
    "Population based training tunes the learning rate while the model trains.",
    "A stateless service keeps every trial in its database.",
    "Workers ask for a suggestion, train, evaluate and report back.",
    "Dilated causal convolutions see far into the past at little cost.",
    "Speech synthesis turns written words into sound.",
)
TRAIN_VOICES = (("en-us", 35), ("en-us", 65), ("en-gb", 35), ("en-gb", 65))
VALID_TEXT = (
    "Seven bright lanterns glowed along the harbor wall.",
    "Every child remembered the song they learned that summer.",
)
VALID_VOICES = (("en-us", 50),)
INSTALL_HINT = "espeak-ng is needed to make the speech: apt-get install espeak-ng (see examples/wavenet/setup.sh)"
_lock = threading.Lock()


@dataclass(frozen=True)
class Speech:
    """mu-law class indices (int64, 0..255) of concatenated utterances."""

    train: np.ndarray
    valid: np.ndarray


def mu_law_encode(audio: np.ndarray, classes: int = CLASSES) -> np.ndarray:
    """Floats in [-1, 1] -> class indices, companded as in the WaveNet paper."""
    mu = classes - 1
    companded = np.sign(audio) * np.log1p(mu * np.abs(audio)) / np.log1p(mu)
    indices: np.ndarray = np.clip(((companded + 1) / 2 * mu + 0.5).astype(np.int64), 0, mu)
    return indices


def synthesize(text: str, voice: str, pitch: int) -> np.ndarray:
    """One utterance as floats in [-1, 1] at SAMPLE_RATE. Raises RuntimeError without espeak-ng."""
    program = shutil.which("espeak-ng")
    if program is None:
        raise RuntimeError(INSTALL_HINT)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "utterance.wav"
        subprocess.run([program, "-v", voice, "-p", str(pitch), "-s", "150", "-w", str(path), text], check=True)
        with wave.open(str(path)) as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise RuntimeError(f"unexpected espeak-ng output: {wav.getparams()}")
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64) / 32768.0
    usable = len(pcm) // DECIMATE * DECIMATE
    decimated: np.ndarray = pcm[:usable].reshape(-1, DECIMATE).mean(axis=1)
    return decimated


def _corpus(texts: tuple[str, ...], voices: tuple[tuple[str, int], ...]) -> np.ndarray:
    audio = [synthesize(text, voice, pitch) for text in texts for voice, pitch in voices]
    joined = np.concatenate(audio)
    return mu_law_encode(joined / max(np.abs(joined).max(), 1e-9))


def load(folder: Path) -> Speech:
    """The speech in `folder/speech.npz`, made first when missing (atomically, once per process)."""
    path = Path(folder) / "speech.npz"
    with _lock:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            speech = Speech(_corpus(TRAIN_TEXT, TRAIN_VOICES), _corpus(VALID_TEXT, VALID_VOICES))
            fd, tmp = tempfile.mkstemp(prefix=".speech.", suffix=".npz", dir=path.parent)
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, train=speech.train, valid=speech.valid)
            os.replace(tmp, path)
        with np.load(path) as arrays:
            return Speech(arrays["train"], arrays["valid"])


def main() -> None:
    parser = argparse.ArgumentParser(description="Make the speech data set with espeak-ng.")
    parser.add_argument("--out", type=Path, default=Path("runs/wavenet/data"))
    args = parser.parse_args()
    speech = load(args.out)
    print(
        f"{args.out / 'speech.npz'}: {len(speech.train) / SAMPLE_RATE:.1f}s of training speech, "
        f"{len(speech.valid) / SAMPLE_RATE:.1f}s of validation speech at {SAMPLE_RATE} Hz, {CLASSES} mu-law classes"
    )


if __name__ == "__main__":
    main()
