#!/bin/sh
# Put an nginx config file in place ($1; its new text uploaded beside it as .pinned-tmp): test the new
# config, put the old one back if it fails, reload only a running nginx.
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nginx_install "$1"
nginx_reload
