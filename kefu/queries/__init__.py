"""Reads: ``get_*`` plain lookups, ``access_*`` permission-checked ones, ``list_*``."""
