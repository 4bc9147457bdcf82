"""Synthetic frontal chest radiographs in which every demo finding is visible.

The picture is a density map in [0, 1] (white = dense): body, lungs with vascular markings,
mediastinum, heart, diaphragm, spine, ribs, clavicles, then the findings drawn on top, then noise
and a contrast jitter. Geometry is in normalised coordinates under a random pose, and finding
sizes are chosen so that each survives a 64 px cache (a nodule is at least ~5 px across there).
Where each finding was drawn is recorded as a mask (`regions`): what grounding maps are scored
against (the pointing game in benchmarks/grounding.py).
"""

from __future__ import annotations

import itertools

import numpy as np

Side = str  # "left" or "right" of the patient; the patient's right lung is on the image's left
# A pixel belongs to a finding's region where drawing it changed the density by at least this
# much (before noise), or, for the heart and mediastinum, where their outline is more than half in.
REGION_CHANGE = 0.03


def _soft(distance: np.ndarray, edge: float = 0.006) -> np.ndarray:
    """Smooth inside-mask from a signed distance (positive inside)."""
    return 1.0 / (1.0 + np.exp(-np.clip(distance / edge, -40, 40)))


def _ellipse(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float
) -> np.ndarray:
    """Normalised elliptical radius: 1 on the outline."""
    return np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)


def _blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur through the FFT (no scipy dependency)."""
    h, w = image.shape
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    kernel = np.exp(-2 * (np.pi * sigma_px) ** 2 * (fx**2 + fy**2))
    return np.real(np.fft.ifft2(np.fft.fft2(image) * kernel))


def _segment(
    x: np.ndarray, y: np.ndarray, p0: tuple[float, float], p1: tuple[float, float]
) -> np.ndarray:
    """Distance from every pixel to the segment p0–p1."""
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy + 1e-12), 0, 1)
    return np.hypot(x - (x0 + t * dx), y - (y0 + t * dy))


def _polyline(x: np.ndarray, y: np.ndarray, points: list[tuple[float, float]]) -> np.ndarray:
    return np.min([_segment(x, y, a, b) for a, b in itertools.pairwise(points)], axis=0)


def _lung_x(side: Side) -> float:
    return 0.31 if side == "right" else 0.69  # patient's right is the image's left


def render_radiograph(
    rng: np.random.Generator,
    findings: dict[str, Side],
    size: int,
    regions: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """A `size`×`size` float32 density image showing `findings` (label → side). `regions`, when
    given, receives each drawn finding's (size, size) bool mask; the image does not change."""
    # Pose jitter: rotation, scale and shift applied to the sampling grid.
    angle = np.deg2rad(rng.uniform(-5, 5))
    scale = rng.uniform(0.93, 1.05)
    shift_x, shift_y = rng.uniform(-0.03, 0.03, size=2)
    gy, gx = (np.mgrid[0:size, 0:size] + 0.5) / size
    gx, gy = gx - 0.5 - shift_x, gy - 0.5 - shift_y
    x = (np.cos(angle) * gx - np.sin(angle) * gy) / scale + 0.5
    y = (np.sin(angle) * gx + np.cos(angle) * gy) / scale + 0.5

    body = _soft(1 - _ellipse(x, y, 0.5, 0.56, 0.47, 0.62), 0.01)
    dome = 0.74 - 0.035 * np.cos((x - 0.5) * 2 * np.pi) + rng.uniform(-0.02, 0.02)  # diaphragm
    lungs = {}
    for side in ("right", "left"):
        radius = _ellipse(x, y, _lung_x(side), 0.45, rng.uniform(0.145, 0.165), 0.31)
        lungs[side] = (radius, _soft(1 - radius, 0.01) * _soft(dome - y, 0.008))
    lung = np.clip(lungs["right"][1] + lungs["left"][1], 0, 1)

    density = 0.05 + 0.42 * body
    markings = _blur(rng.normal(size=x.shape), size / 90) * 0.6
    hilum_r = np.minimum(np.hypot(x - 0.40, y - 0.45), np.hypot(x - 0.60, y - 0.45))
    vessels = 0.05 * np.exp(-hilum_r / 0.12)
    lung_density = 0.12 + 0.03 * markings + vessels
    density = density * (1 - lung) + lung * lung_density
    density += 0.12 * body * _soft(y - dome, 0.01)  # abdomen below the diaphragm

    # Mediastinum (wider with enlarged cardiomediastinum) and heart (cardiothoracic ratio).
    half_width = (
        rng.uniform(0.105, 0.125)
        if "Enlarged Cardiomediastinum" in findings
        else rng.uniform(0.05, 0.065)
    )
    mediastinum = (
        _soft(half_width - np.abs(x - 0.5), 0.006) * _soft(y - 0.06, 0.01) * _soft(0.62 - y, 0.02)
    )
    ratio = rng.uniform(0.58, 0.68) if "Cardiomegaly" in findings else rng.uniform(0.40, 0.48)
    heart = _soft(1 - _ellipse(x, y, 0.55, 0.61, ratio * 0.36, 0.14), 0.01) * _soft(
        dome + 0.02 - y, 0.01
    )
    if regions is not None:
        for label, mask in (("Enlarged Cardiomediastinum", mediastinum), ("Cardiomegaly", heart)):
            if label in findings:
                regions[label] = mask > 0.5
    centre = np.maximum(mediastinum, heart)
    density = density * (1 - centre) + centre * 0.6
    trachea = _soft(0.022 - np.abs(x - 0.5), 0.004) * _soft(0.30 - y, 0.01) * _soft(y - 0.02, 0.01)
    density -= 0.14 * trachea

    # Bones: spine, posterior ribs, clavicles.
    density += 0.08 * _soft(0.035 - np.abs(x - 0.5), 0.004) * body
    ribs = np.zeros_like(x)
    for k in range(9):
        level = 0.17 + 0.062 * k + 0.06 * (np.abs(x - 0.5) - 0.25) ** 2 * 4
        ribs = np.maximum(ribs, _soft(0.009 - np.abs(y - level), 0.003))
    ribs *= _soft(np.abs(x - 0.5) - 0.06, 0.01) * _soft(
        1 - _ellipse(x, y, 0.5, 0.45, 0.4, 0.36), 0.01
    )
    density += 0.07 * ribs
    clavicles = np.minimum(
        _segment(x, y, (0.45, 0.15), (0.2, 0.1)), _segment(x, y, (0.55, 0.15), (0.8, 0.1))
    )
    density += 0.14 * _soft(0.014 - clavicles, 0.004)

    for label, side in findings.items():
        draw = _DRAW.get(label)  # cardiomegaly and a wide mediastinum are drawn with the anatomy
        if draw is not None:
            drawn = draw(rng, density, x, y, lungs, side, dome)
            if regions is not None:
                regions[label] = np.abs(drawn - density) >= REGION_CHANGE
            density = drawn

    density = (
        density
        + rng.normal(0, 0.012, size=x.shape)
        + 0.02 * _blur(rng.normal(size=x.shape), size / 8)
    )
    density = np.clip(density, 0, 1) ** rng.uniform(0.85, 1.2)  # exposure / contrast jitter
    return density.astype(np.float32)


def _effusion(rng, density, x, y, lungs, side, dome):
    radius, _ = lungs[side]
    lateral = np.abs(x - 0.5)
    meniscus = rng.uniform(0.56, 0.63) - 0.35 * (lateral - 0.2).clip(0)  # rises laterally
    fluid = _soft(1.08 - radius, 0.01) * _soft(y - meniscus, 0.008) * _soft(dome + 0.04 - y, 0.01)
    return density * (1 - fluid) + fluid * 0.56


def _pneumothorax(rng, density, x, y, lungs, side, dome):
    radius, lung = lungs[side]
    depth = rng.uniform(0.30, 0.42)  # rim of the lung, in ellipse-radius units
    apical = _soft(0.52 - y, 0.02)
    rim = lung * _soft(radius - (1 - depth), 0.006) * apical
    line = lung * _soft(0.025 - np.abs(radius - (1 - depth)), 0.005) * apical
    density = density * (1 - rim) + rim * 0.04  # air without lung markings
    return density + 0.18 * line  # the visceral pleural line


def _blob(rng, x, y, lungs, side, zone, radius):
    _, lung = lungs[side]
    cx = _lung_x(side) + rng.uniform(-0.05, 0.05)
    cy = {
        "upper": rng.uniform(0.28, 0.38),
        "mid": rng.uniform(0.40, 0.5),
        "lower": rng.uniform(0.55, 0.63),
    }[zone]
    shape = np.zeros_like(x)
    for _ in range(3):  # irregular outline from overlapping lobes
        ox, oy = rng.normal(0, radius * 0.35, size=2)
        shape = np.maximum(
            shape,
            _soft(
                1 - _ellipse(x, y, cx + ox, cy + oy, radius, radius * rng.uniform(0.7, 1.1)), 0.012
            ),
        )
    return shape * lung


def _consolidation(rng, density, x, y, lungs, side, dome):
    patch = _blob(rng, x, y, lungs, side, rng.choice(["lower", "mid"]), rng.uniform(0.065, 0.09))
    return density * (1 - patch) + patch * 0.55


def _pneumonia(rng, density, x, y, lungs, side, dome):
    _, lung = lungs[side]
    cx, cy = _lung_x(side), rng.uniform(0.5, 0.6)
    patches = np.zeros_like(x)
    for _ in range(7):  # fluffy, patchy airspace opacity
        px, py = cx + rng.normal(0, 0.045), cy + rng.normal(0, 0.05)
        patches += np.exp(-(((x - px) ** 2 + (y - py) ** 2) / (2 * 0.028**2)))
    return density + 0.22 * np.clip(patches, 0, 1) * lung


def _atelectasis(rng, density, x, y, lungs, side, dome):
    _, lung = lungs[side]
    cx, cy = _lung_x(side) + rng.uniform(-0.03, 0.03), rng.uniform(0.6, 0.66)
    tilt = rng.uniform(-0.25, 0.25)
    band = _segment(x, y, (cx - 0.08, cy - tilt * 0.08), (cx + 0.08, cy + tilt * 0.08))
    plate = _soft(0.017 - band, 0.004) * lung  # plate-like (discoid) atelectasis
    return density + 0.3 * plate


def _edema(rng, density, x, y, lungs, side, dome):
    lung = np.clip(lungs["right"][1] + lungs["left"][1], 0, 1)
    haze = np.exp(-(((x - 0.37) ** 2 + (y - 0.46) ** 2) / (2 * 0.085**2)))
    haze += np.exp(-(((x - 0.63) ** 2 + (y - 0.46) ** 2) / (2 * 0.085**2)))
    return density + rng.uniform(0.15, 0.2) * haze * lung  # bilateral perihilar "bat wing"


def _lesion(rng, density, x, y, lungs, side, dome):
    nodule = _blob(rng, x, y, lungs, side, rng.choice(["upper", "mid"]), rng.uniform(0.035, 0.05))
    return density + 0.35 * nodule


def _devices(rng, density, x, y, lungs, side, dome):
    lines = [_segment(x, y, (0.5, -0.05), (0.5, rng.uniform(0.24, 0.28)))]  # endotracheal tube
    if rng.random() < 0.6:  # right internal jugular central line into the SVC
        lines.append(
            _polyline(
                x, y, [(0.36, 0.0), (0.40, 0.12), (0.46, 0.22), (0.47, rng.uniform(0.32, 0.4))]
            )
        )
    if rng.random() < 0.4:  # pacemaker generator with a lead into the heart
        box = _soft(0.035 - np.abs(x - 0.76), 0.003) * _soft(0.025 - np.abs(y - 0.2), 0.003)
        density = np.maximum(density, 0.97 * box)
        lines.append(_polyline(x, y, [(0.76, 0.2), (0.58, 0.28), (0.5, 0.45), (0.55, 0.62)]))
    wire = _soft(0.008 - np.min(lines, axis=0), 0.003)
    return np.maximum(density, 0.95 * wire)


def _pleural_thickening(rng, density, x, y, lungs, side, dome):
    radius, _ = lungs[side]
    rim = _soft(0.05 - np.abs(radius - 1.0), 0.01) * _soft(y - 0.3, 0.02) * _soft(dome - y, 0.01)
    return density + 0.2 * rim


def _fracture(rng, density, x, y, lungs, side, dome):
    cx = (0.2 if side == "right" else 0.8) + rng.uniform(-0.03, 0.03)
    cy = 0.17 + 0.062 * rng.integers(2, 6) + 0.06
    callus = _soft(0.022 - np.hypot(x - cx, y - cy), 0.004)
    return density + 0.25 * callus


_DRAW = {
    "Pleural Effusion": _effusion,
    "Pneumothorax": _pneumothorax,
    "Consolidation": _consolidation,
    "Pneumonia": _pneumonia,
    "Atelectasis": _atelectasis,
    "Edema": _edema,
    "Lung Lesion": _lesion,
    "Support Devices": _devices,
    "Pleural Other": _pleural_thickening,
    "Fracture": _fracture,
}
