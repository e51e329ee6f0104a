"""`pinned init`: a commented state file for an environment, from what the project already says.

Run in the folder that will hold the deploy configuration (the project's `deploy/`, say), inside the
project's git repository. Found, not asked: the Django project (`manage.py`), its settings module (what
manage.py sets DJANGO_SETTINGS_MODULE to, or the production module beside it), the requirements file, STATIC_URL, the
app name (the settings package's), the repository (this git repository, as a path from the state file)
and the release (its HEAD commit). What cannot be found — the servers — comes from the options or is left
for the user, with an example, in the file.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from pinned.state.model import State, StateFileError, parse_state

SKIP_DIRS = {".git", ".venv", "venv", "env", "node_modules", "site-packages", "__pycache__", ".tox", "build",
             "dist", ".cache", ".build"}
REQUIREMENTS = ("requirements.txt", "requirements/production.txt", "requirements/prod.txt",
                "requirements/base.txt", "requirements.lock")
SCHEMA_FILE = "pinned.schema.json"


class InitError(Exception):
    pass


@dataclass
class Guess:
    """What init found, and how (listed to the user)."""

    app: str
    settings: str
    project_dir: str
    repository: str
    release: str
    requirements: str = "requirements.txt"
    static_url: str = "/static/"
    health_url: str = "/"
    notes: list[str] = field(default_factory=list)


def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise InitError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"git {args[0]} failed")
    return proc.stdout.strip()


def find_manage_py(top: Path, depth: int = 4) -> list[Path]:
    """manage.py files under `top`, shallowest first (virtualenvs and build folders skipped)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        rel = Path(dirpath).relative_to(top)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        if len(rel.parts) >= depth:
            dirnames[:] = []
        if "manage.py" in filenames:
            found.append(Path(dirpath) / "manage.py")
    return sorted(found, key=lambda p: (len(p.relative_to(top).parts), str(p)))


def settings_module(manage_py: Path) -> str | None:
    m = re.search(r"""DJANGO_SETTINGS_MODULE["']\s*,\s*["']([A-Za-z_][A-Za-z0-9_.]*)["']""", manage_py.read_text())
    return m.group(1) if m else None


DEVELOPMENT = ("dev", "development", "local")
PRODUCTION = ("production", "prod")


def production_settings(project: Path, settings: str) -> tuple[str, str | None]:
    """manage.py often names the development settings of a settings package (`mysite.settings.dev`): a
    production module beside them is what a server runs. Returns (settings, the one replaced or None)."""
    package, _, last = settings.rpartition(".")
    if not package or last not in DEVELOPMENT:
        return settings, None
    for name in PRODUCTION:
        if (project / package.replace(".", "/") / f"{name}.py").is_file():
            return f"{package}.{name}", settings
    return settings, None


def app_name(settings: str) -> str:
    """The settings package's name as an app name (lowercase letters, digits, _; starts with a letter)."""
    name = re.sub(r"[^a-z0-9_]", "_", settings.split(".")[0].lower()).strip("_") or "site"
    if not name[0].isalpha():
        name = "app_" + name
    return name[:24]


def static_url(settings_file: Path) -> str | None:
    m = re.search(r"""^STATIC_URL\s*=\s*["']([^"']+)["']""", settings_file.read_text(), re.M)
    if not m:
        return None
    url = m.group(1)
    if url.startswith(("http://", "https://", "//")):
        return None
    return "/" + url.strip("/") + "/"


def root_urlconf(settings_file: Path) -> str | None:
    """ROOT_URLCONF as the settings module says it, or a module beside it (a settings package's base.py)."""
    for candidate in [settings_file, *sorted(settings_file.parent.glob("*.py"))]:
        m = re.search(r"""^ROOT_URLCONF\s*=\s*["']([A-Za-z_][A-Za-z0-9_.]*)["']""", candidate.read_text(), re.M)
        if m:
            return m.group(1)
    return None


def _routes(urls_file: Path) -> list[tuple[str, str, ast.expr]]:
    """The project's root URLconf's `path(...)`/`re_path(...)` calls with a string route: (function, route,
    view). Read as code (ast), so the examples in a stock urls.py's docstring are not routes."""
    try:
        tree = ast.parse(urls_file.read_text())
    except (SyntaxError, ValueError):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and len(node.args) >= 2 and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if name in ("path", "re_path"):
                found.append((name, node.args[0].value, node.args[1]))
    return found


def health_url(urls_file: Path) -> str | None:
    """A page of the project that answers 200 to a GET without a login: `/` when the root URLconf routes it,
    else the admin's login page (a stock startproject routes only `admin/`: `/` answers 404 once DEBUG is
    off). None when the URLconf says neither."""
    routes = _routes(urls_file)
    if any(route == "" if name == "path" else route in ("^$", "^") for name, route, _ in routes):
        return "/"
    for name, route, view in routes:
        if name == "path" and ast.unparse(view) == "admin.site.urls":
            return "/" + (route.strip("/") + "/" if route.strip("/") else "") + "login/"
    return None


def guess(folder: Path) -> Guess:
    """What the project in `folder`'s git repository says (InitError when there is no Django project)."""
    try:
        top = Path(_git(folder, "rev-parse", "--show-toplevel")).resolve()
    except (InitError, FileNotFoundError):
        raise InitError(f"{folder} is not inside a git repository: run `pinned init` in your project's "
                        "repository (e.g. in its deploy/ folder)") from None
    managers = find_manage_py(top)
    if not managers:
        raise InitError(f"no manage.py in {top}: is this a Django project?")
    manage = managers[0]
    notes = []
    if len(managers) > 1:
        others = ", ".join(str(m.relative_to(top)) for m in managers[1:4])
        notes.append(f"several manage.py: using {manage.relative_to(top)} (also: {others})")
    project = manage.parent
    settings = settings_module(manage)
    if not settings:
        raise InitError(f"{manage}: does not set DJANGO_SETTINGS_MODULE; write the state file's `django.settings`"
                        " yourself")
    settings, switched = production_settings(project, settings)
    if switched:
        notes.append(f"manage.py uses {switched}; production settings found beside it: {settings}")
    try:
        release = _git(top, "rev-parse", "--verify", "HEAD^{commit}")
    except InitError:
        raise InitError(f"{top}: no commit yet: commit your project first (a release is a commit)") from None
    g = Guess(app=app_name(settings), settings=settings,
              project_dir=str(project.relative_to(top)) if project != top else ".",
              repository=os.path.relpath(top, folder.resolve()), release=release, notes=notes)
    settings_file = project / (settings.replace(".", "/") + ".py")
    if not settings_file.is_file():
        settings_file = project / settings.replace(".", "/") / "__init__.py"
    for candidate in REQUIREMENTS:
        if (project / candidate).is_file():
            g.requirements = candidate
            break
    else:
        notes.append(f"no requirements file in {project.relative_to(top) if project != top else 'the project'}:"
                     " create requirements.txt (pip freeze > requirements.txt) and commit it")
    if settings_file.is_file():
        url = static_url(settings_file)
        if url:
            g.static_url = url
        urlconf = root_urlconf(settings_file)
        urls_file = project / (urlconf.replace(".", "/") + ".py") if urlconf else None
        found = health_url(urls_file) if urls_file and urls_file.is_file() else None
        if found:
            g.health_url = found
        if found != "/":
            notes.append(f"health_url: {g.health_url} ({'the admin login page: ' if found else ''}"
                         "a release goes online only once it answers 2xx there; set site.health_url to a page "
                         "of yours that does, e.g. a /health/ view)")
    return g


def render(env: str, g: Guess, hosts: dict | None, ssh: dict | None, schema_file: str | None) -> str:
    """The state file's text: every guessed value, commented."""
    lines = []
    if schema_file:
        lines.append(f"# yaml-language-server: $schema={schema_file}")
    lines += [
        f"# pinned: the {env} environment of {g.app} (written by `pinned init`; the README lists every field).",
        "# Deploy: `pinned --env {env} plan`, then `pinned --env {env} deploy`.".format(env=env),
        "",
        "# The site's name: its system user, /srv/<app>, its databases <app>_v<N>, its units <app>@<release>.",
        f"app: {g.app}",
        "# The git repository releases are built from (a path from this file, or a URL).",
        f"repository: {json.dumps(g.repository)}",
        "# The release online: a commit. `pinned pin REF` rewrites this line.",
        f"release: {g.release}",
        "django:",
        f"  settings: {g.settings}",
    ]
    if g.project_dir != ".":
        lines.append(f"  project_dir: {g.project_dir}  # the folder of manage.py in the repository")
    lines.append(f"  requirements: {g.requirements}  # relative to the project folder")
    lines.append("")
    if hosts:
        lines.append("# The servers: web hosts run the app behind nginx, the db host runs MariaDB (may be the same).")
        lines.append("hosts:")
        lines.append(f"  web: {json.dumps(hosts['web'])}")
        lines.append(f"  db: {json.dumps(hosts['db'])}")
    else:
        lines += [
            "# The servers (required to deploy): web hosts run the app behind nginx, the db host MariaDB.",
            "# hosts:",
            "#   web: [www1.example.com]",
            "#   db: www1.example.com",
        ]
    if ssh:
        lines.append("ssh:")
        lines += [f"  {k}: {json.dumps(v)}" for k, v in ssh.items()]
    else:
        lines += [
            "# How to reach them (default: your ~/.ssh/config, else your login name, port 22):",
            "# ssh: {user: deploy, key: ~/.ssh/id_ed25519, proxy_jump: bastion.example.com}",
        ]
    lines += [
        "",
        "site:",
        "  server_names: []  # the site's domain names (empty: any name, on the host's address)",
        f"  static_url: {g.static_url}  # the project's STATIC_URL, served by nginx",
        f"  health_url: {g.health_url}  # must answer 2xx before a release goes online",
        "",
    ]
    return "\n".join(lines)


def schema_text() -> str:
    return json.dumps(State.model_json_schema(), indent=2, sort_keys=True) + "\n"


def init(folder: Path, env: str, web: list[str], db: str | None, ssh: dict | None, force: bool = False
         ) -> tuple[Path, Guess]:
    """Write `<folder>/<env>.yaml` (and the JSON Schema beside it); refuse to overwrite unless `force`."""
    path = folder / f"{env}.yaml"
    if path.exists() and not force:
        raise InitError(f"{path} exists: edit it, or pass --force to write it anew")
    g = guess(folder)
    hosts = {"web": web, "db": db or web[0]} if web else None
    text = render(env, g, hosts, ssh, SCHEMA_FILE)
    try:
        parse_state(text, str(path))
    except StateFileError as exc:
        raise InitError(f"the state file init would write is not valid ({exc}): please report this") from None
    (folder / SCHEMA_FILE).write_text(schema_text())
    tmp = path.with_name(f".{path.name}.init-tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path, g
