# pyinfra's configuration for deploy.py (read before the deploy): if any host fails, stop everywhere.
# Switching `current` is a later phase than building and health-checking a release, so no host switches
# unless every host got its release ready.
from pyinfra import config

config.FAIL_PERCENT = 0
