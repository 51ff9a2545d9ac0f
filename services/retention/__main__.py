"""`python -m services.retention` runs the retention service on RETENTION_PORT."""

from fastapi import FastAPI

from services.retention.app import create_app
from shared.platform.runtime import configure_service_logging, serve
from shared.platform.settings import Settings


def build() -> FastAPI:
    """The app of one worker process."""
    settings = Settings(service_name="retention")
    configure_service_logging(settings)
    return create_app(settings)


def main() -> None:
    settings = Settings(service_name="retention")
    serve("services.retention.__main__:build", settings, port=settings.retention_port)


if __name__ == "__main__":
    main()
