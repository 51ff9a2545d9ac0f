# syntax=docker/dockerfile:1
# One image for every Sailo service: `docker run sailo python -m services.<ingest|retention|dsr|export>`,
# migrations with `python -m shared.platform.db upgrade`. Used by docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install --no-cache-dir uv

WORKDIR /app

# Dependencies first, from the lock file only: this layer is rebuilt when the lock changes, not the code.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project

# Then the code, and the project itself into the same environment.
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev

# Unprivileged runtime user; /data/blobs is the mount point of the shared blob volume and is created here
# so that a fresh named volume inherits this ownership.
RUN groupadd --system sailo \
    && useradd --system --gid sailo --home-dir /app --no-create-home --shell /usr/sbin/nologin sailo \
    && mkdir -p /data/blobs /data/keys \
    && chown sailo:sailo /data/blobs /data/keys

ENV PATH=/app/.venv/bin:$PATH \
    BLOB_STORE_URL=file:///data/blobs

USER sailo

EXPOSE 8001 8002 8003 8004

CMD ["python", "-m", "services.ingest"]
