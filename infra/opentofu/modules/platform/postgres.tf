# CloudNativePG operator, then one Postgres cluster holding three databases:
# mlflow (tracking backend), argo (workflow archive) and iceberg (the SQL
# catalog PyIceberg uses; see docs/infra.md for why no REST catalog).

resource "helm_release" "cnpg_operator" {
  name             = "cnpg"
  repository       = "https://cloudnative-pg.github.io/charts"
  chart            = "cloudnative-pg"
  version          = "0.27.0"
  namespace        = var.cnpg_namespace
  create_namespace = true
  wait             = true

  values = [yamlencode({
    resources = {
      requests = { cpu = "100m", memory = "128Mi" }
      limits   = { cpu = "500m", memory = "512Mi" }
    }
  })]
}

resource "helm_release" "postgres" {
  name       = local.postgres_name
  repository = "https://cloudnative-pg.github.io/charts"
  chart      = "cluster"
  version    = "0.5.0"
  namespace  = kubernetes_namespace_v1.platform.metadata[0].name
  wait       = true

  values = [yamlencode({
    fullnameOverride = local.postgres_name
    type             = "postgresql"
    mode             = "standalone"
    cluster = {
      instances             = var.postgres_instances
      enableSuperuserAccess = false
      storage = {
        size         = var.postgres_storage_size
        storageClass = var.storage_class
      }
      resources = {
        requests = { cpu = "250m", memory = "512Mi" }
        limits   = { cpu = "1", memory = "1Gi" }
      }
      initdb = {
        database = local.databases.mlflow
        owner    = local.postgres_username
        secret   = { name = kubernetes_secret_v1.postgres.metadata[0].name }
        # Runs once, as superuser, right after the first database exists.
        postInitApplicationSQL = [
          "CREATE DATABASE ${local.databases.argo} OWNER ${local.postgres_username}",
          "CREATE DATABASE ${local.databases.iceberg} OWNER ${local.postgres_username}",
        ]
      }
    }
    backups = { enabled = false }
  })]

  depends_on = [helm_release.cnpg_operator]
}
