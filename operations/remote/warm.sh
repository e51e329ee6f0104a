#!/bin/sh
# Keep the release that served until the switch warm: its socket and service keep running, and its timer
# starts (restarted: the window begins now); when it elapses, the timer's service stops them unless the
# release is current again (templates/warm.service.j2). Its units stay enabled: `systemctl disable` reloads
# systemd (half a second on a busy host, measured by bench/profile_run.py); after a reboot in the window the
# release runs with no timer, and the next plan stops it as it stops any release that is not current.
# $1 its socket unit, $2 its service unit, $3 its warm timer.
systemctl restart "$3"
