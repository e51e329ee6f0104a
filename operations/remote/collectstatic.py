# Django's collectstatic for the release in the current folder, run as its manage.py runs it (with the release's
# virtualenv's python, as the app user, DJANGO_SETTINGS_MODULE=pinned_settings), then a record of what its output
# was made from, written as one JSON line to file descriptor 3 (the root shell opens .pinned/static_sources.json;
# the app user cannot write in .pinned/). pinned's plan reads it back (state/static.py) to tell whether a later
# release built as hard links of this one may take its assets/ as they are.
#
#   python -c "$COLLECTSTATIC" KEY SECRETS_FILE 3>.pinned/static_sources.json
#
# The record, paths relative to the release:
#   format     1
#   key        KEY: the plan's digest of what else the output depends on (virtualenv, settings, env)
#   secrets    each secret's fingerprint as the observe fact makes it (an HMAC keyed with SECRET_KEY: which values
#              changed, never what), from SECRETS_FILE as the settings read it; null if it could not be read
#   locations  every folder a staticfiles finder reads (FileSystemFinder's STATICFILES_DIRS, each app's static/
#              folder whether it exists yet or not, a storage finder's location) that lies in the release
#   files      every file of the release Python imported or anything opened (or tried to open) while it ran
#   outside    "" or the first location (or file reached through a link of the release) outside both the
#              release and its virtualenv: its content can change with no release changing, so the assets are
#              never taken from this release
import json
import os
import runpy
import sys

from secrets_lib import secret_fingerprints, secret_pairs

OPENED = set()


def _audit(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes)):
        OPENED.add(os.fsdecode(args[0]))


def _inside(path, folder):
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def classify(path, top, venv):
    """("venv", None), ("release", the paths relative to the release it is known by) or ("outside", path)."""
    plain = os.path.abspath(os.path.join(top, path))
    real = os.path.realpath(plain)
    if _inside(plain, os.path.join(top, ".venv")) or _inside(real, venv):
        return "venv", None
    if _inside(real, os.path.realpath(top)):
        names = {os.path.relpath(real, os.path.realpath(top))}
        if _inside(plain, top):
            names.add(os.path.relpath(plain, top))
        return "release", names
    if _inside(plain, top):  # a link of the release (a `shared:` folder, a committed link) to elsewhere
        return "outside", os.path.relpath(plain, top)
    return "outside", None  # the host's own files (the stdlib, /etc, the env and secrets files): not the release's


def secrets_read(path):
    """{name: fingerprint} of the secrets file, as the observe script makes them (secrets_lib); None if unreadable."""
    try:
        with open(path, "rb") as handle:
            return secret_fingerprints(secret_pairs(handle.read()))
    except OSError:
        return None


def finder_locations(finders, app_configs):
    """Every folder the finders read, and the first finder whose folders are unknown (or "")."""
    from django.contrib.staticfiles.finders import AppDirectoriesFinder

    found, unknown = [], ""
    for finder in finders:
        known = False
        if isinstance(finder, AppDirectoriesFinder):  # also the apps whose static/ does not exist (yet)
            found += [os.path.join(app.path, finder.source_dir) for app in app_configs]
            known = True
        storages = getattr(finder, "storages", None)
        if isinstance(storages, dict):
            found += [s.location for s in storages.values() if hasattr(s, "location")]
            known = known or all(hasattr(s, "location") for s in storages.values())
        storage = getattr(finder, "storage", None)
        if storage is not None and hasattr(storage, "location"):
            found.append(storage.location)
            known = True
        if not known and not unknown:
            unknown = f"the finder {type(finder).__module__}.{type(finder).__qualname__}"
    return found, unknown


def record(key, top, locations, files, unknown="", secrets=None):
    venv = os.path.realpath(os.path.join(top, ".venv"))
    out = {"format": 1, "key": key, "locations": set(), "files": set(), "outside": unknown, "secrets": secrets}
    for path in locations:
        where, names = classify(path, top, venv)
        if where == "release":
            out["locations"] |= names
        elif where == "outside" and not out["outside"]:
            out["outside"] = str(path)
    for path in files:
        where, names = classify(path, top, venv)
        if where == "release":
            out["files"] |= {n for n in names if "__pycache__" not in n.split(os.sep)
                             and not _inside(n, "assets")}
        elif where == "outside" and names and not out["outside"]:
            out["outside"] = names
    out["locations"] = sorted(out["locations"])
    # the static files themselves are the locations' (a project's may be thousands): not listed one by one
    out["files"] = sorted(f for f in out["files"] - {"."} if not any(_inside(f, loc) for loc in out["locations"]))
    return out


def main(key, secrets_file):
    secrets = secrets_read(secrets_file) if secrets_file else None
    sys.addaudithook(_audit)
    top = os.getcwd()
    sys.argv = ["manage.py", "collectstatic", "--noinput", "--verbosity", "0"]
    try:
        runpy.run_path("manage.py", run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise
    from django.apps import apps
    from django.contrib.staticfiles.finders import get_finders

    locations, unknown = finder_locations(list(get_finders()), apps.get_app_configs())
    modules = [m.__file__ for m in list(sys.modules.values()) if isinstance(getattr(m, "__file__", None), str)]
    text = json.dumps(record(key, top, locations, [*modules, *OPENED], unknown, secrets), sort_keys=True)
    with os.fdopen(3, "w") as out:
        out.write(text + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
