#!/usr/bin/env bash
# End to end on a local kind cluster: tofu apply -> build and load the image ->
# a signed GitHub push -> the Workflow succeeds -> models:/digits-classifier@champion.
#
# NOT RUN BY `make test` AND NEVER RUN ON THE BUILD MACHINE: it needs Docker, kind,
# OpenTofu >= 1.11 and internet access to the chart and image registries, none of
# which the machine this project is developed on has. There it is only checked
# by `bash -n` and ShellCheck (tests/test_kind_e2e_script.py). docs/operations.md lists the same
# steps for doing them by hand.
#
# Usage (from the repository root):
#   TF_VAR_state_passphrase='a long passphrase' scripts/kind-e2e.sh
# Settings (environment, all optional):
#   CNAI_E2E_CLUSTER   kind cluster name            (default cnai)
#   CNAI_E2E_IMAGE     image repository to build    (default cnai-pipeline-local)
#   CNAI_E2E_TAG       image tag                    (default e2e-<git short sha>)
#   CNAI_E2E_TIMEOUT   seconds to wait for the run  (default 5400)
#   CNAI_E2E_KEEP      1: keep the cluster afterwards (default: keep; run
#                      `tofu destroy` yourself, see docs/operations.md section 6)
set -euo pipefail

cluster="${CNAI_E2E_CLUSTER:-cnai}"
image="${CNAI_E2E_IMAGE:-cnai-pipeline-local}"
tag="${CNAI_E2E_TAG:-e2e-$(git rev-parse --short HEAD 2>/dev/null || echo dev)}"
timeout_s="${CNAI_E2E_TIMEOUT:-5400}"
namespace=cnai
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tofu_dir="$repo_root/infra/opentofu"

say() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'kind-e2e: %s\n' "$*" >&2; exit 1; }

for tool in docker kind tofu kubectl curl openssl python3; do
  command -v "$tool" >/dev/null || die "$tool is not on the PATH"
done
[ -n "${TF_VAR_state_passphrase:-}" ] || die "set TF_VAR_state_passphrase (at least 16 characters)"

say "1/7 the chart carries the current pipeline and events"
(cd "$repo_root" && python3 -m cnai.chart check) || die "run 'make chart' and commit the copies first"

vars="$tofu_dir/e2e.auto.tfvars"
cat >"$vars" <<EOF
create_kind_cluster       = true
kind_cluster_name         = "$cluster"
expose                    = "nodeport"
argo_server_auth_mode     = "server"
pipeline_image_repository = "$image"
pipeline_image_tag        = "$tag"
EOF

say "2/7 tofu init, then the kind cluster alone (the providers need its credentials)"
(cd "$tofu_dir" && tofu init -input=false)
(cd "$tofu_dir" && tofu apply -input=false -auto-approve -target=module.kind_cluster)

say "3/7 build the pipeline image and load it into kind (no registry involved)"
docker build -t "$image:$tag" "$repo_root"
kind load docker-image "$image:$tag" --name "$cluster"

say "4/7 tofu apply: platform and pipeline (10-20 minutes)"
(cd "$tofu_dir" && tofu apply -input=false -auto-approve)
export KUBECONFIG="${KUBECONFIG:-$HOME/.kube/config}"
kubectl config use-context "kind-$cluster" >/dev/null
kubectl -n "$namespace" wait --for=condition=Ready pod -l eventsource-name=cnai-github --timeout=600s
kubectl -n "$namespace" wait --for=condition=Ready pod -l sensor-name=cnai-retrain --timeout=600s

say "5/7 send a signed GitHub push to the event source"
webhook_url="$(cd "$tofu_dir" && tofu output -raw github_webhook_url)"
secret="$(cd "$tofu_dir" && tofu output -raw github_webhook_secret)"
sha="$(git -C "$repo_root" rev-parse HEAD 2>/dev/null || echo 0123456789abcdef0123456789abcdef01234567)"
body="$(python3 - "$sha" <<'PY'
import json, sys
print(json.dumps({
    "ref": "refs/heads/main", "after": sys.argv[1], "deleted": False,
    "repository": {"full_name": "cnai-dev/cnai", "name": "cnai", "owner": {"login": "cnai-dev"}},
    "commits": [{"id": sys.argv[1], "added": [], "removed": [], "modified": ["pipelines/retrain.py"]}],
    "head_commit": {"id": sys.argv[1]},
}, separators=(",", ":")))
PY
)"
signature="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" | sed 's/^.*= //')"
started="$(date +%s)"
curl -fsS -X POST "$webhook_url" \
  -H 'Content-Type: application/json' \
  -H 'X-GitHub-Event: push' \
  -H "X-GitHub-Delivery: e2e-$started" \
  -H "X-Hub-Signature-256: $signature" \
  --data-binary "$body" >/dev/null

say "6/7 wait for the Workflow the Sensor submits to succeed"
workflow=""
while [ -z "$workflow" ]; do
  [ $(( $(date +%s) - started )) -lt 300 ] || die "no Workflow 5 minutes after the push (kubectl -n $namespace logs -l sensor-name=cnai-retrain)"
  workflow="$(kubectl -n "$namespace" get workflows -l events.argoproj.io/sensor=cnai-retrain \
    --sort-by=.metadata.creationTimestamp -o jsonpath='{.items[-1:].metadata.name}' 2>/dev/null || true)"
  sleep 5
done
echo "workflow $workflow" >&2
while :; do
  phase="$(kubectl -n "$namespace" get workflow "$workflow" -o jsonpath='{.status.phase}')"
  case "$phase" in
    Succeeded) break ;;
    Failed|Error) die "workflow $workflow ended $phase (kubectl -n $namespace get workflow $workflow -o yaml)" ;;
  esac
  [ $(( $(date +%s) - started )) -lt "$timeout_s" ] || die "workflow $workflow still $phase after ${timeout_s}s"
  sleep 20
done

say "7/7 models:/digits-classifier@champion exists in MLflow"
mlflow_url="$(cd "$tofu_dir" && tofu output -raw mlflow_url)"
answer="$(curl -fsS "$mlflow_url/api/2.0/mlflow/registered-models/alias?name=digits-classifier&alias=champion")" \
  || die "no champion alias on digits-classifier at $mlflow_url"
version="$(printf '%s' "$answer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["model_version"]["version"])')"
echo "kind-e2e: OK: workflow $workflow succeeded; models:/digits-classifier@champion is version $version"
