"""The front end's side of the Ray Serve tier: connect to Ray, deploy one application per model
family, and stand remote proxies in for the Studio's backends, so the services, tabs, CLI and APIs
call the same methods as in-process and the work runs on the cluster.

A proxy forwards the family's model-running methods (families.REMOTE_METHODS) to its deployment and
everything else (catalogue look-ups, sizes, LoRA listings) to an ordinary local backend, which never
loads a model. Progress and previews come back as the replica yields them. The caller's cancel token
(a Stop button) asks the replica to stop the job through the stop board (stops.py), so the job ends
as in-process and its partial result comes back; the Ray response is cancelled only when the job has
not ended within STOP_GRACE_S, or when the reader has gone (a closed page).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from studio.cluster.config import ClusterConfig, load_cluster_config
from studio.cluster.families import REMOTE_METHODS, checkpoint_of
from studio.errors import Cancelled, InputError, ModelUnavailable, StudioError
from studio.runtime import NEVER_CANCELLED, CancelToken, ProgressCallback, no_progress
from studio.settings import Settings

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent.parent  # the checkout holding the studio package
APP_PREFIX = "studio-"
LOST = ("The worker running this job was lost before it finished (its machine or the Ray cluster went away); "
        "nothing was kept. Please try again in a moment.")
_ERRORS: dict[str, type[Exception]] = {"InputError": InputError, "ModelUnavailable": ModelUnavailable}
# How long a stopped job may take to end by itself (one step, plus the way back) before its response is cancelled.
STOP_GRACE_S = 5.0


class ClusterUnavailable(StudioError):
    """Ray could not be reached or the deployments could not start."""


def _check_reachable(address: str, timeout: float = 3.0) -> None:
    """Refuse at once, in one sentence, when nothing listens at ADDRESS (ray.init would wait a minute)."""
    host_port = address.removeprefix("ray://")
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterUnavailable(f"--ray {address!r} is not an address: give HOST:PORT of the Ray head node "
                                 "(or ray://HOST:10001, or 'local').")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ClusterUnavailable(
            f"Ray is not reachable at {address} ({exc.strerror or exc}): start the head node there with "
            "`ray start --head`, or run the studio without --ray to do the work in this process.") from None


def _start_ray(address: str) -> None:
    import ray

    if ray.is_initialized():  # tests and embedding programs may have started Ray themselves
        return
    if address == "local":
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
        return
    if address != "auto":
        _check_reachable(address)
    try:
        ray.init(address=address, log_to_driver=False)
    except Exception as exc:  # ray raises ConnectionError, RuntimeError... for a cluster it cannot join
        raise ClusterUnavailable(f"Ray at {address} could not be joined ({str(exc).splitlines()[0][:200]}).") from None


def worker_settings(settings: Settings) -> Settings:
    """What replicas are built from: the same settings with absolute paths (a worker's working folder
    is not the front end's), and no front-end-only flags."""
    return replace(settings, data_dir=settings.data_dir.resolve(),
                   models_file=settings.models_file.resolve() if settings.models_file else None,
                   ray_address=None, auth=None, api_key=None)


def deploy(settings: Settings, config: ClusterConfig) -> dict[str, Any]:
    """Start (or update) one Serve application per remote family; their handles by family."""
    from ray import serve
    from ray.serve.api import RunTarget

    from studio.cluster.replica import FamilyReplica

    serve.start(proxy_location="Disabled")  # the front end calls handles; no HTTP ingress is needed
    remote = worker_settings(settings)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    targets, names = [], []
    for family, family_config in config.families.items():
        options = family_config.deployment_options()
        options["ray_actor_options"]["runtime_env"] = {"env_vars": env}
        deployment = serve.deployment(FamilyReplica).options(name=f"{APP_PREFIX}{family}", **options)
        targets.append(RunTarget(deployment.bind(remote, family), name=f"{APP_PREFIX}{family}", route_prefix=None))
        names.append(family)
    handles = serve.run_many(targets) if targets else []
    return dict(zip(names, handles, strict=True))


@contextmanager
def _stop_on(cancel: CancelToken, response: Any, job: str, board: Any | None) -> Iterator[None]:
    """As soon as `cancel` is set (a Stop button, a hung-up API caller), ask the replica to stop the job;
    cancel the Ray response if the job has not ended STOP_GRACE_S later, or if there is no board."""
    finished = threading.Event()

    def watch() -> None:
        while not finished.wait(0.02):
            if cancel.cancelled:
                try:
                    board.stop.remote(job)
                except Exception:  # no board, or Ray itself gone: the response's cancel still reaches the job
                    response.cancel()
                    return
                if not finished.wait(STOP_GRACE_S):
                    log.warning("a stopped job did not end within %.0f s; its response is cancelled", STOP_GRACE_S)
                    response.cancel()
                return

    if cancel is not NEVER_CANCELLED:
        threading.Thread(target=watch, daemon=True, name="ray-stop").start()
    try:
        yield
    finally:
        finished.set()


@dataclass
class Cluster:
    handles: dict[str, Any]
    board: Any | None = None  # the stop board (stops.py)

    def _items(self, family: str, target: str, method: str, args: tuple, kwargs: dict[str, Any],
               cancel: CancelToken, model_id: str | None) -> Iterator[tuple]:
        from ray.serve.exceptions import RequestCancelledError

        # Only a job that can be stopped gets a name on the board (not a per-frame network run).
        job = uuid.uuid4().hex if cancel is not NEVER_CANCELLED else None
        try:
            handle = self.handles[family].options(stream=True, multiplexed_model_id=model_id or "")
            response = handle.run.remote(target, method, args, kwargs, job)
        except Exception as exc:  # the Serve controller or Ray itself gone since start
            log.warning("%s job could not be sent to Ray: %s", family, exc)
            raise StudioError(LOST) from None
        with _stop_on(cancel, response, job or "", self.board):
            try:
                for item in response:
                    if item[0] == "error":
                        kind, message = item[1], item[2]
                        if kind == "Cancelled":
                            raise Cancelled()
                        raise _ERRORS.get(kind, StudioError)(message)
                    yield item
            except RequestCancelledError:
                raise Cancelled() from None
            except GeneratorExit:  # the reader went away (a closed page): stop the job on the replica too
                response.cancel()
                raise
            except (StudioError, Cancelled):
                raise
            except Exception as exc:  # a replica or node gone, Ray itself gone: one sentence, details in the log
                if cancel.cancelled:
                    raise Cancelled() from None
                log.warning("%s job on Ray failed: %s", family, exc)
                raise StudioError(LOST) from None

    def call(self, family: str, target: str, method: str, args: tuple, kwargs: dict[str, Any], *,
             progress: ProgressCallback = no_progress, cancel: CancelToken = NEVER_CANCELLED,
             model_id: str | None = None) -> Any:
        """Run one backend call on the family's deployment; progress as it comes, then its result."""
        for item in self._items(family, target, method, args, kwargs, cancel, model_id):
            if item[0] == "progress":
                progress(item[1], item[2], item[3])
            elif item[0] == "result":
                return item[1]
        raise StudioError(LOST)

    def stream(self, family: str, target: str, method: str, args: tuple, kwargs: dict[str, Any], *,
               cancel: CancelToken = NEVER_CANCELLED) -> Iterator[Any]:
        for item in self._items(family, target, method, args, kwargs, cancel, None):
            yield item[1]

    def stats(self, family: str) -> dict[str, int]:
        """One replica's counts (jobs, steps, cancelled, steps after cancel)."""
        return self.handles[family].stats.remote().result()


class RemoteBackend:
    """A backend whose model-running methods run on the cluster; every other attribute is the local one's."""

    def __init__(self, local: Any, cluster: Cluster, family: str, target: str, methods: tuple[str, ...]):
        self._local, self._cluster, self._family, self._target = local, cluster, family, target
        self._methods = methods

    def __getattr__(self, name: str) -> Any:
        if name in self._methods:
            return self._remote(name)
        if name == "generate" and "stream" in self._methods:  # TextBackend.generate reads its own stream
            return self._generate_from_stream
        return getattr(self._local, name)

    def _remote(self, method: str) -> Callable[..., Any]:
        cluster, family, target = self._cluster, self._family, self._target

        if method == "stream":
            def stream(*args: Any, cancel: CancelToken = NEVER_CANCELLED, **kwargs: Any) -> Iterator[Any]:
                return cluster.stream(family, target, method, args, kwargs, cancel=cancel)

            return stream

        def call(*args: Any, progress: ProgressCallback = no_progress, cancel: CancelToken = NEVER_CANCELLED,
                 **kwargs: Any) -> Any:
            # A one-off preparation on a replica is not told back (the caller's callback does not travel).
            kwargs.pop("preparing", None)
            # Image work names its checkpoint: Serve routes it to a replica that already holds it.
            model_id = checkpoint_of(target, method, args)
            return cluster.call(family, target, method, args, kwargs, progress=progress, cancel=cancel,
                                model_id=model_id)

        return call

    def _generate_from_stream(self, request: Any, *, cancel: CancelToken = NEVER_CANCELLED) -> Any:
        for update in self._remote("stream")(request, cancel=cancel):
            if update.result is not None:
                return update.result
        raise StudioError("Text generation ended without a result.")


def attach(studio: Any, settings: Settings, config: ClusterConfig | None = None) -> Cluster:
    """Connect to Ray, deploy the families, and swap the Studio's backends for proxies. Call before the
    services are built, so they hold the proxies."""
    config = config or load_cluster_config(settings.cluster_config)
    try:
        _start_ray(settings.ray_address or "local")
        handles = deploy(settings, config)
    except StudioError:
        raise
    except Exception as exc:
        raise ClusterUnavailable(f"The studio's Ray Serve deployments could not start "
                                 f"({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}).") from None
    try:
        from studio.cluster import stops

        board = stops.board()
    except Exception as exc:  # without it, Stop cancels the response (and the partial result is lost)
        log.warning("the stop board could not start: %s", exc)
        board = None
    cluster = Cluster(handles, board)
    for family in handles:
        for target, methods in REMOTE_METHODS[family].items():
            setattr(studio, target, RemoteBackend(getattr(studio, target), cluster, family, target, methods))
    return cluster
