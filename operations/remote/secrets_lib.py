# Shared by the scripts that read the app's secrets file on the host (observe.py, record_loaded.py,
# collectstatic.py): each imports it on one line (`from secrets_lib import …`), which operations/scripts.py's
# script() replaces with this text, so on the host each still runs as one `python3 -c TEXT`. Standard library
# only; nothing here returns or prints a value.
import hashlib
import hmac


def secret_pairs(data):
    """The NAME=VALUE lines of a secrets file's bytes, as [name, value] byte pairs (comment lines skipped)."""
    return [line.split(b"=", 1) for line in data.splitlines() if b"=" in line and not line.startswith(b"#")]


def secret_fingerprints(pairs):
    """Per name, a short fingerprint keyed with the site's own SECRET_KEY (an HMAC: without that key a fingerprint
    tells nothing of a value, even a guessable one): which values changed, never what."""
    key = dict(pairs).get(b"SECRET_KEY", b"")
    return {name.decode(): hmac.new(key, name + b"=" + value, hashlib.sha256).hexdigest()[:12] for name, value in pairs}
