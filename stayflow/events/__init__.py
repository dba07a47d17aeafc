"""The app's event log: one append-only table every domain writes in its own transaction."""
