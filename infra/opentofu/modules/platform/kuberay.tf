# KubeRay operator: the train step's RayJob (distributed PyTorch DDP) needs it.
resource "helm_release" "kuberay_operator" {
  name       = "kuberay-operator"
  repository = "https://ray-project.github.io/kuberay-helm/"
  chart      = "kuberay-operator"
  version    = "1.7.0"
  namespace  = kubernetes_namespace_v1.platform.metadata[0].name
  wait       = true

  values = [yamlencode({
    resources = {
      requests = { cpu = "100m", memory = "128Mi" }
      limits   = { cpu = "500m", memory = "512Mi" }
    }
  })]
}
