"""Reports: per-session facts, rollups kept incrementally, breakdowns, experiments, charts."""
