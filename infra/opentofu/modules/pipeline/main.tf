# The pipeline itself: the local cnai-pipeline chart (compiled WorkflowTemplate,
# events/ specs, ServiceAccounts, RBAC, settings ConfigMap) installed with
# helm_release, which defers the custom resources to apply time (unlike
# kubernetes_manifest, which needs their CRDs at plan time). The Secrets the
# chart refers to are created here with write-only payloads.

locals {
  chart_path = "${path.module}/../../charts/cnai-pipeline"
  # helm_release notices a local chart's new files only through its values:
  # this digest of every chart file makes a re-synced chart an upgrade.
  chart_digest = sha256(join("", [
    for file in sort(fileset(local.chart_path, "**")) : filesha256("${local.chart_path}/${file}")
  ]))

  github_webhook_secret = var.github_webhook_secret != "" ? var.github_webhook_secret : random_password.github_webhook.result
  data_webhook_token    = var.data_webhook_token != "" ? var.data_webhook_token : random_password.data_webhook.result

  # Non-secret settings: environment variables cnai/config.py reads.
  settings = {
    CNAI_MLFLOW_TRACKING_URI   = var.mlflow_tracking_uri
    CNAI_MLFLOW_ARTIFACT_ROOT  = "mlflow-artifacts:/experiments"
    CNAI_CATALOG_NAME          = "cnai"
    CNAI_CATALOG__TYPE         = "sql"
    CNAI_CATALOG__WAREHOUSE    = "s3://${var.warehouse_bucket}/"
    CNAI_CATALOG__S3__ENDPOINT = var.s3_endpoint
    CNAI_CATALOG__S3__REGION   = var.s3_region
    CNAI_CHECKPOINT_ROOT       = "s3://${var.checkpoint_bucket}/"
    AWS_ENDPOINT_URL           = var.s3_endpoint
    AWS_DEFAULT_REGION         = var.s3_region
    MLFLOW_S3_ENDPOINT_URL     = var.s3_endpoint
  }
}

resource "random_password" "github_webhook" {
  length  = 40
  special = false
}

resource "random_password" "data_webhook" {
  length  = 40
  special = false
}

resource "kubernetes_secret_v1" "pipeline" {
  metadata {
    name      = "cnai-pipeline-secrets"
    namespace = var.namespace
  }
  data_wo = {
    AWS_ACCESS_KEY_ID                   = var.s3_access_key_id
    AWS_SECRET_ACCESS_KEY               = var.s3_secret_access_key
    CNAI_CATALOG__S3__ACCESS_KEY_ID     = var.s3_access_key_id
    CNAI_CATALOG__S3__SECRET_ACCESS_KEY = var.s3_secret_access_key
    CNAI_CATALOG__URI                   = var.iceberg_catalog_uri
  }
  data_wo_revision = var.secret_revision
}

resource "kubernetes_secret_v1" "github_webhook" {
  metadata {
    name      = "cnai-github-webhook"
    namespace = var.namespace
  }
  data_wo          = { secret = local.github_webhook_secret }
  data_wo_revision = var.secret_revision
}

resource "kubernetes_secret_v1" "data_webhook" {
  metadata {
    name      = "cnai-data-webhook"
    namespace = var.namespace
  }
  data_wo          = { token = local.data_webhook_token }
  data_wo_revision = var.secret_revision
}

resource "helm_release" "pipeline" {
  name      = "cnai-pipeline"
  chart     = local.chart_path
  version   = "0.1.0"
  namespace = var.namespace
  wait      = true

  values = [yamlencode({
    contentDigest = local.chart_digest
    image         = { repository = var.image_repository, tag = var.image_tag }
    configMapName = "cnai-pipeline-config"
    config        = local.settings
    secretNames = {
      pipeline      = kubernetes_secret_v1.pipeline.metadata[0].name
      githubWebhook = kubernetes_secret_v1.github_webhook.metadata[0].name
      dataWebhook   = kubernetes_secret_v1.data_webhook.metadata[0].name
    }
    webhooks = {
      expose = var.expose
      github = { nodePort = var.node_ports["github"] }
      data   = { nodePort = var.node_ports["data"] }
      ingress = {
        className = var.ingress_class_name
        host      = var.webhook_host
      }
    }
  })]
}
