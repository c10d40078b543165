#!/bin/busybox sh
# The test backend's answer to every path that ends in "/": who answered
# (the container's hostname), and what it was asked. "?sleep=N" answers
# after N seconds; "?held" answers once /held does not exist (a test makes
# it with `exec touch /held` to keep requests in flight as long as it needs).
bb=/bin/busybox
case "$QUERY_STRING" in
    sleep=*) $bb sleep "${QUERY_STRING#sleep=}" ;;
    held) while $bb test -e /held; do $bb sleep 0.05; done ;;
esac
printf 'Content-Type: text/plain\r\n\r\n'
echo "host=$($bb hostname)"
echo "method=$REQUEST_METHOD"
echo "uri=$REQUEST_URI"
$bb env | $bb grep '^HTTP_' | $bb sort
