"""`python -m services.ingest` runs the ingest service on INGEST_PORT (8001)."""

from fastapi import FastAPI

from services.ingest.app import create_app
from shared.platform.runtime import configure_service_logging, serve
from shared.platform.settings import Settings


def build() -> FastAPI:
    """The app of one worker process; INGEST_MODE chooses the HTTP side, the consumers, or both."""
    settings = Settings(service_name="ingest")
    configure_service_logging(settings)
    return create_app(
        settings,
        run_consumers=settings.ingest_mode != "http",
        serve_api=settings.ingest_mode != "consumers",
    )


def main() -> None:
    settings = Settings(service_name="ingest")
    serve("services.ingest.__main__:build", settings, port=settings.ingest_port)


if __name__ == "__main__":
    main()
