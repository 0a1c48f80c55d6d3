"""Evaluation launchers and scoring (host-integration and evaluation issues)."""
