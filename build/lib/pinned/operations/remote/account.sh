#!/bin/sh
# The app's database account: $1 the secrets file, $2 the user, $3 its host, $4 the databases to grant ALL on,
# $5 the grants to revoke ("*": all), $6 account_sql.py's text (the SQL naming the password goes through a pipe).
sql=$(python3 -c "$6" "$1" "$2" "$3" "$4" "$5") && printf "%s\n" "$sql" | mysql
