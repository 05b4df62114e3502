# Argo Workflows (v4 line; CRDs come from the chart itself, nothing is
# downloaded at apply time) with the workflow archive in Postgres and the
# artifact repository in the object store, and Argo Events for the webhooks.

locals {
  argo_host = var.public_domain == "" ? "" : "argo.${var.public_domain}"
}

resource "helm_release" "argo_workflows" {
  name       = "argo-workflows"
  repository = "https://argoproj.github.io/argo-helm"
  chart      = "argo-workflows"
  version    = "2.0.1"
  namespace  = kubernetes_namespace_v1.platform.metadata[0].name
  wait       = true

  values = [yamlencode({
    crds = { install = true, keep = true }
    workflow = {
      # The pipeline chart brings its own least-privilege ServiceAccount.
      serviceAccount = { create = false }
      rbac           = { create = false }
    }
    controller = {
      workflowNamespaces = [var.pipeline_namespace]
      # Memoized steps keep their cache in ConfigMaps.
      rbac = { writeConfigMaps = true }
      persistence = {
        archive = true
        postgresql = {
          host           = local.postgres_host
          port           = 5432
          database       = local.databases.argo
          tableName      = "argo_workflows"
          userNameSecret = { name = kubernetes_secret_v1.postgres.metadata[0].name, key = "username" }
          passwordSecret = { name = kubernetes_secret_v1.postgres.metadata[0].name, key = "password" }
        }
      }
      resources = {
        requests = { cpu = "100m", memory = "256Mi" }
        limits   = { cpu = "1", memory = "1Gi" }
      }
    }
    server = {
      authModes       = [var.argo_server_auth_mode]
      serviceType     = var.expose == "nodeport" ? "NodePort" : "ClusterIP"
      serviceNodePort = var.expose == "nodeport" ? var.node_ports["argo"] : null
      ingress = {
        enabled          = var.expose == "ingress"
        ingressClassName = var.ingress_class_name
        hosts            = compact([local.argo_host])
        paths            = ["/"]
        pathType         = "Prefix"
      }
      resources = {
        requests = { cpu = "50m", memory = "128Mi" }
        limits   = { cpu = "500m", memory = "512Mi" }
      }
    }
    useDefaultArtifactRepo = true
    useStaticCredentials   = true
    artifactRepository = {
      archiveLogs = true
      s3 = {
        bucket          = local.buckets.argo
        endpoint        = local.s3_host
        insecure        = local.s3_insecure
        region          = local.s3_region
        accessKeySecret = { name = local.secret_names.argo_artifacts, key = "accesskey" }
        secretKeySecret = { name = local.secret_names.argo_artifacts, key = "secretkey" }
      }
    }
  })]

  depends_on = [helm_release.postgres, kubernetes_secret_v1.argo_artifacts]
}

resource "helm_release" "argo_events" {
  name       = "argo-events"
  repository = "https://argoproj.github.io/argo-helm"
  chart      = "argo-events"
  version    = "2.4.4"
  namespace  = kubernetes_namespace_v1.platform.metadata[0].name
  wait       = true

  values = [yamlencode({
    crds = { install = true, keep = true }
    controller = {
      resources = {
        requests = { cpu = "50m", memory = "64Mi" }
        limits   = { cpu = "500m", memory = "256Mi" }
      }
    }
  })]
}
