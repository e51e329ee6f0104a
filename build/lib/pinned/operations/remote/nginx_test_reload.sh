#!/bin/sh
# After removing one of nginx's files: reload a running nginx if its config still passes its test.
if systemctl is-active --quiet nginx; then nginx -t && systemctl reload nginx; fi
