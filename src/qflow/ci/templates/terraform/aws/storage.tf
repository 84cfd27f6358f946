locals {
  bucket = var.artifact_bucket != "" ? var.artifact_bucket : "${var.name}-artifacts-${data.aws_caller_identity.current.account_id}"
}

resource "aws_s3_bucket" "artifacts" {
  bucket = local.bucket
}

resource "aws_s3_bucket_public_access_block" "artifacts" {
  bucket                  = aws_s3_bucket.artifacts.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_versioning" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "random_password" "db" {
  length  = 32
  special = false
}

resource "aws_db_subnet_group" "metadata" {
  name       = "${var.name}-metadata"
  subnet_ids = module.vpc.private_subnets
}

resource "aws_security_group" "metadata" {
  name        = "${var.name}-metadata"
  description = "PostgreSQL reachable from the cluster's nodes only"
  vpc_id      = module.vpc.vpc_id

  ingress {
    description     = "PostgreSQL from the EKS nodes"
    from_port       = 5432
    to_port         = 5432
    protocol        = "tcp"
    security_groups = [module.eks.node_security_group_id]
  }
}

resource "aws_db_instance" "metadata" {
  identifier                 = "${var.name}-metadata"
  engine                     = "postgres"
  engine_version             = "16"
  instance_class             = var.db_instance_class
  allocated_storage          = var.db_storage_gb
  storage_encrypted          = true
  db_name                    = "qflow"
  username                   = "qflow"
  password                   = random_password.db.result
  db_subnet_group_name       = aws_db_subnet_group.metadata.name
  vpc_security_group_ids     = [aws_security_group.metadata.id]
  backup_retention_period    = 7
  deletion_protection        = true
  skip_final_snapshot        = false
  final_snapshot_identifier  = "${var.name}-metadata-final"
  auto_minor_version_upgrade = true
}
