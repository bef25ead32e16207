"""Dagster sensors and schedules: drift, low confidence, labels ready, monthly retrain."""
