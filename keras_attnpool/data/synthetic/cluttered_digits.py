"""Cluttered digits: a small task where the evidence is small and surrounded by clutter.

A 16 px handwritten digit (scikit-learn's 8x8 digits, shipped with the package, upscaled)
drifts across a 64 px frame strewn with fragments of other digits. The class is the digit.
Average pooling mixes the digit with the clutter; attention can find it. This is the
fine-grained case where the paper says attentional pooling wins, at a size a laptop CPU
trains in minutes.

Digit *instances* are split between train and test, so test frames show handwriting the
model has never seen.
"""

from typing import Optional

import numpy as np

FRAME_SIZE = 64
DIGIT_SIZE = 16
FRAGMENT_SIZE = 7


def _digit_bank(classes: int, first: int = 0):
    """Upscaled digits in [0, 1]: images (N, 16, 16), labels (N,) (the digits themselves),
    for digits first..first+classes-1."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = (digits.target >= first) & (digits.target < first + classes)
    images = []
    for image in digits.images[keep]:
        pil = Image.fromarray((image / 16.0 * 255).astype(np.uint8))
        images.append(np.asarray(pil.resize((DIGIT_SIZE, DIGIT_SIZE), Image.BILINEAR)) / 255.0)
    return np.stack(images).astype(np.float32), digits.target[keep].astype(np.int32), digits


def _fragment_bank(digits, rng: np.random.Generator, count: int = 400) -> np.ndarray:
    """Pieces of upscaled digits of every class (0-9): clutter that looks like evidence."""
    from PIL import Image

    fragments = []
    for index in rng.integers(0, len(digits.images), size=count):
        pil = Image.fromarray((digits.images[index] / 16.0 * 255).astype(np.uint8))
        big = np.asarray(pil.resize((DIGIT_SIZE, DIGIT_SIZE), Image.BILINEAR)) / 255.0
        y, x = rng.integers(0, DIGIT_SIZE - FRAGMENT_SIZE + 1, size=2)
        fragments.append(big[y:y + FRAGMENT_SIZE, x:x + FRAGMENT_SIZE])
    return np.stack(fragments).astype(np.float32)


def render_clip(digit: np.ndarray, fragments: np.ndarray, rng: np.random.Generator,
                num_frames: int = 1, num_fragments: int = 14):
    """One clip of a digit drifting among static fragments.

    Returns:
        frames: uint8 (num_frames, 64, 64, 3); centres: float32 (num_frames, 2) = (x, y) of the
        digit's centre in pixels (its "keypoint").
    """
    canvas = rng.uniform(0.0, 0.15, size=(FRAME_SIZE, FRAME_SIZE)).astype(np.float32)
    for fragment in fragments[rng.integers(0, len(fragments), size=num_fragments)]:
        y, x = rng.integers(0, FRAME_SIZE - FRAGMENT_SIZE + 1, size=2)
        patch = canvas[y:y + FRAGMENT_SIZE, x:x + FRAGMENT_SIZE]
        np.maximum(patch, fragment * rng.uniform(0.6, 1.0), out=patch)
    span = FRAME_SIZE - DIGIT_SIZE
    start = rng.uniform(0, span, size=2)
    velocity = rng.uniform(-2.0, 2.0, size=2)
    tint = rng.uniform(0.6, 1.0, size=3).astype(np.float32)
    frames, centres = [], []
    for t in range(num_frames):
        position = np.clip(start + velocity * t, 0, span).astype(int)
        frame = canvas.copy()
        y, x = position[1], position[0]
        window = frame[y:y + DIGIT_SIZE, x:x + DIGIT_SIZE]
        np.maximum(window, digit, out=window)
        frames.append(np.clip(frame[..., None] * tint * 255.0, 0, 255).astype(np.uint8))
        centres.append(position + DIGIT_SIZE / 2.0)
    return np.stack(frames), np.asarray(centres, np.float32)


def load_cluttered_digits(num_train: int = 1500, num_test: int = 500, num_classes: int = 5,
                          seed: int = 0, test_fraction: float = 0.3,
                          num_fragments: Optional[int] = None):
    """Single-frame cluttered digits as arrays.

    Returns:
        ((x_train, y_train), (x_test, y_test), class_names): uint8 frames (N, 64, 64, 3) in
        [0, 255] and int32 labels; class names "digit_0" .. .
    """
    if not 2 <= num_classes <= 10:
        raise ValueError(f"`num_classes` must be in [2, 10]; got {num_classes}.")
    rng = np.random.default_rng(seed)
    images, labels, digits = _digit_bank(num_classes)
    order = rng.permutation(len(images))
    cut = int(len(order) * (1 - test_fraction))
    fragments = _fragment_bank(digits, rng)
    kwargs = {} if num_fragments is None else {"num_fragments": num_fragments}

    def render(indices, count):
        chosen = rng.choice(indices, size=count)
        frames = [render_clip(images[i], fragments, rng, **kwargs)[0][0] for i in chosen]
        return np.stack(frames), labels[chosen]

    train = render(order[:cut], num_train)
    test = render(order[cut:], num_test)
    return train, test, [f"digit_{k}" for k in range(num_classes)]
