"""Cancel sessions: the precancel API, the JS snippet, sessions and their outcomes."""
