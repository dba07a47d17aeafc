"""stayflow: a self-hostable cancel flow and retention service for Stripe Billing."""

__version__ = "0.1.0"
