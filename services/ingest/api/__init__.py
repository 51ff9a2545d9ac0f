"""Ingest's HTTP routes: thin; the rules are in services.ingest.service."""

from fastapi import APIRouter

from services.ingest.api import contacts, events, recordings

# Each module's router carries the /v1 prefix itself and the app includes them one by one: a router nested
# in another is mounted lazily, and its routes would then know their path without the prefix, which the
# authorization table (keyed by the full path) would not find.
routers: list[APIRouter] = [events.router, recordings.router, contacts.router]

__all__ = ["routers"]
