# Optional Katib, so experiments exported by `cnai tune --export-katib` have
# a controller. Katib publishes no Helm repository: the chart is read from a
# checkout of kubeflow/manifests (experimental/helm/charts/katib) at the tag
# whose Chart.yaml says the version pinned here.
#
# The chart renders Namespace/kubeflow itself when namespaceCreate.enabled (its
# default; templates/namespace/namespace.yaml), which collides with a namespace
# Helm or OpenTofu creates. The namespace is created here, with the label
# Katib's pod mutating webhook selects on, and the chart told not to create it.

locals {
  katib_namespace = "kubeflow"
  katib_values = {
    namespaceCreate = { enabled = false }
  }
}

resource "kubernetes_namespace_v1" "katib" {
  count = var.enable_katib ? 1 : 0
  metadata {
    name = local.katib_namespace
    labels = merge(local.pod_security, {
      "app.kubernetes.io/part-of"                      = "cnai"
      "katib.kubeflow.org/metrics-collector-injection" = "enabled"
    })
  }
}

resource "helm_release" "katib" {
  count     = var.enable_katib ? 1 : 0
  name      = "katib"
  chart     = var.katib_chart_path
  version   = "0.19.0"
  namespace = kubernetes_namespace_v1.katib[0].metadata[0].name
  wait      = true

  values = [yamlencode(local.katib_values)]
}
