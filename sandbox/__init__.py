"""Disposable local Debian servers for the demo and the tests.

Each host is a Debian 12 or 13 root filesystem booted with systemd-nspawn (systemd as PID 1, sshd), on an
overlay of a cached base image, in its own network namespace joined to a private bridge. Everything a
run creates is named from one prefix (PINNED_SANDBOX_PREFIX), so two runs on one machine never collide
and a crashed run's leftovers can be removed by their exact names.
"""
