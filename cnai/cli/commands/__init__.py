"""One module per top-level command; each defines ``register(subparsers, common)``.

Modules here are discovered automatically: adding a command never edits the CLI core.
Import heavy libraries (ray, torch, mlflow) inside the handler, not at module level,
so ``cnai --help`` stays fast.
"""
