# A one-node kind cluster for trying the platform locally. NodePort services
# (Argo UI, MLflow, the two webhooks) are published on 127.0.0.1 so the
# outputs of the root module are plain http://localhost:PORT URLs.
resource "kind_cluster" "this" {
  name           = var.cluster_name
  node_image     = var.node_image
  wait_for_ready = true

  kind_config {
    kind        = "Cluster"
    api_version = "kind.x-k8s.io/v1alpha4"

    node {
      role = "control-plane"

      dynamic "extra_port_mappings" {
        for_each = var.host_ports
        content {
          container_port = tonumber(extra_port_mappings.key)
          host_port      = extra_port_mappings.value
          listen_address = "127.0.0.1"
          protocol       = "TCP"
        }
      }
    }
  }
}
