"""Colours and legend labels of the difference view; the masks are :mod:`bonesim.morphometry.difference`."""

from __future__ import annotations

from bonesim.morphometry.difference import MASKS, Difference, cut_elements, difference_masks

__all__ = ["COLOURS", "LABELS", "MASKS", "Difference", "cut_elements", "difference_masks"]

#: RGB colours (0-255) of the difference view.
COLOURS = {
    "current": (190, 190, 190),
    "lost": (225, 25, 25),
    "formed": (30, 190, 60),
    "perforated": (240, 0, 240),
}
LABELS = {
    "current": "bone now",
    "lost": "lost",
    "formed": "formed",
    "perforated": "perforation",
}
