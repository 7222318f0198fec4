"""Start Creative Studio: `python app.py --help` lists the flags; each also reads a STUDIO_* variable."""

from __future__ import annotations

import argparse
import logging
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def main(argv: list[str] | None = None) -> int:
    from studio import settings as settings_mod

    parser = argparse.ArgumentParser(prog="app.py", description="Creative Studio: a browser studio for images, "
                                     "styles, text, melodies and latent walks.")
    settings_mod.add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_mod.from_args(args)
        if settings_mod.on_space():
            from studio.space import install_builtin_packages

            install_builtin_packages()
        if settings.offline:
            os.environ["HF_HUB_OFFLINE"] = "1"
        from studio.errors import StudioError
        from studio.services import Studio
        from studio.ui.app import launch

        try:
            studio = Studio(settings)
        except StudioError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    except settings_mod.SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Creative Studio: outputs and gallery in {settings.data_dir.resolve()}"
          + (" (hosted: per-visitor galleries, queued and rate-limited heavy work)" if settings.hosted else ""))
    if settings.api or settings.api_key:
        base = f"http://{settings.host}:{settings.port}"
        print(f"HTTP APIs for existing clients: {base}/sdapi/v1 (AUTOMATIC1111) and {base}/v1 (OpenAI)"
              + (", behind the login or API key" if settings.auth or settings.api_key else ""))
    launch(studio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
