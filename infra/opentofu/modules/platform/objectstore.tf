# S3-compatible object store. MinIO's upstream is archived, so the in-cluster
# default is SeaweedFS (S3 gateway on the filer, one identity from a Secret,
# buckets created by the chart's post-install hook). object_store = external
# skips it and uses an existing bucket service instead.

locals {
  seaweedfs_values = {
    fullnameOverride = "seaweedfs"
    master = {
      replicas = 1
      data     = { type = "persistentVolumeClaim", size = "1Gi", storageClass = var.storage_class }
      logs     = { type = "emptyDir" }
    }
    volume = {
      replicas = 1
      dataDirs = [{
        name         = "data"
        type         = "persistentVolumeClaim"
        size         = var.object_store_size
        storageClass = var.storage_class
        maxVolumes   = 0
      }]
      logs = { type = "emptyDir" }
    }
    filer = {
      replicas = 1
      data     = { type = "persistentVolumeClaim", size = "1Gi", storageClass = var.storage_class }
      logs     = { type = "emptyDir" }
      s3 = {
        enabled              = true
        enableAuth           = true
        existingConfigSecret = local.secret_names.seaweedfs
        # The post-install bucket hook reads filer.s3.createBuckets (chart
        # 4.0.393 templates/post-install-bucket-hook.yaml), not s3.createBuckets.
        createBuckets = [for bucket in values(local.buckets) : { name = bucket }]
      }
    }
    s3 = { enabled = false }
  }
}

resource "helm_release" "seaweedfs" {
  count      = local.seaweedfs ? 1 : 0
  name       = "seaweedfs"
  repository = "https://seaweedfs.github.io/seaweedfs/helm"
  chart      = "seaweedfs"
  version    = "4.0.393"
  namespace  = kubernetes_namespace_v1.platform.metadata[0].name
  wait       = true

  values = [yamlencode(local.seaweedfs_values)]

  depends_on = [kubernetes_secret_v1.seaweedfs]
}
