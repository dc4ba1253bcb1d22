"""The same app as a Ray Serve deployment: one replica per GPU, each with its own loaded models.

Replicas share the output folder: each holds a slot of it (`api._take_slot`) and runs the jobs it accepted; any
replica answers `GET /v1/runs/{id}` and `DELETE` from the shared store, and a restarted replica resumes the jobs of
the slot it takes. Start it with `ideaforge serve --ray`, or `serve run ideaforge.app.serve.ray_app:build
model=DIR out=DIR` (arguments are settings and `ServeConfig` fields).

Example:
    >>> import ray; from ray import serve  # doctest: +SKIP
    >>> serve.run(deployment(ServeConfig(), {"model": "path/to/sd"}, []), route_prefix="/")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ideaforge.app.serve.config import ServeConfig


def deployment(config: ServeConfig, settings: dict[str, Any], loras: list[str], *, replicas: int = 1,
               gpus_per_replica: float = 0.0, cpus_per_replica: float = 1.0) -> Any:
    """A bound Ray Serve application of `create_app(config, settings, loras)`."""
    from ray import serve

    from ideaforge.app.serve.api import create_app

    app = create_app(config, settings, loras)

    @serve.deployment(name="ideaforge", num_replicas=replicas,
                      ray_actor_options={"num_gpus": gpus_per_replica, "num_cpus": cpus_per_replica})
    @serve.ingress(app)
    class IdeaForgeServer:
        """The FastAPI app; its lifespan builds the forge and loads the models in each replica."""

    return IdeaForgeServer.bind()  # type: ignore[attr-defined]


def build(args: dict[str, str]) -> Any:
    """`serve run ideaforge.app.serve.ray_app:build model=DIR out=DIR [replicas=N] [max_queue=...]`."""
    fields = {f.name: f.type for f in dataclasses.fields(ServeConfig)}
    given = dict(args)
    replicas = int(given.pop("replicas", "1"))
    gpus = float(given.pop("gpus_per_replica", "0"))
    serve_args: dict[str, Any] = {}
    for name in list(given):
        if name in fields and name not in ("host", "port", "key"):
            value = given.pop(name)
            serve_args[name] = value.split(",") if name == "cors" else value if name == "model_name" else int(value)
    config = ServeConfig.from_env(**serve_args)
    config.check()
    return deployment(config, given, [], replicas=replicas, gpus_per_replica=gpus)


def serve_on_ray(config: ServeConfig, settings: dict[str, Any], loras: list[str], *, replicas: int = 1,
                 gpus_per_replica: float | None = None) -> None:
    """`ideaforge serve --ray`: start (or join) Ray, then serve on `config.host:config.port` until interrupted."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        ray.init(address="auto" if _cluster_running() else None, log_to_driver=False)
    if gpus_per_replica is None:
        gpus_per_replica = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    serve.start(http_options={"host": config.host, "port": config.port})
    app = deployment(config, settings, loras, replicas=replicas, gpus_per_replica=gpus_per_replica)
    serve.run(app, name="ideaforge", route_prefix="/", blocking=True)


def _cluster_running() -> bool:
    import os

    return bool(os.environ.get("RAY_ADDRESS"))
