# The pipeline image every cnai-retrain template runs (runner scripts and RayJob pods).
# Build:  docker build -t ghcr.io/cnai-dev/cnai-pipeline:0.1.0 .
# Push:   docker push ghcr.io/cnai-dev/cnai-pipeline:0.1.0
# `make image-test` builds it with podman and runs the tasks in containers of it
# (scripts/image_test.py; docs/infra.md says what that verifies).
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/cnai

# libgomp: PyTorch CPU kernels; git: provenance tags when the code is a checkout.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 git \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1000 cnai \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/cnai cnai

# Where pip finds the CPU build of torch (a pip option string). The default is
# PyTorch's CPU index; a machine without it passes e.g. "--find-links /wheels"
# with a folder holding the torch==2.13.0+cpu wheel mounted there
# (scripts/image_test.py does this; see docs/operations.md).
ARG TORCH_SOURCE="--extra-index-url https://download.pytorch.org/whl/cpu"

WORKDIR /app
COPY constraints.txt pyproject.toml README.md cnai.yaml ./
COPY cnai cnai
COPY steps steps
COPY pipelines pipelines
# pip installs the cnai library only; the project (pyproject.toml [tool.cnai],
# cnai.yaml, steps/, pipelines/) stays in /app: cnai finds it from the working
# folder, and PYTHONPATH makes its modules importable from any folder (Ray workers).
ENV PYTHONPATH=/app
# Every dependency at the version pinned in constraints.txt (torch: the CPU build).
RUN pip install "pip==26.3" \
    && pip install -c constraints.txt $TORCH_SOURCE . \
    && cd / && python -c "import cnai, steps, pipelines, hera, ray, torch"

USER 1000:1000
# Argo runs `python -m hera.workflows.runner ...`; KubeRay runs the RayJob entrypoint.
CMD ["python", "-m", "cnai", "--help"]
