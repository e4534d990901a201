#!/usr/bin/env python3
"""MetalLB's own metallb-native.yaml, as the testbed installs it: without the validating webhook
(nothing here issues its certificate, and a webhook that cannot answer would refuse every pool), with
the controller told so, and without the BGPPeer CRD's conversion webhook (served by that same webhook
server; the testbed creates no BGPPeer, so no object ever needs converting). Everything else (CRDs, RBAC, the controller Deployment, the speaker
DaemonSet with memberlist) is upstream's as published.

    metallb-manifest.py MODULE_DIR > manifest.yaml
"""
import sys

import yaml

WEBHOOK_KINDS = {"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}


def main():
    module_dir = sys.argv[1]
    with open(f"{module_dir}/config/manifests/metallb-native.yaml") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    out = []
    for doc in docs:
        if doc["kind"] in WEBHOOK_KINDS:
            continue
        conversion = doc.get("spec", {}).get("conversion") if doc["kind"] == "CustomResourceDefinition" else None
        if conversion and conversion.get("strategy") == "Webhook":
            doc["spec"]["conversion"] = {"strategy": "None"}
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "controller":
            for c in doc["spec"]["template"]["spec"]["containers"]:
                c["args"] = c.get("args", []) + ["--webhook-mode=disabled", "--disable-cert-rotation"]
        out.append(doc)
    if not any(d["kind"] == "DaemonSet" for d in out) or not any(d["kind"] == "Deployment" for d in out):
        sys.exit("metallb-manifest.py: the manifest lacks the controller or the speaker")
    yaml.safe_dump_all(out, sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
