#!/bin/sh
# Remove a release (its units, its by-id link, its folder), a leftover build or an unused venv.
# $1 the app root, $2 the path, $3 $4 a release's socket and service units ("" when the plan saw systemd hold
# neither: nothing to stop), $5 its by-id link (all three "" for a leftover build or a venv).
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
root=$1 path=$2 socket_unit=$3 service_unit=$4 by_id=$5
refuse() { echo "pinned: refusing to remove $path" >&2; exit 1; }
# Only <root>/versions/<N>/<name> or <root>/venvs/<name>, each part one plain name (not empty, . or ..).
case "$path" in "$root"/versions/*/*|"$root"/venvs/*) ;; *) refuse;; esac
below=${path#"$root"/}
case "/$below/" in *//*|*/./*|*/../*) refuse;; esac
case "$below" in versions/*/*/*|venvs/*/*) refuse;; esac
# Its units are disabled and stopped only when they are enabled or not inactive (running, failed...): `systemctl
# disable` has systemd reload every unit (~0.6 s on the sandbox host) even when there is nothing to disable, as for
# a stopped release kept on disk — once per pruned release (bench: deploy_kept_*).
if [ -n "$socket_unit" ]; then
    states=$(systemctl is-active "$socket_unit" "$service_unit" 2>/dev/null | sort -u | tr '\n' ' ')
    if systemctl is-enabled --quiet "$socket_unit" "$service_unit" 2>/dev/null || [ "$states" != "inactive " ]; then
        stop_units "$socket_unit" "$service_unit" 2>/dev/null || true
    fi
fi
if [ -n "$by_id" ]; then rm -f "$by_id"; fi
rm -rf -- "$path"
