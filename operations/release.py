"""Releases: shared virtualenvs, building a release, starting it, switching to it, stopping old ones."""

from __future__ import annotations

from io import StringIO

from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation

from .files import NGINX_CHECK, atomic_link_command, sh


@operation()
def venv(path: str, requirements: str, extra: list[str]):
    """Build a virtualenv for one requirements hash (shared by every release with those requirements).
    It is built in place (venv scripts name their own path) and usable only once `.pinned-ready` exists."""
    yield StringCommand("rm", "-rf", QuoteString(path))
    yield StringCommand("python3", "-m", "venv", QuoteString(path))
    yield FileUploadCommand(StringIO(requirements), f"{path}/requirements.txt")
    yield sh('"$1/bin/pip" install --quiet --disable-pip-version-check -r "$1/requirements.txt" "$2" "$3"',
             path, *extra)
    yield StringCommand("touch", QuoteString(f"{path}/.pinned-ready"))


@operation()
def build(app: str, root: str, schema: int, release_id: str, archive: str, venv: str, settings: str,
          metadata: str):
    """Upload a release and build it in `versions/<N>/.<id>.building`; only a finished build is renamed
    to `versions/<N>/<id>` (so no half-built release is ever used), then linked from `by-id/`."""
    schema_dir = f"{root}/versions/{schema}"
    building = f"{schema_dir}/.{release_id}.building"
    final = f"{schema_dir}/{release_id}"
    tarball = f"{schema_dir}/.{release_id}.tar.gz"
    yield sh('rm -rf "$1" && mkdir -p "$1/.pinned"', building)
    yield FileUploadCommand(archive, tarball)
    yield sh('tar -xzf "$2" -C "$1" --no-same-owner --no-same-permissions && rm -f "$2" && '
             'chown -R root:root "$1" && chmod -R u+rwX,go+rX,go-w "$1"', building, tarball)
    yield StringCommand("ln", "-sfn", QuoteString(venv), QuoteString(f"{building}/.venv"))
    yield FileUploadCommand(StringIO(settings), f"{building}/pinned_settings.py")
    # collectstatic runs as the app user into the release's own assets/, which is then made root's.
    yield sh('cd "$2" && install -d -o "$1" -g "$1" assets && runuser -u "$1" -- env '
             'DJANGO_SETTINGS_MODULE=pinned_settings PYTHONDONTWRITEBYTECODE=1 .venv/bin/python manage.py '
             'collectstatic --noinput --verbosity 0 && chown -R root:root assets', app, building)
    yield FileUploadCommand(StringIO(metadata), f"{building}/.pinned/release.json.tmp")
    yield sh('python3 -c "import json,sys,time; p=sys.argv[1]; m=json.load(open(p+\'.tmp\')); '
             'm[\'built_at\']=time.strftime(\'%Y-%m-%dT%H:%M:%SZ\', time.gmtime()); '
             'json.dump(m, open(p, \'w\'), sort_keys=True)" "$1/.pinned/release.json" && '
             'rm -f "$1/.pinned/release.json.tmp"', building)
    yield sh('rm -rf "$2" && mv -T "$1" "$2"', building, final)
    yield atomic_link_command(f"{root}/by-id/{release_id}", f"../versions/{schema}/{release_id}")


@operation()
def start(app: str, release_id: str, socket: str, health_url: str, health_host: str):
    """Start a release's socket and service and check its health URL on its own socket: 2xx or fail."""
    yield sh('systemctl enable --quiet --now "$1@$2.socket" && systemctl start "$1@$2.service"', app, release_id)
    yield sh('i=0; while [ $i -lt 40 ]; do '
             'code=$(curl -s -o /dev/null -w "%{http_code}" --max-time 10 --unix-socket "$1" -H "Host: $2" '
             '"http://localhost$3"); case "$code" in 2??) exit 0;; esac; i=$((i+1)); sleep 0.25; done; '
             'echo "health check failed: http://$2$3 on $1 answered ${code:-nothing}" >&2; '
             'journalctl -u "$4@$5.service" -n 30 --no-pager >&2; exit 1',
             socket, health_host, health_url, app, release_id)


@operation()
def switch(root: str, target: str, upstream_path: str, upstream: str, from_release: str, release_id: str,
           by: str):
    """Point nginx's upstream and `current` at a release together, reload nginx, record the switch."""
    yield StringCommand("mkdir", "-p", QuoteString(upstream_path.rsplit("/", 1)[0]))
    yield FileUploadCommand(StringIO(upstream), f"{upstream_path}.pinned-tmp")
    yield sh('if [ -e "$1" ]; then cp -p "$1" "$1.pinned-old"; fi; mv -f "$1.pinned-tmp" "$1"; ' + NGINX_CHECK,
             upstream_path)
    yield atomic_link_command(f"{root}/current", target)
    yield sh('printf "%s switch from=%s to=%s by=%s\\n" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$2" "$3" "$4" >> "$1"',
             f"{root}/history.log", from_release or "none", release_id, by)


@operation()
def stop(app: str, release_id: str):
    """Stop and disable a release that is no longer current (nginx no longer sends it requests)."""
    yield sh('systemctl disable --quiet --now "$1@$2.socket" "$1@$2.service"', app, release_id)
