"""pinned: declarative deploys of Django sites, on pyinfra.

The package holds everything a deploy needs: deploy.py, inventory.py and config.py (what pyinfra runs),
state/ (the pure core), operations/ (with the scripts that run on the hosts), templates/, and the sandbox.
In pinned's own checkout these live at the repository's root and pinned/ links to them.
"""

from pathlib import Path

HOME = Path(__file__).parent  # not resolved: in the checkout, its links lead back to the root's files
DEPLOY, INVENTORY, CONFIG = HOME / "deploy.py", HOME / "inventory.py", HOME / "config.py"
