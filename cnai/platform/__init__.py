"""The local "platform" profile: the cluster's kind of stores on one machine.

``cnai platform up`` starts a throwaway PostgreSQL cluster under the home (databases
``iceberg`` and ``mlflow``) and an ``mlflow server`` on it, then points the home's
config at them; ``cnai platform down`` stops exactly those and restores the config.
The embedded SQLite stores stay the default.
"""
