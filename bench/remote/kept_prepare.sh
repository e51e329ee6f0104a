#!/bin/sh
# On the bench's `kept` host, once (bench/__main__.py kept_figures): C (schema version 1, just rolled back from)
# stopped as its keep_warm window's end stops it; a hard-linked copy of its release and its schema.json kept aside
# (the template of the kept releases of schema versions 1-3); databases <app>_v2 and _v3 as copies of <app>_v1
# (what a schema change leaves).
#   $1 the app, $2 C's release id, $3 the folder the copies are kept in, $4 the app's root (/srv/<app>)
set -e
app=$1 c=$2 store=$3 srv=$4
systemctl stop "pinned-warm-$app@$c.timer"
systemctl start "pinned-warm-$app@$c.service"
! systemctl is-active --quiet "$app@$c.service"
rm -rf "$store" && mkdir -p "$store"
cp -al "$srv/versions/1/$c" "$store/C"
cp "$srv/versions/1/schema.json" "$store/schema1.json"
for n in 2 3; do
    mysql -e "DROP DATABASE IF EXISTS ${app}_v$n;
              CREATE DATABASE ${app}_v$n CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    mysqldump --single-transaction "${app}_v1" | mysql "${app}_v$n"
done
