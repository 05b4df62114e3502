# Optional Katib, so experiments exported by `cnai tune --export-katib` have
# a controller. Katib publishes no Helm repository: the chart is read from a
# checkout of kubeflow/manifests (experimental/helm/charts/katib) at the tag
# whose Chart.yaml says the version pinned here.
resource "helm_release" "katib" {
  count            = var.enable_katib ? 1 : 0
  name             = "katib"
  chart            = var.katib_chart_path
  version          = "0.19.0"
  namespace        = "kubeflow"
  create_namespace = true
  wait             = true
}
