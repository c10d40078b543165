#!/bin/busybox sh
# PID 1 of the test backend. $BOOT seconds (default 0) pass before the
# server listens, as a real app boots; with BOOT=told it boots until told
# (until /booted exists: `exec touch /booted`), so a test makes the boot last
# as long as it needs. On SIGTERM it keeps serving for $GRACE seconds
# (default 0: it exits at once, cutting the requests in flight), so a test
# can stop a container with a request in flight. SERVER=reset serves no
# HTTP at all: it accepts and resets each connection, as a crash-looping
# server does.
bb=/bin/busybox
trap '$bb sleep "${GRACE:-0}"; exit 0' TERM INT
if [ "${BOOT:-0}" = told ]; then
    until $bb test -e /booted; do $bb sleep 0.05; done
elif [ "${BOOT:-0}" != 0 ]; then
    $bb sleep "$BOOT" &
    wait $!
fi
if [ "${SERVER:-}" = reset ]; then
    $bb nc -ll -p "${PORT:-8000}" -e $bb true &
else
    $bb httpd -f -p "${PORT:-8000}" -h /www &
fi
wait
