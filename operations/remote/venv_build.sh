#!/bin/sh
# Build a virtualenv ($1: its folder, holding requirements.txt) in the background (started by venv_start.sh):
# python3 -m venv, then pip install of the requirements and the extra packages ($2…). pip's output goes to
# .pinned-build.log; the exit status, last, to .pinned-build.status (written whole, by a rename), which is
# what venv_wait.sh waits for. Its pid (its process group's: it leads its own session) comes first.
# With the pip wheel that python3-venv brings (/usr/share/python-wheels), the virtualenv is made without pip
# of its own and pip runs from that wheel: ensurepip (unpacking and byte-compiling pip into every new
# virtualenv) took as long as installing the app's requirements. Without the wheel: python3 -m venv with pip.
venv=$1
shift
echo $$ > "$venv/.pinned-build.pid.tmp" && mv -f "$venv/.pinned-build.pid.tmp" "$venv/.pinned-build.pid" || exit 1
wheel=
for w in /usr/share/python-wheels/pip-*.whl; do [ -f "$w" ] && wheel=$w; done
if [ -n "$wheel" ]; then
    { python3 -m venv --without-pip "$venv" &&
        "$venv/bin/python" "$wheel/pip" install --quiet --disable-pip-version-check -r "$venv/requirements.txt" "$@"
    } > "$venv/.pinned-build.log" 2>&1
else
    { python3 -m venv "$venv" &&
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$venv/requirements.txt" "$@"
    } > "$venv/.pinned-build.log" 2>&1
fi
echo $? > "$venv/.pinned-build.status.tmp" && mv -f "$venv/.pinned-build.status.tmp" "$venv/.pinned-build.status"
