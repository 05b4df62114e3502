# From an empty cluster (or none: create_kind_cluster) to a webhook URL that
# retrains on push: kind cluster (optional) -> platform services -> pipeline.

locals {
  # NodePort of each endpoint and the localhost port kind publishes it on.
  node_ports = { argo = 32746, mlflow = 30500, github = 32000, data = 32001 }
  # MLflow on 15000, not 5000: macOS's AirPlay receiver holds port 5000.
  host_ports = { argo = 2746, mlflow = 15000, github = 12000, data = 12001 }

  webhook_host = var.public_domain == "" ? "" : "events.${var.public_domain}"
}

module "kind_cluster" {
  source = "./modules/kind-cluster"
  count  = var.create_kind_cluster ? 1 : 0

  cluster_name = var.kind_cluster_name
  node_image   = var.kind_node_image
  host_ports   = { for name, port in local.node_ports : tostring(port) => local.host_ports[name] }
}

module "platform" {
  source = "./modules/platform"

  platform_namespace            = var.platform_namespace
  pipeline_namespace            = var.pipeline_namespace
  cnpg_namespace                = var.cnpg_namespace
  storage_class                 = var.storage_class
  postgres_instances            = var.postgres_instances
  postgres_storage_size         = var.postgres_storage_size
  object_store                  = var.object_store
  object_store_size             = var.object_store_size
  external_s3                   = var.external_s3
  external_s3_access_key_id     = var.external_s3_access_key_id
  external_s3_secret_access_key = var.external_s3_secret_access_key
  bucket_prefix                 = var.bucket_prefix
  argo_server_auth_mode         = var.argo_server_auth_mode
  expose                        = var.expose
  node_ports                    = { argo = local.node_ports.argo, mlflow = local.node_ports.mlflow }
  public_domain                 = var.public_domain
  ingress_class_name            = var.ingress_class_name
  enable_katib                  = var.enable_katib
  katib_chart_path              = var.katib_chart_path
  enable_kserve                 = var.enable_kserve
  secret_revision               = var.secret_revision

  depends_on = [module.kind_cluster]
}

module "pipeline" {
  source = "./modules/pipeline"

  namespace             = module.platform.pipeline_namespace
  image_repository      = var.pipeline_image_repository
  image_tag             = var.pipeline_image_tag
  mlflow_tracking_uri   = module.platform.mlflow_internal_url
  s3_endpoint           = module.platform.s3_endpoint
  s3_region             = module.platform.s3_region
  warehouse_bucket      = module.platform.buckets["warehouse"]
  checkpoint_bucket     = module.platform.buckets["checkpoints"]
  s3_access_key_id      = module.platform.s3_access_key_id
  s3_secret_access_key  = module.platform.s3_secret_access_key
  iceberg_catalog_uri   = module.platform.iceberg_catalog_uri
  github_webhook_secret = var.github_webhook_secret
  data_webhook_token    = var.data_webhook_token
  expose                = var.expose
  node_ports            = { github = local.node_ports.github, data = local.node_ports.data }
  webhook_host          = local.webhook_host
  ingress_class_name    = var.ingress_class_name
  secret_revision       = var.secret_revision

  # The chart's WorkflowTemplate, EventBus, EventSources and Sensor need the
  # CRDs the platform charts install.
  depends_on = [module.platform]
}
