"""HTTP APIs in the dialects existing clients already speak, served beside the page on its port
(`--api`): AUTOMATIC1111's `/sdapi/v1` and an OpenAI-compatible `/v1`.

They are a front end like the page and the command line: each request becomes the same service
call a tab makes, waits in the same heavy lane, meets the same limits, and fails with the same
one-sentence messages, shaped the way its dialect's clients read errors.
"""

from studio.api.mount import ExtraApis, build_api_app

__all__ = ["ExtraApis", "build_api_app"]
