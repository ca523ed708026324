# syntax=docker/dockerfile:1
# One image for `edge-ext serve` (processor only) and `edge-ext up` (Envoy + processor).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proto ./proto
COPY envoy ./envoy
COPY edge_ext ./edge_ext
RUN python -m venv /opt/edge-ext \
 && /opt/edge-ext/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/edge-ext/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin edge
COPY --from=build /opt/edge-ext /opt/edge-ext
ENV PATH=/opt/edge-ext/bin:$PATH PYTHONUNBUFFERED=1
USER 10001
EXPOSE 10000 9464
HEALTHCHECK --interval=10s --timeout=2s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9464/metrics', timeout=2).status == 200 else 1)"
# exec form: SIGTERM reaches edge-ext's supervisor, which drains Envoy and the workers.
ENTRYPOINT ["edge-ext"]
CMD ["up"]
