# QFlow team stack on Google Cloud, written by `qflow infra init gcp`.
terraform {
  required_version = ">= 1.5"
  required_providers {
    google     = { source = "hashicorp/google", version = "~> 5.40" }
    kubernetes = { source = "hashicorp/kubernetes", version = "~> 2.31" }
    helm       = { source = "hashicorp/helm", version = "~> 2.14" }
    random     = { source = "hashicorp/random", version = "~> 3.6" }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

data "google_client_config" "current" {}

provider "kubernetes" {
  host                   = "https://${google_container_cluster.qflow.endpoint}"
  cluster_ca_certificate = base64decode(google_container_cluster.qflow.master_auth[0].cluster_ca_certificate)
  token                  = data.google_client_config.current.access_token
}

provider "helm" {
  kubernetes {
    host                   = "https://${google_container_cluster.qflow.endpoint}"
    cluster_ca_certificate = base64decode(google_container_cluster.qflow.master_auth[0].cluster_ca_certificate)
    token                  = data.google_client_config.current.access_token
  }
}
