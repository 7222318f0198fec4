"""Creative Studio: images, styles, text, melodies and latent walks in one browser app."""

import logging

__version__ = "0.1.0"


class _NoTorchvisionNotice(logging.Filter):
    """The studio runs without torchvision on purpose (PyPI's Linux build is the CUDA one), so transformers'
    image processors use their PIL versions; transformers says so on every start, which only alarms."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "requires torchvision (not installed); falling back" not in record.getMessage()


logging.getLogger("transformers.utils.import_utils").addFilter(_NoTorchvisionNotice())
