#!/bin/busybox sh
# PID 1 of the test backend. On SIGTERM it keeps serving for $GRACE seconds
# (default 0), so a test can stop a container with a request in flight.
bb=/bin/busybox
$bb httpd -f -p "${PORT:-8000}" -h /www &
trap '$bb sleep "${GRACE:-0}"; exit 0' TERM INT
wait
