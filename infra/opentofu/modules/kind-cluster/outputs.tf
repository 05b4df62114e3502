output "endpoint" {
  description = "API server URL of the kind cluster."
  value       = kind_cluster.this.endpoint
}

output "client_certificate" {
  description = "PEM client certificate for the cluster admin."
  value       = kind_cluster.this.client_certificate
  sensitive   = true
}

output "client_key" {
  description = "PEM client key for the cluster admin."
  value       = kind_cluster.this.client_key
  sensitive   = true
}

output "cluster_ca_certificate" {
  description = "PEM CA certificate of the API server."
  value       = kind_cluster.this.cluster_ca_certificate
}

output "kubeconfig_path" {
  description = "Path of the kubeconfig file kind wrote."
  value       = kind_cluster.this.kubeconfig_path
}
