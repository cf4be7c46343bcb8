"""Attention pictures: where an attentional-pooling model looks.

The maps come from the trained head itself, `AttentionalPooling.attention_maps` (or
`PoseRegularizedAttention.attention_maps`) on the backbone's features, never from a second
implementation:

- **bottom-up**: the class-agnostic saliency map (the mean of the P maps for rank P > 1; the
  chosen class's map when the bottom-up map is class-specific);
- **top-down**: the map of one class (the predicted one, or any class asked for);
- **product**: `sum_p top_down[p, k] * bottom_up[p]`, the map whose mean over positions *is*
  the class's logit: the part of the image that actually weighs the pooling.

Each map is upsampled bilinearly with half-pixel centres (feature cell i covers input pixels
[i * s, (i + 1) * s) for stride s), min-max normalised per map, coloured with a perceptually
uniform colour map (brighter = larger) and blended over the frame. A picture shows the input
beside its overlays, with the top-k labels written on it; a video gives one strip: a column
per sampled frame, a row per map.

Example:

    model = keras.saving.load_model("workdir/demo/model.keras")
    maps = attention_maps_of(model, frames)                 # frames (T, H, W, 3) in [0, 255]
    figure = attention_figure(frames, maps, class_names)
    save_png(figure_to_array(figure), "attention.png")
"""

import dataclasses
from typing import Optional, Sequence, Tuple

import keras
import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from keras_attnpool.models import HEAD_SPECS, HeadSpec, split_model

COLORMAP = "inferno"  # lightness rises monotonically with the value: brightest = largest
ALPHA = 0.6


@dataclasses.dataclass
class AttentionMaps:
    """A head's maps for N frames on the feature grid (h, w), float32 NumPy arrays.

    Attributes:
        bottom_up: (N, h, w), or (N, h, w, K) when the bottom-up map is class-specific.
        top_down: (N, h, w, K), the mean over the rank.
        product: (N, h, w, K), `sum over rank of top_down * bottom_up`; its mean over
            positions equals the head's logits.
        logits: (N, K), per-frame logits (the product's mean over positions).
    """

    bottom_up: np.ndarray
    top_down: np.ndarray
    product: np.ndarray
    logits: np.ndarray

    def bottom_up_of(self, frame: int, class_index: int) -> np.ndarray:
        """The bottom-up map (h, w) that weighs `class_index` in `frame`."""
        maps = self.bottom_up[frame]
        return maps[..., class_index] if maps.ndim == 3 else maps


def _attention_parts(model: keras.Model) -> Tuple[keras.Model, keras.layers.Layer, HeadSpec]:
    backbone, head, spec = split_model(model)
    if not spec.attention_maps:
        with_maps = [name for name, other in HEAD_SPECS.items() if other.attention_maps]
        raise ValueError(f"model '{model.name}' has the {spec.name} head, which has no "
                         "attention maps to draw; train with --head="
                         f"{' or --head='.join(with_maps)}")
    return backbone, head, spec


def attention_layers(model: keras.Model) -> Tuple[keras.layers.Layer, keras.layers.Layer]:
    """(backbone, attention head) of a `build_action_model` model.

    Raises:
        ValueError: the model has no attention head (avg and second-order pooling have no
            attention maps), or is not a `build_action_model` model.
    """
    backbone, head, _ = _attention_parts(model)
    return backbone, head


def maps_from_head(head: keras.layers.Layer, head_input) -> AttentionMaps:
    """Calls `head.attention_maps(head_input)` and derives the product map and logits."""
    maps = head.attention_maps(head_input)
    top_down = np.asarray(maps["top_down"], dtype="float32")      # (N, h, w, P, K)
    bottom_up = np.asarray(maps["bottom_up"], dtype="float32")    # (N, h, w, P[, K])
    if top_down.ndim != 5:
        raise ValueError(f"attention maps of single frames expected; got top_down of shape "
                         f"{top_down.shape} (fold the frames into the batch first)")
    per_class = bottom_up if bottom_up.ndim == 5 else bottom_up[..., None]
    product = np.sum(top_down * per_class, axis=3)
    return AttentionMaps(bottom_up=bottom_up.mean(axis=3), top_down=top_down.mean(axis=3),
                         product=product, logits=product.mean(axis=(1, 2)))


def attention_maps_of(model: keras.Model, frames: np.ndarray,
                      batch_size: int = 16) -> AttentionMaps:
    """The maps of `model`'s attention head for frames (N, H, W, 3) in [0, 255]."""
    backbone, head, spec = _attention_parts(model)
    parts = []
    for start in range(0, len(frames), batch_size):
        features = backbone(np.asarray(frames[start:start + batch_size], "float32"),
                            training=False)
        parts.append(maps_from_head(head, spec.head_inputs(features)))
    return AttentionMaps(*(np.concatenate([getattr(p, f.name) for p in parts])
                           for f in dataclasses.fields(AttentionMaps)))


def upsample(feature_map: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an (h, w) map to `size` = (H, W), half-pixel centres aligned."""
    image = Image.fromarray(np.asarray(feature_map, dtype="float32"), mode="F")
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.BILINEAR))


def normalize(values: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1]; a constant map becomes all zeros."""
    low, high = float(np.min(values)), float(np.max(values))
    return np.zeros_like(values) if high - low < 1e-12 else (values - low) / (high - low)


def heat_overlay(image: np.ndarray, feature_map: np.ndarray, alpha: float = ALPHA,
                 colormap: str = COLORMAP) -> np.ndarray:
    """The (h, w) map upsampled, coloured and blended over an (H, W, 3) image: uint8."""
    image = np.asarray(image, dtype="float32")
    heat = normalize(upsample(feature_map, image.shape[:2]))
    colours = matplotlib.colormaps[colormap](heat)[..., :3] * 255.0
    blended = (1.0 - alpha) * image + alpha * colours
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def class_probabilities(logits: np.ndarray, multi_label: bool = False) -> np.ndarray:
    """Softmax (or sigmoid for multi-label) of the frame-averaged logits (the consensus)."""
    mean = np.asarray(logits, dtype="float64").mean(axis=0)
    if multi_label:
        return 1.0 / (1.0 + np.exp(-mean))
    exp = np.exp(mean - mean.max())
    return exp / exp.sum()


def top_k_lines(probabilities: np.ndarray, class_names: Sequence[str], k: int = 3) -> list:
    """['digit_3 0.91', ...]: the k most probable classes, most probable first."""
    order = np.argsort(-probabilities)[:k]
    return [f"{class_names[i]} {probabilities[i]:.2f}" for i in order]


def overlay_panels(frames: np.ndarray, maps: AttentionMaps, classes: Sequence[int]) -> list:
    """[(row title, [uint8 panel per frame])]: the input, the bottom-up map of the first
    class, then the top-down and product maps of every class in `classes`."""
    frames = np.clip(np.asarray(frames, dtype="float32"), 0, 255)
    count = len(frames)
    rows = [("input", [frames[t].astype(np.uint8) for t in range(count)]),
            ("bottom-up", [heat_overlay(frames[t], maps.bottom_up_of(t, classes[0]))
                           for t in range(count)])]
    for k in classes:
        rows.append((f"top-down #{k}", [heat_overlay(frames[t], maps.top_down[t, ..., k])
                                        for t in range(count)]))
        rows.append((f"product #{k}", [heat_overlay(frames[t], maps.product[t, ..., k])
                                       for t in range(count)]))
    return rows


def _row_title(title: str, class_names: Sequence[str], predicted: int) -> str:
    if "#" not in title:
        return title
    kind, index = title.split(" #")
    name = class_names[int(index)]
    return f"{kind}\n{name}" + (" (pred.)" if int(index) == predicted else "")


def attention_figure(frames: np.ndarray, maps: AttentionMaps, class_names: Sequence[str],
                     classes: Sequence[int] = (), top_k: int = 3, title: str = "",
                     true_label: Optional[int] = None, multi_label: bool = False,
                     panel_inches: float = 1.25) -> Figure:
    """The picture of one image (a row of panels) or one video (a strip: a column per frame).

    Args:
        frames: (T, H, W, 3) in [0, 255], the frames `maps` were computed on.
        maps: their `AttentionMaps` (N = T).
        class_names: names of the K classes.
        classes: extra classes whose top-down and product maps are drawn besides the
            predicted class's (indices into class_names).
        top_k: how many labels (with probabilities) to write on the picture.
        title: written first (e.g. the file name).
        true_label: written when known.
    """
    probabilities = class_probabilities(maps.logits, multi_label)
    predicted = int(np.argmax(probabilities))
    shown = [predicted] + [int(k) for k in classes if int(k) != predicted]
    rows = overlay_panels(frames, maps, shown)
    columns = len(frames)
    grid = (1, len(rows)) if columns == 1 else (len(rows), columns)
    text = " | ".join(top_k_lines(probabilities, class_names, top_k))
    heading = "\n".join(line for line in (
        title, f"top-{top_k}: {text}",
        f"true: {class_names[true_label]}" if true_label is not None else "") if line)
    heading_inches = 0.06 + 0.12 * (heading.count("\n") + 1)
    height = panel_inches * grid[0] + heading_inches + (0.3 if columns == 1 else 0.15)
    figure = Figure(figsize=(panel_inches * grid[1] + (0.25 if columns > 1 else 0), height),
                    dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(*grid, squeeze=False)
    for r, (row_title, panels) in enumerate(rows):
        for t, panel in enumerate(panels):
            ax = axes[0, r] if columns == 1 else axes[r, t]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            label = _row_title(row_title, class_names, predicted)
            if columns == 1:
                ax.set_title(label, fontsize=7)
            elif t == 0:
                ax.set_ylabel(label, fontsize=7)
            if columns > 1 and r == 0:
                ax.set_title(f"frame {t + 1}", fontsize=7)
    figure.suptitle(heading, fontsize=7, y=1.0, va="top")
    figure.tight_layout(pad=0.2, rect=(0, 0, 1, 1 - heading_inches / height))
    return figure


def figure_to_array(figure: Figure) -> np.ndarray:
    """The rendered figure as uint8 (H, W, 3)."""
    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(
        figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_png(picture: np.ndarray, path: str, colors: Optional[int] = None) -> str:
    """Writes an (H, W, 3) uint8 picture as PNG; `colors` (e.g. 128) makes a small paletted
    file for checking in."""
    image = Image.fromarray(np.asarray(picture, dtype=np.uint8))
    if colors:
        image = image.quantize(colors, method=Image.Quantize.MEDIANCUT)
    image.save(path, optimize=True)
    return path


def attention_picture(model: keras.Model, frames: np.ndarray, class_names: Sequence[str],
                      **figure_kwargs) -> np.ndarray:
    """The whole path: maps from `model`'s head for frames (T, H, W, 3) in [0, 255], drawn
    by `attention_figure(..., **figure_kwargs)`, as a uint8 (H, W, 3) picture."""
    maps = attention_maps_of(model, frames)
    return figure_to_array(attention_figure(frames, maps, class_names, **figure_kwargs))
