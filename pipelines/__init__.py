"""Pipeline definitions (Hera) and Katib-style experiment specs."""
