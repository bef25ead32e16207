"""Active learning and Label Studio integration."""
