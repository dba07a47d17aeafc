"""Billing actions: an accepted offer or a confirmed cancel, applied in Stripe exactly once."""
