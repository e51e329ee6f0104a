#!/bin/sh
# A preview's database account or its removal: $1 preview_sql.py's text, then its arguments. The SQL (which
# names the password) is made on the server, from the secrets file, and piped to mysql: never in a command line.
text=$1
shift
sql=$(python3 -c "$text" "$@") && printf "%s\n" "$sql" | mysql
