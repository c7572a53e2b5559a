"""Notifier adapters: how Train tells users about their jobs."""
