"""Offer definitions: what a subscriber can be offered instead of cancelling."""
