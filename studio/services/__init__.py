"""The studio's tasks as the UI, the CLI and the API call them: open the inputs safely, run the
backend, keep the result in the gallery with what is needed to make it again.

- `facade`: `Studio`, the one object every caller holds; it wires the backends and the services
- `image`, `style`, `text`, `music`, `walks`: one service per task group
- `rerun`: a gallery item's task run again from its record
- `reproduce`: a picture made again from the parameters its PNG carries
- `records`: reading recorded parameters back into requests
- `writing_presets`: the Text tab's creative presets
"""

from studio.services.facade import Studio

__all__ = ["Studio"]
