output "platform_namespace" {
  description = "Namespace of the shared services."
  value       = kubernetes_namespace_v1.platform.metadata[0].name
}

output "pipeline_namespace" {
  description = "Namespace of the pipeline objects (created here so Argo can watch it)."
  value       = kubernetes_namespace_v1.pipeline.metadata[0].name
}

output "mlflow_internal_url" {
  description = "MLflow tracking URL inside the cluster."
  value       = "http://${local.mlflow_service}:5000"
}

output "argo_server_internal_url" {
  description = "Argo Server URL inside the cluster."
  value       = "http://argo-workflows-server.${var.platform_namespace}.svc.cluster.local:2746"
}

output "s3_endpoint" {
  description = "S3 endpoint URL the pipeline uses."
  value       = local.s3_endpoint
}

output "s3_region" {
  description = "S3 region name."
  value       = local.s3_region
}

output "buckets" {
  description = "Bucket names by purpose: mlflow, warehouse, checkpoints, argo."
  value       = local.buckets
}

output "s3_access_key_id" {
  description = "S3 access key id for the pipeline."
  value       = local.s3_access_key_id
  sensitive   = true
}

output "s3_secret_access_key" {
  description = "S3 secret access key for the pipeline."
  value       = local.s3_secret_access_key
  sensitive   = true
}

output "iceberg_catalog_uri" {
  description = "SQLAlchemy URI of the Iceberg SQL catalog (holds the database password)."
  value       = "postgresql+psycopg2://${local.postgres_username}:${urlencode(random_password.postgres.result)}@${local.postgres_host}:5432/${local.databases.iceberg}"
  sensitive   = true
}

output "katib_enabled" {
  description = "Whether Katib was installed."
  value       = length(helm_release.katib) > 0
}

output "kserve_enabled" {
  description = "Whether KServe (and cert-manager) were installed."
  value       = length(helm_release.kserve) > 0
}
