"""Where and as whom a pipeline's containers run: security, ``envFrom``, resources, image.

Every template of the kit takes these from one :class:`~cnai.argo.pipeline.Platform`,
so a pipeline never restates them. The Hera objects serve Argo templates; the
``*_dict`` forms serve manifests Argo creates verbatim (the RayJob's pod templates).
"""

from __future__ import annotations

from typing import Any

from cnai.argo.pipeline import Platform

PART_OF = {"app.kubernetes.io/part-of": "cnai"}
"""Label on every object a pipeline creates."""


def full_image(platform: Platform) -> str:
    """``image:tag`` of the pipeline image (tag default: the cnai version)."""
    from cnai import __version__

    return f"{platform.image}:{platform.tag or __version__}"


def pod_security(platform: Platform) -> Any:
    """Hera ``PodSecurityContext``: non-root uid/gid/fsGroup, RuntimeDefault seccomp."""
    from hera.workflows import models as m

    return m.PodSecurityContext(
        run_as_non_root=True,
        run_as_user=platform.run_as,
        run_as_group=platform.run_as,
        fs_group=platform.run_as,
        seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
    )


def container_security() -> Any:
    """Hera ``SecurityContext``: no privilege escalation, non-root, every capability dropped."""
    from hera.workflows import models as m

    return m.SecurityContext(
        allow_privilege_escalation=False,
        run_as_non_root=True,
        capabilities=m.Capabilities(drop=["ALL"]),
    )


def env_from(platform: Platform) -> list[Any]:
    """``envFrom`` the platform's ConfigMap (settings) and Secret (credentials)."""
    from hera.workflows import ConfigMapEnvFrom, SecretEnvFrom

    return [ConfigMapEnvFrom(name=platform.config_map), SecretEnvFrom(name=platform.secret)]


def env_from_dicts(platform: Platform) -> list[dict[str, Any]]:
    """The same ``envFrom`` as plain Kubernetes dicts (RayJob pods, Katib trial Jobs)."""
    return [
        {"configMapRef": {"name": platform.config_map}},
        {"secretRef": {"name": platform.secret}},
    ]


def resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> Any:
    """Hera ``Resources`` with requests and limits (both are always set)."""
    from hera.workflows import Resources

    return Resources(
        cpu_request=cpu, memory_request=memory, cpu_limit=cpu_limit, memory_limit=memory_limit
    )


def container_dict(platform: Platform, name: str) -> dict[str, Any]:
    """A Kubernetes container (dict) running the pipeline image with the platform defaults."""
    return {
        "name": name,
        "image": full_image(platform),
        "imagePullPolicy": "IfNotPresent",
        "envFrom": env_from_dicts(platform),
        "resources": {
            "requests": {"cpu": "1", "memory": "2Gi"},
            "limits": {"cpu": "2", "memory": "4Gi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def pod_template_dict(platform: Platform, container: str) -> dict[str, Any]:
    """A Kubernetes pod template (dict): the service account, non-root, one container."""
    return {
        "metadata": {"labels": dict(PART_OF)},
        "spec": {
            "serviceAccountName": platform.service_account,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": platform.run_as,
                "runAsGroup": platform.run_as,
                "fsGroup": platform.run_as,
            },
            "containers": [container_dict(platform, container)],
        },
    }
