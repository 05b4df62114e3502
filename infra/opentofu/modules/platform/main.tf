# Shared services the pipeline needs, each a pinned helm_release (see the
# other files of this module). This file holds the namespaces, the generated
# credentials and the Secrets that carry them. Secret payloads are written
# with write-only attributes (data_wo): they reach the cluster but never the
# state; the generated passwords themselves live only in the encrypted state.

locals {
  seaweedfs = var.object_store == "seaweedfs"

  buckets = {
    mlflow      = "${var.bucket_prefix}-mlflow"
    warehouse   = "${var.bucket_prefix}-warehouse"
    checkpoints = "${var.bucket_prefix}-checkpoints"
    argo        = "${var.bucket_prefix}-argo"
  }

  s3_endpoint = local.seaweedfs ? "http://seaweedfs-s3.${var.platform_namespace}.svc.cluster.local:8333" : var.external_s3.endpoint
  s3_region   = local.seaweedfs ? "us-east-1" : var.external_s3.region
  # Argo wants host[:port] without a scheme, plus whether to skip TLS.
  s3_host     = regex("^https?://([^/]+)", local.s3_endpoint)[0]
  s3_insecure = startswith(local.s3_endpoint, "http://")

  s3_access_key_id     = local.seaweedfs ? random_password.s3_access_key_id[0].result : var.external_s3_access_key_id
  s3_secret_access_key = local.seaweedfs ? random_password.s3_secret_access_key[0].result : var.external_s3_secret_access_key

  postgres_name     = "cnai-postgres"
  postgres_host     = "${local.postgres_name}-rw.${var.platform_namespace}.svc.cluster.local"
  postgres_username = "cnai"
  databases = {
    mlflow  = "mlflow"
    argo    = "argo"
    iceberg = "iceberg"
  }

  secret_names = {
    postgres       = "cnai-postgres-app"
    s3             = "cnai-s3-credentials"
    seaweedfs      = "cnai-seaweedfs-s3-config"
    argo_artifacts = "cnai-argo-artifacts"
  }

  pod_security = {
    "pod-security.kubernetes.io/enforce" = "baseline"
    "pod-security.kubernetes.io/warn"    = "restricted"
  }
}

resource "kubernetes_namespace_v1" "platform" {
  metadata {
    name   = var.platform_namespace
    labels = merge(local.pod_security, { "app.kubernetes.io/part-of" = "cnai" })
  }
}

resource "kubernetes_namespace_v1" "pipeline" {
  metadata {
    name   = var.pipeline_namespace
    labels = merge(local.pod_security, { "app.kubernetes.io/part-of" = "cnai" })
  }
}

# --- generated credentials (letters and digits only: they go into URIs) ---

resource "random_password" "postgres" {
  length  = 32
  special = false
}

resource "random_password" "s3_access_key_id" {
  count   = local.seaweedfs ? 1 : 0
  length  = 20
  special = false
  lower   = false
}

resource "random_password" "s3_secret_access_key" {
  count   = local.seaweedfs ? 1 : 0
  length  = 40
  special = false
}

# --- Secrets (payloads write-only) ---

# Owner of the mlflow, argo and iceberg databases; CloudNativePG bootstraps
# the role from it, MLflow and the Argo archive log in with it.
resource "kubernetes_secret_v1" "postgres" {
  metadata {
    name      = local.secret_names.postgres
    namespace = kubernetes_namespace_v1.platform.metadata[0].name
  }
  type = "kubernetes.io/basic-auth"
  data_wo = {
    username = local.postgres_username
    password = random_password.postgres.result
  }
  data_wo_revision = var.secret_revision
}

# S3 keys MLflow's artifact proxy uses.
resource "kubernetes_secret_v1" "s3" {
  metadata {
    name      = local.secret_names.s3
    namespace = kubernetes_namespace_v1.platform.metadata[0].name
  }
  data_wo = {
    accesskey = local.s3_access_key_id
    secretkey = local.s3_secret_access_key
  }
  data_wo_revision = var.secret_revision
}

# The one SeaweedFS identity, with the generated keys.
resource "kubernetes_secret_v1" "seaweedfs" {
  count = local.seaweedfs ? 1 : 0
  metadata {
    name      = local.secret_names.seaweedfs
    namespace = kubernetes_namespace_v1.platform.metadata[0].name
  }
  data_wo = {
    seaweedfs_s3_config = jsonencode({
      identities = [{
        name        = "cnai"
        credentials = [{ accessKey = local.s3_access_key_id, secretKey = local.s3_secret_access_key }]
        actions     = ["Admin", "Read", "Write", "List", "Tagging"]
      }]
    })
  }
  data_wo_revision = var.secret_revision
}

# Argo's executor reads artifact credentials from the workflow's namespace.
resource "kubernetes_secret_v1" "argo_artifacts" {
  metadata {
    name      = local.secret_names.argo_artifacts
    namespace = kubernetes_namespace_v1.pipeline.metadata[0].name
  }
  data_wo = {
    accesskey = local.s3_access_key_id
    secretkey = local.s3_secret_access_key
  }
  data_wo_revision = var.secret_revision
}
