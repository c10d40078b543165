"""The fastroute gateway: a trio + h11 reverse proxy and its Docker watcher."""
