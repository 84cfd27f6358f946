module "eks" {
  source  = "terraform-aws-modules/eks/aws"
  version = "~> 20.24"

  cluster_name                             = "${var.name}-cluster"
  cluster_version                          = var.kubernetes_version
  vpc_id                                   = module.vpc.vpc_id
  subnet_ids                               = module.vpc.private_subnets
  cluster_endpoint_private_access          = true
  cluster_endpoint_public_access           = length(var.api_allowed_cidrs) > 0
  cluster_endpoint_public_access_cidrs     = var.api_allowed_cidrs
  enable_cluster_creator_admin_permissions = true
  enable_irsa                              = true

  eks_managed_node_groups = {
    workers = {
      instance_types = [var.node_instance_type]
      min_size       = var.node_count
      desired_size   = var.node_count
      max_size       = var.node_count * 2
    }
  }
}

# The QFlow server and the Ray pods reach the bucket through this role (IRSA), not keys.
data "aws_iam_policy_document" "artifacts" {
  statement {
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.artifacts.arn]
  }
  statement {
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.artifacts.arn}/*"]
  }
}

resource "aws_iam_policy" "artifacts" {
  name   = "${var.name}-artifacts"
  policy = data.aws_iam_policy_document.artifacts.json
}

data "aws_iam_policy_document" "irsa" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [module.eks.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${module.eks.oidc_provider}:sub"
      values   = ["system:serviceaccount:qflow:qflow"]
    }
  }
}

resource "aws_iam_role" "qflow" {
  name               = "${var.name}-workloads"
  assume_role_policy = data.aws_iam_policy_document.irsa.json
}

resource "aws_iam_role_policy_attachment" "qflow" {
  role       = aws_iam_role.qflow.name
  policy_arn = aws_iam_policy.artifacts.arn
}

locals {
  artifacts_url = "s3://${aws_s3_bucket.artifacts.bucket}"
  database_url  = "postgresql://qflow:${random_password.db.result}@${aws_db_instance.metadata.address}:${aws_db_instance.metadata.port}/qflow?sslmode=require"
  service_account_annotations = {
    "eks.amazonaws.com/role-arn" = aws_iam_role.qflow.arn
  }
}
