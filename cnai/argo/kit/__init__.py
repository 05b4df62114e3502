"""The authoring kit: the pieces every cnai pipeline needs, so a pipeline is a short Hera file.

One concept per module, all built on :class:`cnai.argo.pipeline.Platform` (image,
service account, ConfigMap/Secret, uid):

- :mod:`~cnai.argo.kit.pods`: pod/container security, ``envFrom``, resources, the image;
- :mod:`~cnai.argo.kit.retry`: the retry strategies (never retry bad input);
- :mod:`~cnai.argo.kit.scripts`: Hera runner-script templates;
- :mod:`~cnai.argo.kit.container`: a step function run in one pod (no Ray cluster);
- :mod:`~cnai.argo.kit.rayjob`: KubeRay ``RayJob`` templates whose entrypoint and
  inputs are derived from a step function's signature;
- :mod:`~cnai.argo.kit.workflow`: the WorkflowTemplate defaults, memoization and
  checked output references (``task.get_parameter``);
- :mod:`~cnai.argo.kit.keys`: work/memo keys and the code version;
- :mod:`~cnai.argo.kit.record`: recording a pipeline's decisions on an Iceberg table.

See docs/authoring.md.
"""

from cnai.argo.kit.container import step_container
from cnai.argo.kit.keys import code_digest, code_version, work_key
from cnai.argo.kit.pods import full_image
from cnai.argo.kit.rayjob import (
    RAYJOB_FAILURE,
    RAYJOB_SUCCESS,
    entrypoint,
    rayjob_manifest,
    rayjob_step,
)
from cnai.argo.kit.record import record_on_table
from cnai.argo.kit.retry import ray_retry, transient
from cnai.argo.kit.scripts import runner_script
from cnai.argo.kit.workflow import is_true, memoize, output, pipeline_template, workflow_args

SOURCE_MODULES = (
    "cnai.argo.kit.container",
    "cnai.argo.kit.pods",
    "cnai.argo.kit.rayjob",
    "cnai.argo.kit.retry",
    "cnai.argo.kit.scripts",
    "cnai.argo.kit.workflow",
)
"""The kit's modules that shape compiled YAML: a Pipeline's ``source_modules`` include
them (with the step modules it inspects) so a compiled-template cache follows them."""

__all__ = [
    "RAYJOB_FAILURE",
    "RAYJOB_SUCCESS",
    "SOURCE_MODULES",
    "code_digest",
    "code_version",
    "entrypoint",
    "full_image",
    "is_true",
    "memoize",
    "output",
    "pipeline_template",
    "ray_retry",
    "rayjob_manifest",
    "rayjob_step",
    "record_on_table",
    "runner_script",
    "step_container",
    "transient",
    "work_key",
    "workflow_args",
]
