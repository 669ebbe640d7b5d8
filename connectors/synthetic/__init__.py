"""Synthetic source: plausible partner traffic for demos and load, with its expected outcome."""

from connectors.synthetic.generator import Expected, Synthetic

__all__ = ["Expected", "Synthetic"]
