# The worker image for docker-compose.yml (not used by `make run`/`make test`, which need no Docker).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md requirements/runtime.lock ./
# The runtime lock first (every version pinned, every file hashed: `make lock`), in a layer of its
# own that a code change does not rebuild; then the project, without resolving anything again.
RUN pip install --no-cache-dir --require-hashes --no-deps -r runtime.lock
COPY schemas ./schemas
COPY projections ./projections
COPY streams ./streams
COPY ops/rules.sample.toml ./rules.toml
RUN pip install --no-cache-dir --no-deps --no-build-isolation .
ENV SESSIONS_WEB_HOST=0.0.0.0 \
    SESSIONS_DATA_DIR=/data \
    SESSIONS_RULES_FILE=/app/rules.toml
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["sessionctl"]
CMD ["worker"]
