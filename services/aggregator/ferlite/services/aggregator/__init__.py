"""The aggregator: emotion events (no pixels) into Redis; summaries, live streams, feedback, drift."""
