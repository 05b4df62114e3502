"""Model registry: lineage tags, the champion/challenger gate and safe MLflow access.

``cnai.registry.register`` composes these pieces:

- :mod:`cnai.registry.retry`: bounded retries with backoff around every MLflow call;
- :mod:`cnai.registry.lock`: a per-model mutex kept in the registry itself;
- :mod:`cnai.registry.lineage`: the version tags tying a model to its data and code;
- :mod:`cnai.registry.evaluate`: scoring a model on a snapshot's held-out test split;
- :mod:`cnai.registry.gate`: the promotion rule;
- :mod:`cnai.registry.card`: the Markdown model card;
- :mod:`cnai.registry.query`: what ``cnai models`` shows.
"""
