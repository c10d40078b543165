#!/bin/busybox sh
# The test backend's answer to every path that ends in "/": who answered
# (the container's hostname), and what it was asked. "?sleep=N" answers
# after N seconds; "?held" answers once /held does not exist (a test makes
# it with `exec touch /held` to keep requests in flight as long as it needs),
# and while held it leaves /holding.METHOD.PID, so a test can see that the
# server has read the request (the gateway's count cannot say that).
bb=/bin/busybox
case "$QUERY_STRING" in
    sleep=*) $bb sleep "${QUERY_STRING#sleep=}" ;;
    held)
        mark="/holding.$REQUEST_METHOD.$$"
        $bb touch "$mark"
        while $bb test -e /held; do $bb sleep 0.05; done
        $bb rm -f "$mark" ;;
esac
printf 'Content-Type: text/plain\r\n\r\n'
echo "host=$($bb hostname)"
echo "method=$REQUEST_METHOD"
echo "uri=$REQUEST_URI"
$bb env | $bb grep '^HTTP_' | $bb sort
