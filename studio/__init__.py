"""Creative Studio: images, styles, text, melodies and latent walks in one browser app."""

__version__ = "0.1.0"
