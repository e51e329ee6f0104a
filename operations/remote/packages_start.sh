#!/bin/sh
# Start installing Debian packages in the background and return at once: the run goes on with what does not need
# them (users, folders, secrets, the virtualenv's build), and packages_wait.sh waits for them where they are first
# needed (the database's account). dpkg is never stopped half-way: the deploy lock's undo hook (packages_hold.sh,
# run when the run ends before waiting) holds the lock until the install ended, so no next run starts beside it.
#   $1 the job's folder (its pid, apt's output, its exit status), $2 the deploy lock's undo hook for it, $3 that
#   hook's text, $4… the packages.
# apt-get waits for dpkg's lock (an unattended upgrade on a fresh server) rather than failing at once.
job=$1 undo=$2 hook=$3
shift 3
rm -rf "$job" && install -d -m 0700 "$job" || exit 1
install -d -m 0700 "$(dirname "$undo")" && printf '%s\n' "$hook" > "$undo" || exit 1
# shellcheck disable=SC2016  # expanded by the background shell
setsid sh -c 'job=$1; shift
echo $$ > "$job/pid.tmp" && mv -f "$job/pid.tmp" "$job/pid" || exit 1
DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" > "$job/log" 2>&1
echo $? > "$job/status.tmp" && mv -f "$job/status.tmp" "$job/status"' pinned "$job" "$@" </dev/null >/dev/null 2>&1 &
i=0
while [ ! -s "$job/pid" ]; do  # the background shell's first act: its pid
    i=$((i+1))
    if [ "$i" -gt 200 ]; then echo "pinned: the install of $* did not start" >&2; exit 1; fi
    sleep 0.05
done
