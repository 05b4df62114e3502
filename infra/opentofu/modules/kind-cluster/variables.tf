variable "cluster_name" {
  description = "Name of the local kind cluster (also its kubeconfig context, prefixed kind-)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$", var.cluster_name))
    error_message = "cluster_name must be a DNS label of at most 32 lowercase letters, digits and dashes."
  }
}

variable "node_image" {
  description = "kindest/node image, pinned by tag (and ideally digest), for the single control-plane node."
  type        = string

  validation {
    condition     = can(regex("^kindest/node:v[0-9]+\\.[0-9]+\\.[0-9]+(@sha256:[a-f0-9]{64})?$", var.node_image))
    error_message = "node_image must look like kindest/node:v1.33.1 (optionally @sha256:<digest>)."
  }
}

variable "host_ports" {
  description = "NodePorts to publish on the host's 127.0.0.1, as container port => host port."
  type        = map(number)
}
