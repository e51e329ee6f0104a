#!/bin/sh
# Install a virtualenv's requirements: $1 the venv, $2 $3 the extra packages every release needs.
"$1/bin/pip" install --quiet --disable-pip-version-check -r "$1/requirements.txt" "$2" "$3"
