# Listing an engine: the engine calls that give discovery its summaries,
# containers and (on a Swarm manager) services, composed once for the
# watcher, `fastroute routes` and `fastroute haproxy --once`. Every function
# blocks: the watcher runs them in worker threads.
#
# Rules:
# - --swarm auto follows Swarm when the engine is a manager (GET /info
#   says so); --swarm on does too, and says once why it cannot when the
#   engine is not one; --swarm off never asks;
# - with Swarm followed, the containers that are tasks are left to their
#   services (_swarm.without_tasks), and --docker-label filters services by
#   the labels of their spec, as it filters containers by theirs.

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .._json import Json, JsonObject
from ._client import DockerApi
from ._container import has_labels
from ._errors import EngineError
from ._swarm import SwarmSet, without_tasks

__all__ = ["SWARM_SETTINGS", "follows_swarm", "list_service", "list_swarm", "refused", "snapshot"]

SWARM_SETTINGS = ("auto", "on", "off")
NOT_A_MANAGER = ("--swarm on: the engine is not a Swarm manager, and only managers answer the Swarm API "
                 "(point --docker at a manager); following its containers only")


def refused(error: EngineError) -> str:
    """The warning when a manager refuses the Swarm calls (a socket filter in between)."""
    return f"Swarm services not followed: {error}"


def follows_swarm(engine: DockerApi, setting: str) -> tuple[bool, str | None]:
    """Whether to follow Swarm services on `engine`, and a warning to log if --swarm on cannot be."""
    if setting == "off":
        return False, None
    if engine.swarm_manager():
        return True, None
    return False, NOT_A_MANAGER if setting == "on" else None


def _labelled(service: Mapping[str, Json], labels: Sequence[str]) -> bool:
    return has_labels((service.get("Spec") or {}).get("Labels") or {}, labels)


def list_swarm(engine: DockerApi, labels: Sequence[str]) -> tuple[dict[str, str], list[JsonObject],
                                                                list[JsonObject]]:
    """(network ID -> name, the services with `labels`, their tasks meant to run)."""
    services = [s for s in engine.services() if _labelled(s, labels)]
    return engine.network_names(), services, engine.tasks()


def list_service(engine: DockerApi, labels: Sequence[str], sid: str) -> tuple[JsonObject | None,
                                                                         list[JsonObject]]:
    """One service and its tasks meant to run; (None, []) if it is gone or lacks `labels`."""
    service = engine.service(sid)
    if service is None or not _labelled(service, labels):
        return None, []
    return service, engine.tasks(sid)


def snapshot(engine: DockerApi, labels: Sequence[str], setting: str) -> tuple[list[Mapping[str, Json]], list[str]]:
    """Every summary discovery routes now (containers, and services when Swarm is followed), and warnings."""
    summaries: list[Mapping[str, Json]] = list(engine.containers(labels))
    swarm, warning = follows_swarm(engine, setting)
    warnings = [warning] if warning else []
    if swarm:
        try:
            names, services, tasks = list_swarm(engine, labels)
        except EngineError as error:
            if setting == "on":
                raise
            return summaries, warnings + [refused(error)]  # a socket filter without --swarm, say
        found = SwarmSet(network_names=names)
        summaries = without_tasks(summaries) + list[Mapping[str, Json]](found.replace_all(services, tasks))
        warnings += [f"service {name} skipped: {why}" for name, why in sorted(found.skipped.items())]
    return summaries, warnings
