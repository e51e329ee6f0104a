"""Releases: shared virtualenvs, building a release, starting it, switching to it, stopping old ones."""

from __future__ import annotations

from io import StringIO

from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation

from .files import RELEASE_META, atomic_link_command, sh


@operation()
def venv(path: str, requirements: str, extra: tuple[str, ...]):
    """Build a virtualenv for one requirements hash (shared by every release with those requirements).
    It is built in place (venv scripts name their own path) and usable only once `.pinned-ready` exists."""
    yield StringCommand("rm", "-rf", QuoteString(path))
    yield StringCommand("python3", "-m", "venv", QuoteString(path))
    yield FileUploadCommand(StringIO(requirements), f"{path}/requirements.txt")
    yield sh('"$1/bin/pip" install --quiet --disable-pip-version-check -r "$1/requirements.txt" "$2" "$3"',
             path, *extra)
    yield StringCommand("touch", QuoteString(f"{path}/.pinned-ready"))


# A new release starts as hard links of the base release's code (never of what differs per release:
# assets/, the settings module, the venv link, the metadata); then the links of deleted and changed files
# are removed and the changed files extracted anew: the base release's files are never written to.
HARDLINK_SCRIPT = r'''
building=$1 base=$2
shift 2
cp -al "$base/." "$building/"
rm -rf "$building/assets" "$building/.pinned" "$building/pinned_settings.py" "$building/.venv"
mkdir -p "$building/.pinned"
for path in "$@"; do rm -f -- "$building/$path"; done
'''


@operation()
def build(app: str, release_id: str, building: str, final: str, tarball: str, archive: str, venv: str,
          settings: str, metadata: str, by_id: str, by_id_target: str, base_dir: str = "",
          replaced: tuple[str, ...] = ()):
    """Upload a release and build it in `building` (versions/<N>/.<id>.building); only a finished build is
    renamed to `final` (so no half-built release is ever used), then linked from `by-id/`. With a base
    release on the host, only the changed files are sent (`archive` holds just those)."""
    if not archive:
        raise ValueError(f"release {release_id}: no archive to upload (the engine makes it before running)")
    yield sh('rm -rf "$1" && mkdir -p "$1/.pinned"', building)
    if base_dir:
        yield sh(HARDLINK_SCRIPT, building, base_dir, *replaced)
    yield FileUploadCommand(archive, tarball)
    yield sh('tar -xzf "$2" -C "$1" --no-same-owner --no-same-permissions && rm -f "$2" && '
             'chown -R root:root "$1" && chmod -R u+rwX,go+rX,go-w "$1"', building, tarball)
    yield StringCommand("ln", "-sfn", QuoteString(venv), QuoteString(f"{building}/.venv"))
    yield FileUploadCommand(StringIO(settings), f"{building}/pinned_settings.py")
    # collectstatic runs as the app user into the release's own assets/, which is then made root's.
    yield sh('cd "$2" && install -d -o "$1" -g "$1" assets && runuser -u "$1" -- env '
             'DJANGO_SETTINGS_MODULE=pinned_settings PYTHONDONTWRITEBYTECODE=1 .venv/bin/python manage.py '
             'collectstatic --noinput --verbosity 0 && chown -R root:root assets', app, building)
    yield FileUploadCommand(StringIO(metadata), f"{building}/.pinned/release.json")
    yield sh('python3 -c "$2" "$1" "built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"', building, RELEASE_META)
    yield sh('rm -rf "$2" && mv -T "$1" "$2"', building, final)
    yield atomic_link_command(by_id, by_id_target)


# A release that fails its health check is marked failed, its instance stopped; `current` is untouched.
HEALTH_SCRIPT = r'''
sock=$1 host=$2 url=$3 socket_unit=$4 service_unit=$5 release_dir=$6 rid=$8
i=0
while [ $i -lt 60 ]; do
    code=$(curl -s -o /dev/null -w "%{http_code}" --max-time 10 --unix-socket "$sock" -H "Host: $host" \
           "http://localhost$url")
    case "$code" in 2??) exit 0;; esac
    i=$((i+1)); sleep 0.25
done
systemctl disable --quiet --now "$socket_unit" "$service_unit" 2>/dev/null
python3 -c "$7" "$release_dir" status=failed "failure=health check answered ${code:-nothing}"
echo "pinned: health check failed: http://$host$url on release $rid answered ${code:-nothing}" \
     "(the release is marked failed; current is unchanged). Its log:" >&2
journalctl -u "$service_unit" -n 30 --no-pager -o cat >&2
exit 1
'''

# nginx's upstream and `current` move together in one command, immune to a cut SSH connection (HUP).
SWITCH_SCRIPT = r'''
trap "" HUP
up=$1 current=$2 target=$3 history=$4 from=$5 rid=$6 by=$7 served=$8
[ -e "$up" ] && cp -p "$up" "$up.pinned-old"
mv -f "$up.pinned-tmp" "$up"
if ! out=$(nginx -t 2>&1); then
    echo "$out" >&2
    if [ -e "$up.pinned-old" ]; then mv -f "$up.pinned-old" "$up"; else rm -f "$up"; fi
    exit 1
fi
rm -f "$up.pinned-old"
tmp="$(dirname "$current")/.current.pinned-tmp"
rm -f "$tmp" && ln -s "$target" "$tmp" && mv -T "$tmp" "$current"
[ "$(readlink "$current")" = "$target" ] || { echo "pinned: current did not switch" >&2; exit 1; }
[ -e "$served" ] || touch "$served"  # this schema version's database now takes the site's writes
if systemctl is-active --quiet nginx; then systemctl reload nginx; fi
printf "%s switch from=%s to=%s by=%s\n" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$from" "$rid" "$by" >> "$history"
'''

# The old instance stops only once nginx has drained it: reloaded nginx keeps old workers until their
# requests finish ("nginx: worker process is shutting down"); wait for them (30 s at most).
STOP_SCRIPT = r'''
i=0
while [ $i -lt 300 ] && pgrep -f "nginx: worker process is shutting dow[n]" >/dev/null; do
    i=$((i+1)); sleep 0.1
done
systemctl disable --quiet --now "$1" "$2"
'''


@operation()
def start(socket_unit: str, service_unit: str, socket: str, health_url: str, health_host: str, release_dir: str,
          release_id: str):
    """Start a release's socket and service and check its health URL on its own socket: 2xx or fail."""
    yield sh('systemctl enable --quiet --now "$1" && systemctl start "$2"', socket_unit, service_unit)
    yield sh(HEALTH_SCRIPT, socket, health_host, health_url, socket_unit, service_unit, release_dir, RELEASE_META,
             release_id)


@operation()
def switch(current: str, target: str, served: str, upstream_path: str, upstream: str, history: str,
           from_release: str, release_id: str, by: str):
    """Point nginx's upstream and `current` at a release together, reload nginx, record the switch."""
    yield StringCommand("mkdir", "-p", QuoteString(upstream_path.rsplit("/", 1)[0]))
    yield FileUploadCommand(StringIO(upstream), f"{upstream_path}.pinned-tmp")
    yield sh(SWITCH_SCRIPT, upstream_path, current, target, history, from_release, release_id, by, served)


@operation()
def stop(socket_unit: str, service_unit: str, release_id: str):
    """Stop and disable a release that is no longer current, once nginx no longer sends it requests."""
    yield sh(STOP_SCRIPT, socket_unit, service_unit)


PRUNE_SCRIPT = r'''
root=$1 path=$2 socket_unit=$3 service_unit=$4 by_id=$5
case "$path" in "$root"/versions/*/*|"$root"/venvs/*) ;; *) echo "pinned: refusing to remove $path" >&2; exit 1;; esac
if [ -n "$socket_unit" ]; then
    systemctl disable --quiet --now "$socket_unit" "$service_unit" 2>/dev/null || true
fi
if [ -n "$by_id" ]; then rm -f "$by_id"; fi
rm -rf -- "$path"
'''


@operation()
def prune(root: str, path: str, release_id: str = "", socket_unit: str = "", service_unit: str = "",
          by_id: str = ""):
    """Remove a release (its units, its by-id link, its folder), a leftover build or an unused venv."""
    yield sh(PRUNE_SCRIPT, root, path, socket_unit, service_unit, by_id)
