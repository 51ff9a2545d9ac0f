"""`python -m services.export` runs the export service on EXPORT_PORT."""

from fastapi import FastAPI

from services.export.app import create_app
from shared.platform.runtime import configure_service_logging, serve
from shared.platform.settings import Settings


def build() -> FastAPI:
    """The app of one worker process."""
    settings = Settings(service_name="export")
    configure_service_logging(settings)
    return create_app(settings)


def main() -> None:
    settings = Settings(service_name="export")
    serve("services.export.__main__:build", settings, port=settings.export_port)


if __name__ == "__main__":
    main()
