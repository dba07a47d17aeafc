"""Entry point for multi-process serving: each uvicorn worker builds its app here."""

from __future__ import annotations

from fastapi import FastAPI

from stayflow.app import create_app
from stayflow.settings import load_settings


def web_app() -> FastAPI:
    return create_app(load_settings().ensure_secret_key(), run_worker=True)
