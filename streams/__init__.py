"""Wiring: the Faust app, settings, topics, tables, metrics, services and the CLI.
No model code lives here."""
