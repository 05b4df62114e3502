# URLs depend on var.expose: cluster -> in-cluster service URLs (reach them
# with kubectl port-forward), nodeport -> localhost ports kind publishes,
# ingress -> https hosts under var.public_domain.
locals {
  pipeline_ns = module.platform.pipeline_namespace

  urls = {
    cluster = {
      argo   = module.platform.argo_server_internal_url
      mlflow = module.platform.mlflow_internal_url
      github = "http://cnai-github-webhook-svc.${local.pipeline_ns}.svc.cluster.local:12000/push"
      data   = "http://cnai-data-webhook-svc.${local.pipeline_ns}.svc.cluster.local:12001/data-updated"
    }
    nodeport = {
      argo   = "http://localhost:${local.host_ports.argo}"
      mlflow = "http://localhost:${local.host_ports.mlflow}"
      github = "http://localhost:${local.host_ports.github}/push"
      data   = "http://localhost:${local.host_ports.data}/data-updated"
    }
    ingress = {
      argo = "https://argo.${var.public_domain}"
      # MLflow has no login: never on the public ingress (kubectl port-forward).
      mlflow = module.platform.mlflow_internal_url
      github = "https://${local.webhook_host}/push"
      data   = "https://${local.webhook_host}/data-updated"
    }
  }
}

output "argo_ui_url" {
  description = "Argo Workflows UI (rerun, retry, resubmit runs here)."
  value       = local.urls[var.expose].argo
}

output "mlflow_url" {
  description = "MLflow tracking UI and API."
  value       = local.urls[var.expose].mlflow
}

output "github_webhook_url" {
  description = "Payload URL for the GitHub push webhook (content type application/json)."
  value       = local.urls[var.expose].github
}

output "data_webhook_url" {
  description = "URL to POST to when new data lands (Authorization: Bearer <data_webhook_token>)."
  value       = local.urls[var.expose].data
}

output "namespaces" {
  description = "Namespaces this configuration manages, by role."
  value = {
    platform = module.platform.platform_namespace
    pipeline = module.platform.pipeline_namespace
    cnpg     = var.cnpg_namespace
  }
}

output "mlflow_tracking_uri_in_cluster" {
  description = "Tracking URI the pipeline pods use (CNAI_MLFLOW_TRACKING_URI)."
  value       = module.platform.mlflow_internal_url
}

output "kubeconfig_path" {
  description = "kubeconfig of the kind cluster, when this configuration created one."
  value       = var.create_kind_cluster ? module.kind_cluster[0].kubeconfig_path : null
}

output "katib_enabled" {
  description = "Whether Katib was installed."
  value       = module.platform.katib_enabled
}

output "github_webhook_secret" {
  description = "Secret for the GitHub webhook form: tofu output -raw github_webhook_secret."
  value       = module.pipeline.github_webhook_secret
  sensitive   = true
}

output "data_webhook_token" {
  description = "Bearer token for the data-updated webhook: tofu output -raw data_webhook_token."
  value       = module.pipeline.data_webhook_token
  sensitive   = true
}
