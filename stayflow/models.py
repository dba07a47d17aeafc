"""Imports every domain's models so that Base.metadata knows every table."""

from stayflow.apps.models import ApiKey, App
from stayflow.cancel_sessions.models import CancelSession
from stayflow.flows.models import FlowConfig
from stayflow.jobs.models import Job

__all__ = ["ApiKey", "App", "CancelSession", "FlowConfig", "Job"]
