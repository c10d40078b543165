# The Docker test fixture itself: the backend image serves on port 8000 of
# its private IP and says which container answered.

from __future__ import annotations

from typing import Any

import pytest

from .docker_support import NAME_PREFIX, RUN_LABEL, DockerLab, http_get


def test_backend_answers_on_its_private_ip(docker_lab: DockerLab) -> None:
    backend = docker_lab.start_backend()

    status, body = http_get(backend.address, "/steve/foo/")

    assert status == 200
    lines = body.decode().splitlines()
    assert lines[0] == f"host={backend.name}"
    assert "uri=/steve/foo/" in lines


def test_replicas_are_told_apart(docker_lab: DockerLab) -> None:
    first, second = docker_lab.start_backend(), docker_lab.start_backend()

    answers = {http_get(b.address)[1].splitlines()[0] for b in (first, second)}

    assert len(answers) == 2


def test_lab_removes_its_containers_even_when_the_test_fails(
    docker_client: Any, backend_image: str, docker_network: str
) -> None:
    from .docker_support import lab

    with pytest.raises(ZeroDivisionError):
        with lab(docker_client, backend_image, docker_network) as the_lab:
            backend = the_lab.start_backend()
            raise ZeroDivisionError("a failing test")
    remaining = docker_client.containers.list(all=True, filters={"id": backend.id})
    assert remaining == []


def test_names_and_labels_cannot_collide_with_a_users(docker_lab: DockerLab, docker_client: Any) -> None:
    backend = docker_lab.start_backend()

    container = docker_client.containers.get(backend.id)

    assert container.name.startswith(NAME_PREFIX)
    assert RUN_LABEL in container.labels
