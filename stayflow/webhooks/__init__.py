"""Outbound webhooks: the app's event log delivered to its endpoints, signed and retried."""
