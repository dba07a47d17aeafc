"""Imports every domain's models so that Base.metadata knows every table."""

from stayflow.apps.models import ApiKey, App
from stayflow.jobs.models import Job

__all__ = ["ApiKey", "App", "Job"]
