# The worker image for docker-compose.yml (not used by `make run`/`make test`, which need no Docker).

# The fold's hot modules compiled with mypyc (`make compile`, docs/engine.md "A cheaper fold"), in a
# stage of its own: it has the C compiler and mypy (the dev lock's versions, no resolving), the
# image takes the build only. Without it the worker runs the same modules in pure Python.
FROM python:3.11 AS compile
WORKDIR /app
COPY requirements/dev.lock ./requirements/
COPY ops/lock.py ./ops/
RUN python ops/lock.py subset requirements/dev.lock mypy setuptools msgspec > compile.lock \
    && pip install --no-cache-dir --require-hashes --no-deps -r compile.lock
COPY pyproject.toml ./
COPY schemas ./schemas
COPY projections ./projections
COPY ops/compile.py ./ops/
RUN python ops/compile.py

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md requirements/runtime.lock ./
# The runtime lock first (every version pinned, every file hashed: `make lock`), in a layer of its
# own that a code change does not rebuild; then the project, without resolving anything again.
RUN pip install --no-cache-dir --require-hashes --no-deps -r runtime.lock
COPY schemas ./schemas
COPY projections ./projections
COPY --from=compile /app/projections/_compiled ./projections/_compiled
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
