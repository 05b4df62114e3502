# --- state ---

variable "state_passphrase" {
  description = "Passphrase the state and plan files are encrypted with (PBKDF2 -> AES-GCM). Keep it in a password manager; losing it loses the state."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.state_passphrase) >= 16
    error_message = "state_passphrase must be at least 16 characters."
  }
}

# --- cluster ---

variable "create_kind_cluster" {
  description = "Create a local one-node kind cluster (needs Docker) instead of using kubeconfig_path."
  type        = bool
  default     = false
}

variable "kind_cluster_name" {
  description = "Name of the kind cluster when create_kind_cluster is true."
  type        = string
  default     = "cnai"
}

variable "kind_node_image" {
  description = "kindest/node image of the kind cluster, pinned by tag."
  type        = string
  default     = "kindest/node:v1.33.1"
}

variable "kubeconfig_path" {
  description = "kubeconfig of an existing cluster (ignored when create_kind_cluster is true)."
  type        = string
  default     = "~/.kube/config"
}

variable "kubeconfig_context" {
  description = "Context in kubeconfig_path to use; empty uses the current context."
  type        = string
  default     = ""
}

# --- namespaces ---

variable "platform_namespace" {
  description = "Namespace for Postgres, the object store, MLflow, Argo Workflows, Argo Events and KubeRay."
  type        = string
  default     = "cnai-platform"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.platform_namespace))
    error_message = "platform_namespace must be a DNS label."
  }
}

variable "pipeline_namespace" {
  description = "Namespace the retrain workflows, RayJobs, EventBus, EventSources and Sensor run in."
  type        = string
  default     = "cnai"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.pipeline_namespace))
    error_message = "pipeline_namespace must be a DNS label."
  }
}

variable "cnpg_namespace" {
  description = "Namespace of the CloudNativePG operator."
  type        = string
  default     = "cnpg-system"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.cnpg_namespace))
    error_message = "cnpg_namespace must be a DNS label."
  }
}

# --- storage ---

variable "storage_class" {
  description = "StorageClass for every volume; empty uses the cluster's default class."
  type        = string
  default     = ""
}

variable "postgres_instances" {
  description = "Postgres instances (1 primary + replicas) in the CloudNativePG cluster."
  type        = number
  default     = 1

  validation {
    condition     = var.postgres_instances >= 1 && var.postgres_instances <= 5 && floor(var.postgres_instances) == var.postgres_instances
    error_message = "postgres_instances must be a whole number from 1 to 5."
  }
}

variable "postgres_storage_size" {
  description = "Volume size of each Postgres instance, as a Kubernetes quantity."
  type        = string
  default     = "5Gi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi|Ti)$", var.postgres_storage_size))
    error_message = "postgres_storage_size must look like 5Gi."
  }
}

variable "object_store" {
  description = "seaweedfs: install an S3-compatible store in the cluster; external: use external_s3."
  type        = string
  default     = "seaweedfs"

  validation {
    condition     = contains(["seaweedfs", "external"], var.object_store)
    error_message = "object_store must be seaweedfs or external."
  }
}

variable "object_store_size" {
  description = "Volume size of the in-cluster object store (object_store = seaweedfs)."
  type        = string
  default     = "20Gi"

  validation {
    condition     = can(regex("^[0-9]+(Mi|Gi|Ti)$", var.object_store_size))
    error_message = "object_store_size must look like 20Gi."
  }
}

variable "external_s3" {
  description = "Endpoint URL and region of an existing S3-compatible service (object_store = external); the four buckets must exist."
  type = object({
    endpoint = string
    region   = string
  })
  default = { endpoint = "", region = "us-east-1" }

  validation {
    condition     = var.external_s3.endpoint == "" || can(regex("^https?://[^/]+/?$", var.external_s3.endpoint))
    error_message = "external_s3.endpoint must be an http(s)://host[:port] URL."
  }

  validation {
    condition     = var.object_store != "external" || var.external_s3.endpoint != ""
    error_message = "external_s3.endpoint is required when object_store is external."
  }
}

variable "external_s3_access_key_id" {
  description = "Access key id for external_s3 (object_store = external)."
  type        = string
  default     = ""
  sensitive   = true
}

variable "external_s3_secret_access_key" {
  description = "Secret access key for external_s3 (object_store = external)."
  type        = string
  default     = ""
  sensitive   = true
}

variable "bucket_prefix" {
  description = "Prefix of the buckets <prefix>-mlflow, -warehouse, -checkpoints and -argo."
  type        = string
  default     = "cnai"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,40}$", var.bucket_prefix))
    error_message = "bucket_prefix must be 2-41 lowercase letters, digits or dashes."
  }
}

# --- access ---

variable "argo_server_auth_mode" {
  description = "Argo Server auth mode: client (bearer token), sso, or server (no login: local clusters only; refused with expose = ingress)."
  type        = string
  default     = "client"

  validation {
    condition     = contains(["client", "sso", "server"], var.argo_server_auth_mode)
    error_message = "argo_server_auth_mode must be client, sso or server."
  }
}

variable "expose" {
  description = "How the Argo UI, MLflow and the webhooks are reached: cluster (port-forward), nodeport (fixed NodePorts; what kind maps to localhost) or ingress (hosts under public_domain)."
  type        = string
  default     = "cluster"

  validation {
    condition     = contains(["cluster", "nodeport", "ingress"], var.expose)
    error_message = "expose must be cluster, nodeport or ingress."
  }

  validation {
    condition     = var.expose != "ingress" || var.public_domain != ""
    error_message = "public_domain is required when expose is ingress."
  }
}

variable "public_domain" {
  description = "DNS suffix of the ingress hosts argo.<domain>, mlflow.<domain> and events.<domain> (expose = ingress)."
  type        = string
  default     = ""

  validation {
    condition     = var.public_domain == "" || can(regex("^([a-z0-9]([-a-z0-9]*[a-z0-9])?\\.)+[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.public_domain))
    error_message = "public_domain must be a DNS name such as ml.example.com."
  }
}

variable "ingress_class_name" {
  description = "IngressClass of the ingresses (expose = ingress); empty uses the cluster default."
  type        = string
  default     = ""
}

# --- optional components ---

variable "enable_katib" {
  description = "Install Katib so experiments from `cnai tune --export-katib` have a controller."
  type        = bool
  default     = false
}

variable "enable_kserve" {
  description = "Install KServe (Standard/raw Deployment mode, with cert-manager) so the pipeline chart's InferenceService (serving.enabled) can serve the champion."
  type        = bool
  default     = false
}

variable "katib_chart_path" {
  description = "Path to kubeflow/manifests experimental/helm/charts/katib checked out at the tag with chart version 0.19.0 (enable_katib)."
  type        = string
  default     = ""

  validation {
    condition     = !var.enable_katib || var.katib_chart_path != ""
    error_message = "katib_chart_path is required when enable_katib is true."
  }
}

# --- pipeline ---

variable "pipeline_image_repository" {
  description = "Repository of the pipeline image."
  type        = string
  default     = "ghcr.io/cnai-dev/cnai-pipeline"
}

variable "pipeline_image_tag" {
  description = "Tag of the pipeline image (a release tag or a git SHA)."
  type        = string
  default     = "0.1.0"

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.pipeline_image_tag))
    error_message = "pipeline_image_tag must be a valid image tag."
  }
}

variable "github_webhook_secret" {
  description = "Secret GitHub signs push deliveries with; empty generates one (read it with `tofu output -raw github_webhook_secret`)."
  type        = string
  default     = ""
  sensitive   = true
}

variable "data_webhook_token" {
  description = "Bearer token callers of the data-updated webhook send; empty generates one."
  type        = string
  default     = ""
  sensitive   = true
}

variable "secret_revision" {
  description = "Revision of the write-only Secret payloads; bump it after changing a secret input to push the new values."
  type        = number
  default     = 1

  validation {
    condition     = var.secret_revision >= 1 && floor(var.secret_revision) == var.secret_revision
    error_message = "secret_revision must be a whole number >= 1."
  }
}
