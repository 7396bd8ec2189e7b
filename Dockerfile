# tierstream worker image. Build from the repository root: docker build -t tierstream:0.1.0 .
# Runs as a non-root user with a read-only root filesystem: the only writable paths
# are /data (RocksDB tables, TIERSTREAM_STORE=rocksdb://) and /tmp.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/data \
    MPLCONFIGDIR=/tmp/matplotlib \
    TIERSTREAM_WEB_PORT=6066

RUN groupadd --system --gid 10001 tierstream \
 && useradd --system --uid 10001 --gid tierstream --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin tierstream

# Only what the package needs: the pinned dependencies come from pyproject.toml.
WORKDIR /build
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY schemas ./schemas
RUN pip install --no-cache-dir . \
 && cd / && rm -rf /build \
 && mkdir -p /data && chown tierstream:tierstream /data

WORKDIR /data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 6066

# /health answers as soon as the web server is up; /ready (partitions assigned, tables
# recovered) is for orchestrators that route traffic (see deploy/k8s/statefulset.yaml).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('TIERSTREAM_WEB_PORT', '6066'), timeout=4)"]

ENTRYPOINT ["tierstream"]
CMD ["run"]
