"""Typed Dagster ConfigurableResources: artifact storage, MLflow, base model, compile settings."""
