# Optional KServe (enable_kserve) for the chart's InferenceService (serving.enabled),
# in Standard mode, KServe's name for what was called RawDeployment: a predictor is a
# plain Deployment + Service (+ HPA), with no Knative or Istio. Ingress creation is
# off: the predictor is reached in-cluster at <model>-predictor.<namespace>.svc.
# KServe's admission webhooks take their certificates from cert-manager, installed
# first at the version KServe v0.20.0's own installer pins (hack/setup/global-vars.env).
# Upstream tags these charts with a leading v (v0.20.0, v1.17.0); Helm matches an exact
# version against such tags as semver (registry GetTagMatchingVersionOrConstraint, the
# repository index's Get). Not applied anywhere yet: see docs/serving.md.
resource "helm_release" "cert_manager" {
  count            = var.enable_kserve ? 1 : 0
  name             = "cert-manager"
  repository       = "https://charts.jetstack.io"
  chart            = "cert-manager"
  version          = "1.17.0"
  namespace        = "cert-manager"
  create_namespace = true
  wait             = true

  values = [yamlencode({ crds = { enabled = true } })]
}

resource "helm_release" "kserve_crd" {
  count            = var.enable_kserve ? 1 : 0
  name             = "kserve-crd"
  repository       = "oci://ghcr.io/kserve/charts"
  chart            = "kserve-crd"
  version          = "0.20.0"
  namespace        = "kserve"
  create_namespace = true
  wait             = true

  depends_on = [helm_release.cert_manager]
}

resource "helm_release" "kserve" {
  count      = var.enable_kserve ? 1 : 0
  name       = "kserve-resources"
  repository = "oci://ghcr.io/kserve/charts"
  chart      = "kserve-resources"
  version    = "0.20.0"
  namespace  = "kserve"
  wait       = true

  values = [yamlencode({
    kserve = {
      controller = {
        deploymentMode = "Standard"
        gateway        = { disableIngressCreation = true }
      }
    }
  })]

  depends_on = [helm_release.kserve_crd]
}
