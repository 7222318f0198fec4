"""Pure helpers for media files: images, PNG metadata. No models, no UI."""
