"""Unit tests of the pure core: no SSH, no hosts, no root. Builders live in meshes.py."""
