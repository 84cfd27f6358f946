resource "google_container_cluster" "qflow" {
  name                     = "${var.name}-cluster"
  location                 = var.region
  network                  = google_compute_network.qflow.id
  subnetwork               = google_compute_subnetwork.qflow.id
  remove_default_node_pool = true
  initial_node_count       = 1
  deletion_protection      = false

  ip_allocation_policy {
    cluster_secondary_range_name  = "pods"
    services_secondary_range_name = "services"
  }

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  # Only these networks reach the cluster's API from outside (none: no public access).
  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.api_allowed_cidrs
      content {
        cidr_block   = cidr_blocks.value
        display_name = "allowed-${cidr_blocks.key}"
      }
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_container_node_pool" "workers" {
  name       = "workers"
  cluster    = google_container_cluster.qflow.id
  node_count = var.node_count

  node_config {
    machine_type = var.node_machine_type
    oauth_scopes = ["https://www.googleapis.com/auth/cloud-platform"]
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}

# The QFlow server and the Ray pods use the bucket as this service account (Workload Identity).
resource "google_service_account" "qflow" {
  account_id   = "${var.name}-workloads"
  display_name = "QFlow server and Ray workers"
  depends_on   = [google_project_service.enabled]
}

resource "google_storage_bucket_iam_member" "artifacts" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.qflow.email}"
}

resource "google_service_account_iam_member" "workload_identity" {
  service_account_id = google_service_account.qflow.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[qflow/qflow]"
}

locals {
  artifacts_url = "gs://${google_storage_bucket.artifacts.name}"
  database_url  = "postgresql://qflow:${random_password.db.result}@${google_sql_database_instance.metadata.private_ip_address}:5432/${google_sql_database.qflow.name}"
  service_account_annotations = {
    "iam.gke.io/gcp-service-account" = google_service_account.qflow.email
  }
}
