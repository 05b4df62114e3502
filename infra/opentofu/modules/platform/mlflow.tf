# MLflow tracking server: Postgres backend store, artifacts proxied by the
# server into the <prefix>-mlflow bucket, so pipeline pods only need the
# tracking URL (artifact root mlflow-artifacts:/) and no S3 keys for MLflow.

locals {
  mlflow_service = "mlflow.${var.platform_namespace}.svc.cluster.local"
  mlflow_host    = var.public_domain == "" ? "" : "mlflow.${var.public_domain}"
  mlflow_allowed_hosts = compact([
    "mlflow", "mlflow:5000",
    "mlflow.${var.platform_namespace}", "mlflow.${var.platform_namespace}:5000",
    local.mlflow_service, "${local.mlflow_service}:5000",
    "localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*",
    local.mlflow_host,
  ])
}

locals {
  mlflow_values = {
    backendStore = {
      databaseMigration       = true
      databaseConnectionCheck = true
      postgres = {
        enabled  = true
        host     = local.postgres_host
        port     = 5432
        database = local.databases.mlflow
      }
      # Username and password come from the Secret, never from values.
      existingDatabaseSecret = {
        name        = kubernetes_secret_v1.postgres.metadata[0].name
        usernameKey = "username"
        passwordKey = "password"
      }
    }
    artifactRoot = {
      proxiedArtifactStorage = true
      s3 = {
        enabled = true
        bucket  = local.buckets.mlflow
        existingSecret = {
          name                 = kubernetes_secret_v1.s3.metadata[0].name
          keyOfAccessKeyId     = "accesskey"
          keyOfSecretAccessKey = "secretkey"
        }
      }
    }
    extraEnvVars = {
      MLFLOW_S3_ENDPOINT_URL      = local.s3_endpoint
      AWS_DEFAULT_REGION          = local.s3_region
      MLFLOW_SERVER_ALLOWED_HOSTS = join(",", local.mlflow_allowed_hosts)
    }
    service = { type = "ClusterIP", port = 5000 }
    # MLflow's server has no login here: it is never put on an Ingress (reach
    # it with kubectl port-forward, or the kind NodePort on 127.0.0.1).
    ingress = { enabled = false }
    # The chart's container securityContext sets runAsUser 1001 (values.yaml)
    # and wins over the pod's: both say the same uid here.
    podSecurityContext = { runAsNonRoot = true, runAsUser = 1001, runAsGroup = 1001, fsGroup = 1001 }
    securityContext = {
      allowPrivilegeEscalation = false
      capabilities             = { drop = ["ALL"] }
      runAsNonRoot             = true
      runAsUser                = 1001
    }
    resources = {
      requests = { cpu = "250m", memory = "512Mi" }
      limits   = { cpu = "1", memory = "2Gi" }
    }
  }
}

resource "helm_release" "mlflow" {
  name       = "mlflow"
  repository = "https://community-charts.github.io/helm-charts"
  chart      = "mlflow"
  version    = "1.11.4"
  namespace  = kubernetes_namespace_v1.platform.metadata[0].name
  wait       = true
  timeout    = 900

  values = [yamlencode(local.mlflow_values)]

  depends_on = [helm_release.postgres, helm_release.seaweedfs]
}

# Fixed NodePort for MLflow when expose = nodeport (kind maps it to localhost).
resource "kubernetes_service_v1" "mlflow_nodeport" {
  count = var.expose == "nodeport" ? 1 : 0
  metadata {
    name      = "mlflow-nodeport"
    namespace = kubernetes_namespace_v1.platform.metadata[0].name
  }
  spec {
    type = "NodePort"
    selector = {
      "app.kubernetes.io/name"     = "mlflow"
      "app.kubernetes.io/instance" = helm_release.mlflow.name
    }
    port {
      name        = "http"
      port        = 5000
      target_port = 5000
      node_port   = var.node_ports["mlflow"]
    }
  }
}
