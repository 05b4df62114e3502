# OpenTofu only: the encryption block below is an OpenTofu feature. 1.8 brought
# variables in the encryption block; 1.11 brought the write-only attributes
# (data_wo) every Secret here is written with.
terraform {
  required_version = ">= 1.11.0"

  required_providers {
    helm = {
      source  = "hashicorp/helm"
      version = "~> 3.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 3.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
    kind = {
      source  = "tehcyx/kind"
      version = "~> 0.11"
    }
  }

  # State and plan files hold generated passwords: both are encrypted with a
  # key derived from var.state_passphrase, and unencrypted ones are refused.
  encryption {
    key_provider "pbkdf2" "passphrase" {
      passphrase = var.state_passphrase
    }

    method "aes_gcm" "default" {
      keys = key_provider.pbkdf2.passphrase
    }

    state {
      method   = method.aes_gcm.default
      enforced = true
    }

    plan {
      method   = method.aes_gcm.default
      enforced = true
    }
  }
}
