variable "namespace" {
  description = "Namespace of the pipeline (already created by the platform module)."
  type        = string
}

variable "image_repository" {
  description = "Repository of the pipeline image every workflow step runs."
  type        = string
}

variable "image_tag" {
  description = "Tag of the pipeline image."
  type        = string
}

variable "mlflow_tracking_uri" {
  description = "MLflow tracking URL the steps log to."
  type        = string
}

variable "s3_endpoint" {
  description = "S3 endpoint URL for the Iceberg warehouse and checkpoints."
  type        = string
}

variable "s3_region" {
  description = "S3 region name."
  type        = string
}

variable "warehouse_bucket" {
  description = "Bucket holding the Iceberg warehouse."
  type        = string
}

variable "checkpoint_bucket" {
  description = "Bucket holding training checkpoints."
  type        = string
}

variable "s3_access_key_id" {
  description = "S3 access key id for the steps."
  type        = string
  sensitive   = true
}

variable "s3_secret_access_key" {
  description = "S3 secret access key for the steps."
  type        = string
  sensitive   = true
}

variable "iceberg_catalog_uri" {
  description = "SQLAlchemy URI of the Iceberg SQL catalog, password included."
  type        = string
  sensitive   = true
}

variable "github_webhook_secret" {
  description = "Secret GitHub signs push deliveries with; empty generates one."
  type        = string
  sensitive   = true
}

variable "data_webhook_token" {
  description = "Bearer token callers of the data-updated webhook must send; empty generates one."
  type        = string
  sensitive   = true
}

variable "expose" {
  description = "How the webhooks are reached: cluster, nodeport or ingress."
  type        = string
}

variable "node_ports" {
  description = "NodePort per webhook when expose = nodeport: keys github, data."
  type        = map(number)
}

variable "webhook_host" {
  description = "Ingress host for the webhooks when expose = ingress."
  type        = string
}

variable "ingress_class_name" {
  description = "IngressClass used when expose = ingress; empty uses the cluster default."
  type        = string
}

variable "secret_revision" {
  description = "Revision of every write-only Secret payload; bump it to push rotated values."
  type        = number
}
