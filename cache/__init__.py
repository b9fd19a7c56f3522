"""Content-addressed storage and action cache on LMDB."""
