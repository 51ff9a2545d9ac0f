"""What every export route takes: the caller, once the route table has let their role in."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends

from services.export.service.common import SERVICE
from shared.app import Caller, caller_of
from shared.security.access import authorize

CallerDep = Annotated[Caller, Depends(caller_of(authorize(SERVICE)))]
LIST_BODY_LIMIT: Final = 1024 * 1024
"""Bodies that may list up to 10,000 contacts or items (about 40 bytes each in JSON) get this much room."""
