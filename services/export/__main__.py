"""`python -m services.export` runs the export service on EXPORT_PORT."""

from services.export.app import create_app
from shared.runtime import serve
from shared.settings import Settings


def main() -> None:
    settings = Settings(service_name="export")
    serve(create_app(settings), settings, port=settings.export_port)


if __name__ == "__main__":
    main()
