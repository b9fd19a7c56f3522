"""Moved to maestro.config (one settings model); this name stays until its last importers move."""

from maestro.config import load_settings as load_settings
