"""`python -m services.dsr` runs the dsr service on DSR_PORT."""

from fastapi import FastAPI

from services.dsr.app import create_app
from shared.platform.runtime import configure_service_logging, serve
from shared.platform.settings import Settings


def build() -> FastAPI:
    """The app of one worker process."""
    settings = Settings(service_name="dsr")
    configure_service_logging(settings)
    return create_app(settings)


def main() -> None:
    settings = Settings(service_name="dsr")
    serve("services.dsr.__main__:build", settings, port=settings.dsr_port)


if __name__ == "__main__":
    main()
