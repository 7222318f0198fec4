"""The operator's cluster layout (`--cluster-config FILE`, TOML): for each model family, how many
replicas (or an autoscaling range), CPUs and GPUs per replica (fractions allowed) and how many
requests one replica takes at once. Families left out keep the defaults below.

    [style]
    replicas = 2
    num_cpus = 1

    [music]
    remote = false       # MusicGen stays in the front end's process

    [image]
    min_replicas = 1
    max_replicas = 4
    num_gpus = 0.5
    max_ongoing_requests = 1
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from studio.errors import StudioError

# The deployments, one per model family; each runs the backends families.build makes for it.
FAMILIES = ("image", "style", "text", "music", "melody", "walks")


@dataclass(frozen=True)
class FamilyConfig:
    replicas: int = 1
    # With both set, Ray Serve autoscales between them on queued requests instead of `replicas`.
    min_replicas: int | None = None
    max_replicas: int | None = None
    # A small share of a CPU by default, so six families fit a 2-core machine; give a GPU family num_gpus.
    num_cpus: float = 0.25
    num_gpus: float = 0.0
    # One job at a time per replica: a model step uses the replica's whole CPU or GPU share.
    max_ongoing_requests: int = 1

    def deployment_options(self) -> dict[str, Any]:
        """The keyword arguments of `Deployment.options` for this family."""
        options: dict[str, Any] = {
            "ray_actor_options": {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus},
            "max_ongoing_requests": self.max_ongoing_requests,
        }
        if self.min_replicas is not None and self.max_replicas is not None:
            options["autoscaling_config"] = {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                                             "target_ongoing_requests": self.max_ongoing_requests}
        else:
            options["num_replicas"] = self.replicas
        return options


@dataclass(frozen=True)
class ClusterConfig:
    # The families that run on Ray; any other runs in the front end's process as without --ray.
    families: dict[str, FamilyConfig] = field(default_factory=lambda: {name: FamilyConfig() for name in FAMILIES})

    def with_replicas(self, replicas: int) -> ClusterConfig:
        """Every family at a fixed replica count (the benchmark's 1 and 2)."""
        return ClusterConfig({name: replace(c, replicas=replicas, min_replicas=None, max_replicas=None)
                              for name, c in self.families.items()})


_INT_FIELDS = {"replicas", "min_replicas", "max_replicas", "max_ongoing_requests"}
_FIELDS = {f.name for f in fields(FamilyConfig)}


def _family(name: str, table: Any, where: Path) -> FamilyConfig:
    if not isinstance(table, dict):
        raise StudioError(f"{where}: [{name}] must be a table of settings.")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "remote":
            if not isinstance(value, bool):
                raise StudioError(f"{where}: [{name}] remote must be true or false, not {value!r}.")
            continue
        if key not in _FIELDS:
            raise StudioError(f"{where}: [{name}] has an unknown setting '{key}' (known: remote, {', '.join(sorted(_FIELDS))}).")
        number_types = (int,) if key in _INT_FIELDS else (int, float)
        if isinstance(value, bool) or not isinstance(value, number_types) or value < 0:
            kind = "a whole number" if key in _INT_FIELDS else "a number"
            raise StudioError(f"{where}: [{name}] {key} must be {kind} of 0 or more, not {value!r}.")
        values[key] = value
    config = FamilyConfig(**values)
    if (config.min_replicas is None) != (config.max_replicas is None):
        raise StudioError(f"{where}: [{name}] needs both min_replicas and max_replicas to autoscale.")
    if config.max_replicas is not None and config.min_replicas is not None and config.min_replicas > config.max_replicas:
        raise StudioError(f"{where}: [{name}] min_replicas is above max_replicas.")
    if config.max_ongoing_requests < 1:
        raise StudioError(f"{where}: [{name}] max_ongoing_requests must be 1 or more.")
    return config


def load_cluster_config(path: Path | None) -> ClusterConfig:
    """The defaults, with what the operator's TOML file sets for each family; one sentence on a mistake."""
    if path is None:
        return ClusterConfig()
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise StudioError(f"The cluster config {path} could not be read ({exc.strerror or exc}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise StudioError(f"The cluster config {path} is not valid TOML ({exc}).") from None
    unknown = sorted(set(data) - set(FAMILIES))
    if unknown:
        raise StudioError(f"{path}: unknown family '{unknown[0]}' (families: {', '.join(FAMILIES)}).")
    families = {name: _family(name, data[name], path) if name in data else FamilyConfig() for name in FAMILIES
                if not (isinstance(data.get(name), dict) and data[name].get("remote") is False)}
    return ClusterConfig(families)
