# fastroute's image. Build: DOCKER_BUILDKIT=1 docker build -t fastroute .
# Run (see examples/compose.yaml for the same behind a Docker socket filter):
#   docker run -d -p 8080:8080 -v /var/run/docker.sock:/var/run/docker.sock fastroute
#   docker run ... fastroute serve --route /api=10.0.0.5:8000 ...   (any serve flags)
#
# BASE is any Debian-like image with python3 (3.11 or later) and its venv
# module; the default is the official slim Python image. A network whose
# TLS is intercepted needs its CA bundle for pip: pass it as the build
# secret `ca` (--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt); a
# secret is mounted for one RUN and kept in no layer.
ARG BASE=python:3.12-slim-bookworm

FROM ${BASE} AS build
# A C compiler for the Cython extensions, libnghttp2's header for the HTTP/2 session's, and Python's
# headers when the base has none (Debian's python3).
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev libnghttp2-dev \
      $(python3 -c 'import os, sysconfig; print("" if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else "python3-dev")') \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY fastroute fastroute
COPY proxy proxy
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && python3 -m venv /opt/build \
 && /opt/build/bin/pip install --quiet --no-cache-dir build \
 && /opt/build/bin/python -m build --wheel --outdir /wheels .

FROM ${BASE}
# libnghttp2, which the wheel's HTTP/2 session links (the wheel links the system's: it does not carry it).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libnghttp2-14 \
 && rm -rf /var/lib/apt/lists/*
RUN --mount=type=secret,id=ca --mount=type=bind,from=build,source=/wheels,target=/wheels \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && python3 -m venv /opt/fastroute \
 && /opt/fastroute/bin/pip install --quiet --no-cache-dir "$(echo /wheels/fastroute-*.whl)[gateway]" \
 && /opt/fastroute/bin/python -c 'import fastroute; assert fastroute.COMPILED, "the compiled router is missing"' \
 && /opt/fastroute/bin/python -c 'from proxy.protocol._compiled import H2SESSION_COMPILED as c; assert c, "the HTTP/2 session is missing"'
ENV PATH=/opt/fastroute/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    FASTROUTE_ADMIN=127.0.0.1:9090
# Plain HTTP on 8080 (serve's default --listen 0.0.0.0:8080); HTTPS on 8443 with --listen-tls 0.0.0.0:8443.
EXPOSE 8080 8443
# The admin listener stays inside the container (FASTROUTE_ADMIN, --admin's default): the health check's.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://' + os.environ['FASTROUTE_ADMIN'] + '/healthz', timeout=2)"]
# fastroute is PID 1: it handles SIGTERM itself (drain, then exit 0 within --drain-timeout).
STOPSIGNAL SIGTERM
ENTRYPOINT ["fastroute"]
CMD ["serve"]
