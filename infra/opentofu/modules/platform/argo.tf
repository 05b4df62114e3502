# Argo Workflows (v4 line; CRDs come from the chart's own templates: the
# minimal CRDs, crds.full = false, so no pre-install Job downloads them from
# GitHub) with the workflow archive in Postgres and the artifact repository in
# the object store, and Argo Events for the webhooks. The chart values live in
# locals so tests/test_cluster_values.py can check them against the charts.

locals {
  argo_host = var.public_domain == "" ? "" : "argo.${var.public_domain}"

  argo_workflows_values = {
    # argo-helm >= 1.0 defaults crds.full = true: a pre-install/pre-upgrade Job
    # that downloads the full CRDs from GitHub (charts/argo-workflows/values.yaml,
    # crds.full). The minimal CRDs ship inside the chart.
    crds = { install = true, keep = true, full = false }
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
    # The chart writes artifactRepository into the controller ConfigMap whenever
    # artifactRepository.s3 is set (workflow-controller-config-map.yaml); there
    # is no useDefaultArtifactRepo switch in current argo-helm.
    useStaticCredentials = true
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
  }

  argo_events_values = {
    crds = { install = true, keep = true }
    controller = {
      resources = {
        requests = { cpu = "50m", memory = "64Mi" }
        limits   = { cpu = "500m", memory = "256Mi" }
      }
    }
  }
}

resource "helm_release" "argo_workflows" {
  name       = "argo-workflows"
  repository = "https://argoproj.github.io/argo-helm"
  chart      = "argo-workflows"
  version    = "1.0.18"
  namespace  = kubernetes_namespace_v1.platform.metadata[0].name
  wait       = true

  # The controller exits until CloudNativePG has created the `argo` database
  # (Helm's wait for the cluster chart returns before the database exists), so
  # Helm waits up to 15 min for the controller to become ready.
  timeout = 900

  values = [yamlencode(local.argo_workflows_values)]

  lifecycle {
    # `server` auth mode lets anyone who reaches the UI run Workflows (pods that
    # mount the pipeline's Secrets) without logging in: never on a public ingress.
    precondition {
      condition     = !(var.argo_server_auth_mode == "server" && var.expose == "ingress")
      error_message = "argo_server_auth_mode = \"server\" (no login) cannot be combined with expose = \"ingress\": use client or sso, or expose = cluster/nodeport."
    }
  }

  depends_on = [helm_release.postgres, kubernetes_secret_v1.argo_artifacts]
}

resource "helm_release" "argo_events" {
  name       = "argo-events"
  repository = "https://argoproj.github.io/argo-helm"
  chart      = "argo-events"
  version    = "2.4.22"
  namespace  = kubernetes_namespace_v1.platform.metadata[0].name
  wait       = true

  values = [yamlencode(local.argo_events_values)]
}
