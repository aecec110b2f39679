# MinIO in the cluster (both paths), from the chart's one MinIO manifest
# (charts/kubemr/templates/minio-*.yaml with minio=true): Deployment kubemr-system/minio (image
# kubemr/minio:dev, data in an emptyDir), Service minio (ClusterIP + NodePort 30900), credentials
# in Secret minio-credentials (keys accessKey, secretKey) in kubemr-system and default, generated
# once into $KUBEMR_CACHE/minio-credentials.env.
MINIO_NODE_PORT=30900

deploy_minio() {
  local cred="$KUBEMR_CACHE/minio-credentials.env"
  if [[ ! -f "$cred" ]]; then
    printf 'accessKey=kubemr\nsecretKey=%s\n' "$(openssl rand -hex 16)" > "$cred"
    chmod 600 "$cred"
  fi
  local ak sk
  ak=$(sed -n 's/^accessKey=//p' "$cred"); sk=$(sed -n 's/^secretKey=//p' "$cred")
  log "minio: deploying kubemr-system/minio ($MINIO_IMAGE_REF)"
  apply_minio_manifests "$ak" "$sk"
  wait_for 180 "minio ready" bash -c "'$CL/bin/kubectl' --kubeconfig '$CL/kubeconfig' -n kubemr-system rollout status deploy/minio --timeout=5s"
  local ip; ip=$(kctl -n kubemr-system get svc minio -o jsonpath='{.spec.clusterIP}')
  if [[ "$(cat "$CL/mode" 2>/dev/null)" == local ]]; then
    wait_for 60 "minio reachable from the host at $ip:9000" curl -sf "http://$ip:9000/minio/health/ready"
    log "minio: http://minio.kubemr-system:9000 in pods, http://$ip:9000 from the host"
  else
    log "minio: http://minio.kubemr-system:9000 in pods, http://$ip:9000 from the host where the service range is routed (else kubectl -n kubemr-system port-forward svc/minio 9000)"
  fi
}

apply_minio_manifests() {  # apply_minio_manifests ACCESS_KEY SECRET_KEY
  local ak=$1 sk=$2 ns
  kctl create namespace kubemr-system --dry-run=client -o yaml | kctl apply -f - >/dev/null
  for ns in kubemr-system default; do
    kctl -n "$ns" create secret generic minio-credentials \
      --from-literal=accessKey="$ak" --from-literal=secretKey="$sk" \
      --dry-run=client -o yaml | kctl apply -f - >/dev/null
  done
  minio_manifests | kctl apply -f - >/dev/null
}

minio_manifests() {  # the chart's minio Deployment and Service, as hack/cluster.sh runs them
  local helm="$CL/bin/helm"
  [[ -x "$helm" ]] || helm=helm   # the kind path: the one on PATH
  "$helm" template kubemr "$REPO_ROOT/charts/kubemr" --namespace kubemr-system \
    --set minio=true --set minioNodePort="$MINIO_NODE_PORT" --set minioImage="$MINIO_IMAGE" \
    --set storageSecret=minio-credentials \
    --show-only templates/minio-deployment.yaml --show-only templates/minio-service.yaml
}
