"""Releases: shared virtualenvs, building a release, starting it, switching to it, stopping old ones."""

from __future__ import annotations

from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation

from .files import RELEASE_FILES, RELEASE_META, sh
from .scripts import chain, run_py, run_sh, script


def venv_start_command(path: str, requirements: str, extra: tuple[str, ...], undo: str) -> StringCommand:
    """Start building a virtualenv in the background (remote/venv_start.sh), with the deploy lock's undo hook
    that stops the build if the run ends before waiting for it."""
    hook = run_sh("venv_stop.sh", path).get_raw_value()
    return run_sh("venv_start.sh", path, requirements, undo, hook, script("venv_build.sh"), *extra)


@operation()
def venv_start(path: str, requirements: str, extra: tuple[str, ...], undo: str):
    """Start building a virtualenv (python3 -m venv + pip install) in the background, early in the run, so
    what does not need it (users, folders, secrets, the database's account) runs meanwhile. The `venv` step
    waits for it; nothing here marks it ready."""
    yield venv_start_command(path, requirements, extra, undo)


@operation()
def venv(path: str, requirements: str, extra: tuple[str, ...], undo: str, started: bool = False):
    """A virtualenv for one requirements hash (shared by every release with those requirements): built in place
    (venv scripts name their own path) by a background build (`venv_start`, started earlier in the run, or
    here), waited for, and usable only once `.pinned-ready` exists — written only when the build succeeded;
    otherwise the step fails with pip's output."""
    if not started:
        yield venv_start_command(path, requirements, extra, undo)
    yield run_sh("venv_wait.sh", path, undo)


# A new release starts as hard links of the base release's code (never of what differs per release:
# the settings module, the venv link, the metadata; assets/ only when the plan found them unchanged); then the
# links of deleted and changed files are removed and the changed files extracted anew: the base release's files
# are never written to.
HARDLINK_SCRIPT = script("build_hardlink.sh")
# Django's collectstatic, run as manage.py runs it, recording what its output was made from (state/static.py).
COLLECTSTATIC = script("collectstatic.py")


@operation()
def build(app: str, release_id: str, building: str, final: str, tarball: str, archive: str, venv: str,
          settings: str, runtime: str, metadata: str, by_id: str, by_id_target: str, base_dir: str = "",
          replaced: tuple[str, ...] = (), links: tuple[tuple[str, str], ...] = (), static_key: str = "",
          static_linked: bool = False, secrets: str = "", undo: str = ""):
    """Upload a release and build it in `building` (versions/<N>/.<id>.building); only a finished build is
    renamed to `final` (so no half-built release is ever used), linked from `by-id/` just before. With a base
    release on the host, only the changed files are sent (`archive` holds just those); when the plan found that
    nothing collectstatic reads changed since the base (`static_linked`), the base's assets/ are hard-linked too
    and collectstatic does not run. Three round trips: the build folder, the upload, and the rest as one command
    (each SSH command costs a round trip and a shell; the settings, runtime and metadata go as arguments)."""
    if not archive:
        raise ValueError(f"release {release_id}: no archive to upload (the engine makes it before running)")
    if base_dir:  # the build folder made anew, as hard links of the base
        yield sh(HARDLINK_SCRIPT, building, base_dir, "linked" if static_linked else "", *replaced)
    else:
        yield run_sh("build_prepare.sh", building)
    yield FileUploadCommand(archive, tarball)
    # With `undo`, the chain first leaves the lock an undo hook that stops it if the run ends while it runs
    # (run_guard.sh), and removes it once the release is in place.
    steps = [run_sh("run_guard.sh", undo, "stop")] if undo else []
    steps.append(run_sh("build_extract.sh", building, tarball, venv, settings, runtime))
    if links:  # `shared:` folders with a link, `scratch:` folders: links inside the project
        steps.append(run_sh("build_links.sh", building, *(part for pair in links for part in pair)))
    # collectstatic runs as the app user into the release's own assets/, which is then made root's.
    if not (base_dir and static_linked):
        steps.append(run_sh("build_collectstatic.sh", app, building, COLLECTSTATIC, static_key, secrets))
    # The metadata, its files' manifest (.pinned/files.json, what a later release is sent as a delta from) and
    # its digest; then the by-id link and the rename.
    steps.append(run_sh("build_stamp.sh", building, RELEASE_META, RELEASE_FILES, metadata))
    steps.append(run_sh("build_finish.sh", building, final, by_id, by_id_target))
    if undo:
        steps.append(StringCommand("rm", "-f", QuoteString(undo)))
    yield chain(*steps)


# A release that fails its health check is marked failed, its instance stopped; `current` is untouched.
HEALTH_SCRIPT = script("health.sh")

# nginx's upstream and `current` move together in one command, immune to a cut SSH connection (HUP).
SWITCH_SCRIPT = script("switch.sh")

# The old instance stops only once nginx has drained it: reloaded nginx keeps old workers until their
# requests finish ("nginx: worker process is shutting down"); wait for them (30 s at most).
STOP_SCRIPT = script("stop.sh")


@operation()
def start(socket_unit: str, service_unit: str, socket: str, health_url: str, health_host: str, release_dir: str,
          release_id: str, loaded: str = "", secrets: str = "", env: str = "", warm_timer: str = "",
          restart: bool = False):
    """Start a release's socket and service and check its health URL on its own socket: 2xx or fail. Then
    record what it was started with (fingerprints of its env and secrets). A warm release (kept running after
    a switch) is already started: its timer is cancelled and the health check answers at once. One command
    (one round trip): each part runs only if the one before succeeded."""
    yield chain(run_sh("start_units.sh", socket_unit, service_unit, warm_timer, "restart" if restart else ""),
                sh(HEALTH_SCRIPT, socket, health_host, health_url, socket_unit, service_unit, release_dir,
                   RELEASE_META, release_id),
                *([run_py("record_loaded.py", loaded, secrets, env)] if loaded else []))


@operation()
def restart(service_unit: str, socket: str, health_url: str, health_host: str, release_id: str, loaded: str,
            secrets: str, env: str):
    """Restart the current release's service so it reads a changed env or secret (its socket stays: no request
    is refused), check its health URL, and record what it now runs with."""
    yield run_sh("restart.sh", service_unit, socket, health_host, health_url, release_id)
    yield run_py("record_loaded.py", loaded, secrets, env)


@operation()
def switch(current: str, target: str, served: str, upstream_path: str, upstream: str, history: str,
           from_release: str, release_id: str, by: str):
    """Point nginx's upstream and `current` at a release together, reload nginx, record the switch: one
    command (the upstream's text is an argument), so a host that stops answering times out."""
    yield sh(SWITCH_SCRIPT, upstream_path, current, target, history, from_release, release_id, by, served, upstream)


WATCH_SCRIPT = script("watch.sh")


@operation()
def watch(socket: str, health_host: str, health_url: str, access_log: str, seconds: int, max_error_rate: str,
          upstream_path: str, old_upstream: str, current: str, old_target: str, history: str, new_release: str,
          old_release: str, by: str, served: str):
    """A rollout's canary: watched after its switch; switched back (and the run failed) when it misbehaves."""
    yield sh(WATCH_SCRIPT, socket, health_host, health_url, access_log, seconds, max_error_rate, upstream_path,
             old_upstream, current, old_target, history, new_release, old_release, by, served)


@operation()
def stop(socket_unit: str, service_unit: str, release_id: str):
    """Stop and disable a release that is no longer current, once nginx no longer sends it requests."""
    yield sh(STOP_SCRIPT, socket_unit, service_unit)


@operation()
def warm(socket_unit: str, service_unit: str, release_id: str, timer: str):
    """Keep the release that served until the switch running for keep_warm, then let its timer stop it."""
    yield run_sh("warm.sh", socket_unit, service_unit, timer)


PRUNE_SCRIPT = script("prune.sh")


@operation()
def prune(root: str, path: str, release_id: str = "", socket_unit: str = "", service_unit: str = "",
          by_id: str = ""):
    """Remove a release (its units, its by-id link, its folder), a leftover build or an unused venv."""
    yield sh(PRUNE_SCRIPT, root, path, socket_unit, service_unit, by_id)
