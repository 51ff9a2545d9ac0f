"""`python -m services.ingest` runs the ingest service on INGEST_PORT (8001)."""

from services.ingest.app import create_app
from shared.runtime import serve
from shared.settings import Settings


def main() -> None:
    settings = Settings(service_name="ingest")
    app = create_app(
        settings,
        run_consumers=settings.ingest_mode != "http",
        serve_api=settings.ingest_mode != "consumers",
    )
    serve(app, settings, port=settings.ingest_port)


if __name__ == "__main__":
    main()
