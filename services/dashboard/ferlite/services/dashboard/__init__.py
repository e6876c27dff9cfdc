"""The teacher's dashboard: classroom expression shares over time, read from the aggregator."""
