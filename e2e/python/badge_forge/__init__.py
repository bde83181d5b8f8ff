"""The Python side of Badge Forge: the GenerateBadge worker (see generator.py)."""
