# MinIO in the cluster: Deployment kubemr-system/minio (image kubemr/minio:dev,
# data in an emptyDir), Service minio (ClusterIP + NodePort 30900), credentials
# in Secret minio-credentials (keys accessKey, secretKey) in kubemr-system and default.
apply_minio_manifests() {  # apply_minio_manifests ACCESS_KEY SECRET_KEY
  local ak=$1 sk=$2 ns
  kctl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: kubemr-system}
YAML
  for ns in kubemr-system default; do
    kctl -n "$ns" create secret generic minio-credentials \
      --from-literal=accessKey="$ak" --from-literal=secretKey="$sk" \
      --dry-run=client -o yaml | kctl apply -f - >/dev/null
  done
  kctl apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: minio
  namespace: kubemr-system
  labels: {app.kubernetes.io/name: minio, app.kubernetes.io/part-of: kubemr}
spec:
  replicas: 1
  strategy: {type: Recreate}
  selector:
    matchLabels: {app.kubernetes.io/name: minio}
  template:
    metadata:
      labels: {app.kubernetes.io/name: minio, app.kubernetes.io/part-of: kubemr}
    spec:
      containers:
      - name: minio
        image: $MINIO_IMAGE
        imagePullPolicy: IfNotPresent
        args: [server, /data, --address, ":9000", --console-address, ":9001"]
        env:
        - name: MINIO_ROOT_USER
          valueFrom: {secretKeyRef: {name: minio-credentials, key: accessKey}}
        - name: MINIO_ROOT_PASSWORD
          valueFrom: {secretKeyRef: {name: minio-credentials, key: secretKey}}
        - {name: MINIO_BROWSER, value: "off"}
        - {name: MINIO_UPDATE, value: "off"}
        ports:
        - {name: s3, containerPort: 9000}
        readinessProbe:
          httpGet: {path: /minio/health/ready, port: 9000}
          periodSeconds: 2
        livenessProbe:
          httpGet: {path: /minio/health/live, port: 9000}
          periodSeconds: 10
          failureThreshold: 6
        volumeMounts:
        - {name: data, mountPath: /data}
      volumes:
      - name: data
        emptyDir: {}
---
apiVersion: v1
kind: Service
metadata:
  name: minio
  namespace: kubemr-system
  labels: {app.kubernetes.io/name: minio, app.kubernetes.io/part-of: kubemr}
spec:
  type: NodePort
  selector: {app.kubernetes.io/name: minio}
  ports:
  - {name: s3, port: 9000, targetPort: 9000, nodePort: 30900}
YAML
}

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
    log "minio: http://minio.kubemr-system:9000 in pods (kubectl -n kubemr-system port-forward svc/minio 9000 for the host)"
  fi
}
