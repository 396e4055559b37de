"""The embedded visual default: hand-built colour, texture/edge, motion and cut statistics (no learned weights).

It is honest about what it is (``visual-stats-v1``): it carries signal for colour dominance, on-screen
text-like edges, moving objects and cuts, and nothing semantic beyond that.
"""

from __future__ import annotations

import numpy as np

VISUAL_ID = "visual-stats-v1"
SIZE = 64  # frames are decoded at 64 x 64 pixels
HUE_BINS = 12
EDGE_BINS = 8
CUT_THRESHOLD = 0.35  # colour-histogram L1 distance (in [0, 2]) above which two frames are a cut

FEATURE_NAMES: tuple[str, ...] = (
    tuple(f"hue_hist_{i}" for i in range(HUE_BINS))
    + (
        "mean_r",
        "mean_g",
        "mean_b",
        "std_r",
        "std_g",
        "std_b",
        "saturation",
        "value",
        "red_fraction",
        "green_fraction",
        "blue_fraction",
        "red_fraction_max",
    )
    + tuple(f"edge_hist_{i}" for i in range(EDGE_BINS))
    + ("edge_mean", "edge_std", "edge_density", "horizontal_edge_ratio", "text_band_score", "contrast")
    + (
        "motion_mean",
        "motion_max",
        "motion_std",
        "moving_fraction",
        "centroid_shift",
        "cut_count",
        "cuts_per_frame",
        "hist_change_mean",
    )
)
VISUAL_DIM = len(FEATURE_NAMES)


def _hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """rgb float [.., 3] in [0, 1] -> hue in [0, 1), saturation, value."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx, mn = rgb.max(-1), rgb.min(-1)
    delta = mx - mn
    safe = np.where(delta > 1e-6, delta, 1.0)
    hue = np.where(mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6.0
    hue = np.where(delta > 1e-6, hue, 0.0)
    sat = np.where(mx > 1e-6, delta / np.where(mx > 1e-6, mx, 1.0), 0.0)
    return hue, sat, mx


def frame_features(frames: np.ndarray) -> np.ndarray:
    """Statistics of one video. ``frames``: uint8 [T, H, W, 3] RGB. Returns float32 [VISUAL_DIM]."""
    x = frames.astype(np.float32) / 255.0
    t = x.shape[0]
    hue, sat, val = _hsv(x)
    weights = sat * val
    hue_hist = np.stack([np.histogram(hue[i], bins=HUE_BINS, range=(0, 1), weights=weights[i])[0] for i in range(t)])
    hue_hist = hue_hist / np.maximum(hue_hist.sum(1, keepdims=True), 1e-6)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    red = ((r > 0.45) & (r > 1.5 * g) & (r > 1.5 * b)).mean((1, 2))
    green = ((g > 0.45) & (g > 1.3 * r) & (g > 1.3 * b)).mean((1, 2))
    blue = ((b > 0.45) & (b > 1.3 * r) & (b > 1.3 * g)).mean((1, 2))
    colour = np.concatenate(
        [
            hue_hist.mean(0),
            x.mean((0, 1, 2)),
            x.std((0, 1, 2)),
            [sat.mean(), val.mean(), red.mean(), green.mean(), blue.mean(), red.max()],
        ]
    )

    gray = x.mean(-1)  # [T, H, W]
    gx = np.abs(np.diff(gray, axis=2))[:, :-1, :]
    gy = np.abs(np.diff(gray, axis=1))[:, :, :-1]
    mag = np.sqrt(gx**2 + gy**2)
    edge_hist = np.histogram(mag, bins=EDGE_BINS, range=(0, 0.5))[0].astype(np.float32)
    edge_hist /= max(edge_hist.sum(), 1.0)
    strong = mag > 0.15
    # Text overlays are dense runs of strong vertical strokes within a horizontal band.
    row_density = strong.mean(2)  # [T, H-1]
    text_band = np.sort(row_density, axis=1)[:, -max(1, row_density.shape[1] // 8) :].mean(1)
    texture = np.array(
        [
            mag.mean(),
            mag.std(),
            strong.mean(),
            gx.mean() / max(gy.mean(), 1e-6) / 4.0,
            text_band.mean() - row_density.mean(),
            gray.std((1, 2)).mean(),
        ]
    )

    if t > 1:
        diff = np.abs(np.diff(gray, axis=0))  # [T-1, H, W]
        per_step = diff.mean((1, 2))
        moving = (diff > 0.1).mean((1, 2))
        hist = np.stack(
            [np.histogramdd(x[i].reshape(-1, 3), bins=(4, 4, 4), range=[(0, 1)] * 3)[0].ravel() for i in range(t)]
        )
        hist /= hist.sum(1, keepdims=True)
        change = np.abs(np.diff(hist, axis=0)).sum(1)  # [T-1] in [0, 2]
        cuts = change > CUT_THRESHOLD
        # Motion without cuts: a cut also makes a huge frame difference, so motion is measured on non-cut steps
        # (a video that is all cuts has no measurable motion: its motion statistics are 0).
        calm = ~cuts
        ys, xs = np.mgrid[0 : gray.shape[1], 0 : gray.shape[2]] / gray.shape[1]
        w = diff / np.maximum(diff.sum((1, 2), keepdims=True), 1e-6)
        cy, cx = (w * ys).sum((1, 2)), (w * xs).sum((1, 2))
        shift = np.sqrt(np.diff(cy) ** 2 + np.diff(cx) ** 2).mean() if t > 2 else 0.0
        steps, moved = (per_step[calm], moving[calm]) if calm.any() else (np.zeros(1), np.zeros(1))
        motion = np.array(
            [
                steps.mean(),
                steps.max(),
                steps.std(),
                moved.mean(),
                shift if calm.any() else 0.0,
                cuts.sum() / 4.0,
                cuts.mean(),
                change.mean() / 2.0,
            ]
        )
    else:
        motion = np.zeros(8)
    return np.concatenate([colour, edge_hist, texture, motion]).astype(np.float32)


def pooled_visual_vector(frames: np.ndarray) -> np.ndarray:
    """The visual block of an embedding: features scaled to unit length, float32 [VISUAL_DIM]."""
    v = frame_features(frames)
    return (v / max(float(np.linalg.norm(v)), 1e-6)).astype(np.float32)
