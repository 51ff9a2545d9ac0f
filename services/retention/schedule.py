"""The `sailo retention replan` command (deploy/cli.py) imports `replan` from here; the scheduling rules are in
services.retention.service.schedule and the scheduler consumer in services.retention.handlers."""

from services.retention.service.schedule import PlanChange, replan

__all__ = ["PlanChange", "replan"]
