locals {
  bucket = var.artifact_bucket != "" ? var.artifact_bucket : "${var.name}-artifacts-${var.project_id}"
}

resource "google_storage_bucket" "artifacts" {
  name                        = local.bucket
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  versioning {
    enabled = true
  }
  depends_on = [google_project_service.enabled]
}

resource "random_password" "db" {
  length  = 32
  special = false
}

resource "google_sql_database_instance" "metadata" {
  name                = "${var.name}-metadata"
  database_version    = "POSTGRES_16"
  region              = var.region
  deletion_protection = true
  depends_on          = [google_service_networking_connection.sql, google_project_service.enabled]

  settings {
    tier      = var.db_tier
    disk_size = var.db_storage_gb
    ip_configuration {
      ipv4_enabled    = false
      private_network = google_compute_network.qflow.id
    }
    backup_configuration {
      enabled = true
    }
  }
}

resource "google_sql_database" "qflow" {
  name     = "qflow"
  instance = google_sql_database_instance.metadata.name
}

resource "google_sql_user" "qflow" {
  name     = "qflow"
  instance = google_sql_database_instance.metadata.name
  password = random_password.db.result
}
