variable "platform_namespace" {
  description = "Namespace for the shared services: Postgres, object store, MLflow, Argo Workflows, Argo Events, KubeRay."
  type        = string
}

variable "pipeline_namespace" {
  description = "Namespace the retrain workflows, RayJobs and event objects run in."
  type        = string
}

variable "cnpg_namespace" {
  description = "Namespace of the CloudNativePG operator."
  type        = string
}

variable "storage_class" {
  description = "StorageClass for every PersistentVolumeClaim; empty uses the cluster default."
  type        = string
}

variable "postgres_instances" {
  description = "Number of Postgres instances in the CloudNativePG cluster (1 primary + replicas)."
  type        = number
}

variable "postgres_storage_size" {
  description = "Volume size of each Postgres instance."
  type        = string
}

variable "object_store" {
  description = "seaweedfs (installed in-cluster) or external (an existing S3-compatible bucket service)."
  type        = string
}

variable "object_store_size" {
  description = "Volume size of the in-cluster object store (seaweedfs only)."
  type        = string
}

variable "external_s3" {
  description = "Endpoint URL and region of the external S3-compatible service (object_store = external)."
  type = object({
    endpoint = string
    region   = string
  })
}

variable "external_s3_access_key_id" {
  description = "Access key id for the external S3 service (object_store = external)."
  type        = string
  sensitive   = true
}

variable "external_s3_secret_access_key" {
  description = "Secret access key for the external S3 service (object_store = external)."
  type        = string
  sensitive   = true
}

variable "bucket_prefix" {
  description = "Prefix of the four buckets: <prefix>-mlflow, -warehouse, -checkpoints, -argo."
  type        = string
}

variable "argo_server_auth_mode" {
  description = "Argo Server auth mode: client (bearer token), sso or server (no login; local clusters only)."
  type        = string
}

variable "expose" {
  description = "How the UIs are reached: cluster (port-forward), nodeport (fixed NodePorts) or ingress."
  type        = string
}

variable "node_ports" {
  description = "NodePort per UI when expose = nodeport: keys argo, mlflow."
  type        = map(number)
}

variable "public_domain" {
  description = "DNS suffix for ingress hosts (argo.<domain>, mlflow.<domain>) when expose = ingress."
  type        = string
}

variable "ingress_class_name" {
  description = "IngressClass used when expose = ingress; empty uses the cluster default."
  type        = string
}

variable "enable_katib" {
  description = "Install Katib so `cnai tune --export-katib` experiments have a controller."
  type        = bool
}

variable "enable_kserve" {
  description = "Install cert-manager and KServe (Standard/raw Deployment mode) for the chart's InferenceService."
  type        = bool
}

variable "katib_chart_path" {
  description = "Local path to the Katib Helm chart (kubeflow/manifests experimental/helm/charts/katib at a pinned tag)."
  type        = string
}

variable "secret_revision" {
  description = "Revision of every write-only Secret payload; bump it to push rotated values."
  type        = number
}
