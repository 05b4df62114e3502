# Both providers talk to the kind cluster when this configuration creates one,
# otherwise to the cluster of the given kubeconfig context.
locals {
  kind = var.create_kind_cluster ? {
    host                   = module.kind_cluster[0].endpoint
    client_certificate     = module.kind_cluster[0].client_certificate
    client_key             = module.kind_cluster[0].client_key
    cluster_ca_certificate = module.kind_cluster[0].cluster_ca_certificate
  } : null
}

provider "kind" {}

provider "kubernetes" {
  host                   = try(local.kind.host, null)
  client_certificate     = try(local.kind.client_certificate, null)
  client_key             = try(local.kind.client_key, null)
  cluster_ca_certificate = try(local.kind.cluster_ca_certificate, null)
  config_path            = var.create_kind_cluster ? null : pathexpand(var.kubeconfig_path)
  config_context         = var.create_kind_cluster || var.kubeconfig_context == "" ? null : var.kubeconfig_context
}

provider "helm" {
  kubernetes = {
    host                   = try(local.kind.host, null)
    client_certificate     = try(local.kind.client_certificate, null)
    client_key             = try(local.kind.client_key, null)
    cluster_ca_certificate = try(local.kind.cluster_ca_certificate, null)
    config_path            = var.create_kind_cluster ? null : pathexpand(var.kubeconfig_path)
    config_context         = var.create_kind_cluster || var.kubeconfig_context == "" ? null : var.kubeconfig_context
  }
}
