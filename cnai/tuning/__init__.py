"""Katib-style hyperparameter tuning executed by Ray Tune.

- :mod:`cnai.tuning.spec`: parse and validate a Katib ``kubeflow.org/v1beta1``
  ``Experiment`` into an :class:`~cnai.tuning.spec.Experiment` (the supported subset);
- :mod:`cnai.tuning.space`: search space and algorithm -> Ray Tune search algorithm;
- :mod:`cnai.tuning.medianstop`: Katib's median stopping rule as a Ray Tune scheduler;
- :mod:`cnai.tuning.runner`: runs the trials on Ray Tune and records their outcome;
- :mod:`cnai.tuning.mlflow_log` and :mod:`cnai.tuning.plots`: parent/child MLflow runs;
- :mod:`cnai.tuning.katib`: export the same search as a Katib Experiment custom resource;
- :mod:`cnai.tuning.trial`: the trial entry point that exported Experiment runs.
"""
