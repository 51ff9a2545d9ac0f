"""`python -m services.dsr` runs the dsr service on DSR_PORT."""

from services.dsr.app import create_app
from shared.runtime import serve
from shared.settings import Settings


def main() -> None:
    settings = Settings(service_name="dsr")
    serve(create_app(settings), settings, port=settings.dsr_port)


if __name__ == "__main__":
    main()
