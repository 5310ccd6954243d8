#!/bin/sh
# One-shot MinIO init (run by the minio-init service): create the data-lake
# bucket and its folders, apply the retention rules of lifecycle.json, and a
# least-privilege user for the pipeline. Safe to run again.
set -eu

mc alias set lake "http://minio:9000" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc mb --ignore-existing "lake/$LAKE_BUCKET"
mc ilm import "lake/$LAKE_BUCKET" < /minio/lifecycle.json
mc ilm ls "lake/$LAKE_BUCKET"

# The pipeline's user may read and write the lake bucket, nothing else.
cat > /tmp/lakehouse-policy.json <<POLICY
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
     "Resource": ["arn:aws:s3:::$LAKE_BUCKET"]},
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
     "Resource": ["arn:aws:s3:::$LAKE_BUCKET/*"]}
  ]
}
POLICY
mc admin policy create lake lakehouse-rw /tmp/lakehouse-policy.json 2>/dev/null || true
mc admin user add lake "$LAKEHOUSE_S3_ACCESS_KEY" "$LAKEHOUSE_S3_SECRET_KEY"
mc admin policy attach lake lakehouse-rw --user "$LAKEHOUSE_S3_ACCESS_KEY" 2>/dev/null || true
echo "bucket $LAKE_BUCKET ready"
