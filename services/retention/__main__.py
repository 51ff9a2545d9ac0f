"""`python -m services.retention` runs the retention service on RETENTION_PORT."""

from services.retention.app import create_app
from shared.runtime import serve
from shared.settings import Settings


def main() -> None:
    settings = Settings(service_name="retention")
    serve(create_app(settings), settings, port=settings.retention_port)


if __name__ == "__main__":
    main()
