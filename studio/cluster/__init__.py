"""The optional Ray Serve tier: with `--ray ADDRESS` a hosted studio's model work runs on Ray Serve
deployments (one per model family) instead of in this process, behind the same backend interfaces.

Nothing here imports ray at module level except `replica`, which only Ray workers and `client` load:
the desktop install does not carry ray (requirements-ray.txt)."""
