# dockerd itself restarted under a running gateway: routes come back for
# containers that come back, and the route of a container that did not is
# gone. This stops the machine's Docker engine, so it runs only where that is
# allowed: where the test run's own set-up started that engine (.ci/setup,
# whose dockerd writes to SETUP_LOG), or where FASTROUTE_TEST_RESTART_DOCKERD=1
# says so (CI, and then it must run); elsewhere it skips, saying why.

from __future__ import annotations

import gc
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import trio

from proxy.discovery._watcher import BACKOFF_MAX, DockerWatcher

from ...docker_support import DockerLab, docker_required
from ...leak_check import detached
from .test_docker_discovery import answered_by, eventually, start_discovery

pytestmark = pytest.mark.usefixtures("clients_closed")


@pytest.fixture
def dockerd_restartable() -> None:
    if not restart_allowed():
        reason = ("restarts the machine's dockerd, which make test did not start: "
                  "set FASTROUTE_TEST_RESTART_DOCKERD=1 to allow it")
        if docker_required():
            pytest.fail(f"FASTROUTE_REQUIRE_DOCKER=1 but {reason}")
        pytest.skip(reason)
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.fail("restarting dockerd needs root and dockerd on PATH")


SETUP_LOG = "/tmp/fastroute-dockerd.log"  # where a dockerd that .ci/setup started writes


def restart_allowed() -> bool:
    if os.environ.get("FASTROUTE_TEST_RESTART_DOCKERD", "") not in ("", "0"):
        return True
    try:
        return os.readlink(f"/proc/{dockerd_command()[0]}/fd/1") == SETUP_LOG  # started by .ci/setup
    except (OSError, RuntimeError):
        return False


def dockerd_command() -> tuple[int, list[str], dict[str, str]]:
    """The machine's dockerd: its pid, command line and environment."""
    found = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True).stdout.split()
    if len(found) != 1:
        raise RuntimeError(f"expected one dockerd process, found {found}")
    pid = int(found[0])
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0") if a]
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = dict(a.decode().partition("=")[::2] for a in f.read().split(b"\0") if a)
    return pid, argv, env


def restart_dockerd(log: Path) -> None:
    """Stop the machine's dockerd and start it again with the same command line and environment.

    It logs where it did if that was .ci/setup's log (it is still the engine
    that set-up started), else to `log`, in the run's temporary directory:
    pytest removes it after a few runs, and the dockerd that outlives the
    run writes on into nothing."""
    pid, argv, env = dockerd_command()
    try:
        if os.readlink(f"/proc/{pid}/fd/1") == SETUP_LOG:
            log = Path(SETUP_LOG)
    except OSError:
        pass
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.1)
    # Detached (setsid, via a shell that exits at once, and handed to init
    # rather than to the run's leak check): dockerd outlives the test.
    command = " ".join(shlex.quote(a) for a in argv)
    with detached():
        subprocess.run(["sh", "-c", f"setsid nohup {command} >>{shlex.quote(str(log))} 2>&1 &"], check=True,
                       env=env)  # as it ran: not in this run's temporary directory
    deadline = time.monotonic() + 60
    while subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"dockerd did not come back within 60 s (log: {log})")
        time.sleep(0.2)


# While dockerd is down, each reconnect attempt's docker.from_env() fails in
# docker-py's version probe, which leaves its socket to the garbage collector
# (closed there, with a ResourceWarning). Not fastroute's socket to close:
# the client object is never handed back.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_dockerd_restarted_under_a_running_gateway(
    nursery: trio.Nursery, docker_lab: DockerLab, dockerd_restartable: None, tmp_path: Path
) -> None:
    gateway, watcher = await start_discovery(nursery, docker_lab)
    back = await trio.to_thread.run_sync(lambda: docker_lab.start_backend(
        labels={"fastroute.route": "/comes-back"}, restart_policy={"Name": "always"}))
    gone = await trio.to_thread.run_sync(lambda: docker_lab.start_backend(labels={"fastroute.route": "/stays-down"}))
    await eventually(lambda: answered_by(gateway, "/comes-back/", back), "routed")
    await eventually(lambda: answered_by(gateway, "/stays-down/", gone), "routed")
    reconnects = watcher.reconnects

    await trio.to_thread.run_sync(restart_dockerd, tmp_path / "dockerd.log")

    # The watcher retried while dockerd was down, backing off up to 30 s.
    await eventually(lambda: answered_by(gateway, "/comes-back/", back), "routed again after the restart",
                     limit=BACKOFF_MAX + 30)
    await eventually(lambda: answered_by(gateway, "/stays-down/", None), "gone: it did not come back")
    assert watcher.reconnects > reconnects
    gc.collect()  # any socket docker-py left behind is finalised now, under this test's filter


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_frozen_dockerd_is_detected_and_recovered_from(
    nursery: trio.Nursery, docker_lab: DockerLab, dockerd_restartable: None
) -> None:
    from proxy.discovery._watcher import WATCHDOG_INTERVAL, WATCHDOG_TIMEOUT

    gateway, watcher = await start_discovery(nursery, docker_lab)
    before = await trio.to_thread.run_sync(lambda: docker_lab.start_backend(labels={"fastroute.route": "/frozen"}))
    await eventually(lambda: answered_by(gateway, "/frozen/", before), "routed")
    pid, _, _ = dockerd_command()

    os.kill(pid, signal.SIGSTOP)  # the events stream stays open, silent
    try:
        await eventually(lambda: _reconnecting(watcher), "the watchdog noticed",
                         limit=WATCHDOG_INTERVAL + WATCHDOG_TIMEOUT + 5)
        assert await answered_by(gateway, "/frozen/", before)  # the last table keeps serving
    finally:
        os.kill(pid, signal.SIGCONT)

    after = await trio.to_thread.run_sync(lambda: docker_lab.start_backend(labels={"fastroute.route": "/thawed"}))
    await eventually(lambda: answered_by(gateway, "/thawed/", after), "following again", limit=BACKOFF_MAX + 30)
    gc.collect()  # any socket docker-py left behind is finalised now, under this test's filter


async def _reconnecting(watcher: DockerWatcher) -> bool:
    return watcher.status == "reconnecting"
