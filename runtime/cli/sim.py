"""``lotus sim``: placeholder replaced below."""
