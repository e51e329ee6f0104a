#!/bin/sh
# Extract the uploaded archive $2 into the build folder $1 (the archive is then removed): all of it root's,
# readable and not writable by others. Then what pinned adds beside the code: the link to the shared virtualenv
# $3 (.venv), the settings module ($4's text, pinned_settings.py) and the runtime module ($5's text,
# pinned_runtime.py), root's 0644 (neither holds a secret: the settings read them on the host).
tar -xzf "$2" -C "$1" --no-same-owner --no-same-permissions && rm -f "$2" &&
    chown -R root:root "$1" && chmod -R u+rwX,go+rX,go-w "$1" &&
    ln -sfn "$3" "$1/.venv" &&
    printf '%s' "$4" >"$1/pinned_settings.py" && printf '%s' "$5" >"$1/pinned_runtime.py" &&
    chmod 0644 "$1/pinned_settings.py" "$1/pinned_runtime.py"
