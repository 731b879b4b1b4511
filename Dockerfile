# The worker image for docker-compose.yml (not used by `make run`/`make test`, which need no Docker).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY projections ./projections
COPY streams ./streams
COPY ops/rules.sample.toml ./rules.toml
RUN pip install --no-cache-dir .
ENV SESSIONS_WEB_HOST=0.0.0.0 \
    SESSIONS_DATA_DIR=/data \
    SESSIONS_RULES_FILE=/app/rules.toml
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["sessionctl"]
CMD ["worker"]
