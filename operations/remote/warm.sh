#!/bin/sh
# Keep the release that served until the switch warm: its socket and service keep running (disabled, so a
# reboot does not bring them back) and its timer starts (restarted: the window begins now); when it elapses,
# the timer's service stops them unless the release is current again (templates/warm.service.j2).
# $1 its socket unit, $2 its service unit, $3 its warm timer.
systemctl disable --quiet "$1" "$2" && systemctl restart "$3"
