"""The self-contained HTML report's assets, kept as Python strings so they ship with the package."""
