"""The chart's admission webhook (`admission.enabled=true`) is what `syncd admission` and `syncd rbac`
print for the release's config, and the apiserver accepts every object of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.charts import Doc, find, render, syncd_config
from syncd.config import parse_config
from syncd.daemon.server.certs import hosts_of
from syncd.manifests import admission_policy as policy
from syncd.manifests import rbac, webhook

pytestmark = pytest.mark.integration
ON = "admission.enabled=true"


def _without_labels(doc: Doc) -> dict[str, Any]:
    return {**doc, "metadata": {k: v for k, v in doc["metadata"].items() if k != "labels"}}


@pytest.mark.parametrize("values", [[ON], [ON, "admission.port=9443", "admission.timeoutSeconds=1"]])
def test_the_webhook_and_its_service_are_what_syncd_admission_prints(helm_home: Path, values: list[str]) -> None:
    docs = render(helm_home, *values, namespace="platform")
    config = parse_config(syncd_config(docs))
    assert config.admission.enabled
    expected = {d["kind"]: d for d in webhook.manifests(config)}
    configuration = find(docs, "MutatingWebhookConfiguration")
    assert _without_labels(configuration) == expected["MutatingWebhookConfiguration"]
    service = find(docs, "Service", config.admission.service)
    assert {**_without_labels(service), "spec": {**service["spec"], "selector": {}}} == {
        **expected["Service"],
        "spec": {**expected["Service"]["spec"], "selector": {}},
    }
    # The chart's selector is its pods' (name and instance), narrower than the command's.
    assert expected["Service"]["spec"]["selector"].items() <= service["spec"]["selector"].items()
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    port = int(config.admission.address.rpartition(":")[2])
    assert {"name": "webhook", "containerPort": port, "protocol": "TCP"} in pod["ports"]


def test_the_webhook_rbac_is_what_syncd_rbac_prints(helm_home: Path) -> None:
    docs = render(helm_home, ON, namespace="platform")
    config = parse_config(syncd_config(docs))
    account = find(docs, "ServiceAccount")["metadata"]["name"]
    role = find(docs, "MutatingWebhookConfiguration")["metadata"]["name"]
    cluster, namespaced = rbac.webhook_rules(config)
    assert find(docs, "ClusterRole", f"{role}-webhook")["rules"] == cluster
    assert find(docs, "Role", f"{role}-webhook")["rules"] == namespaced
    printed = rbac.webhook_rbac(config, role, [{"kind": "ServiceAccount", "name": account, "namespace": "platform"}])
    for doc in printed:
        rendered = find(docs, doc["kind"], doc["metadata"]["name"])
        assert _without_labels(rendered) == doc


def test_the_admission_policy_admits_the_webhooks_secret_as_syncd_rbac_prints(helm_home: Path) -> None:
    docs = render(helm_home, ON, namespace="platform")
    config = parse_config(syncd_config(docs))
    account = find(docs, "ServiceAccount")["metadata"]["name"]
    role = find(docs, "MutatingWebhookConfiguration")["metadata"]["name"]
    expected = policy.manifests(
        config, role=role, granted=rbac.secret_names(config), namespace="platform", service_account=account
    )
    rendered = [d for d in docs if d["kind"].startswith("ValidatingAdmissionPolicy")]
    assert sorted((d["kind"], d["metadata"]["name"], json.dumps(d["spec"])) for d in rendered) == sorted(
        (d["kind"], d["metadata"]["name"], json.dumps(d["spec"])) for d in expected
    )
    assert "kubernetes.io/tls" in json.dumps([d["spec"] for d in rendered])


def test_off_by_default(helm_home: Path) -> None:
    docs = render(helm_home)
    assert not [d for d in docs if d["kind"] == "MutatingWebhookConfiguration"]
    assert "admission" not in syncd_config(docs)
    assert "kubernetes.io/tls" not in json.dumps(docs)


def test_cert_manager_issues_the_certificate_and_syncd_needs_no_rbac_for_it(helm_home: Path) -> None:
    docs = render(helm_home, ON, "admission.certManager.enabled=true", namespace="platform")
    config = parse_config(syncd_config(docs))
    assert config.admission.tls is not None
    configuration = find(docs, "MutatingWebhookConfiguration")
    name = configuration["metadata"]["name"]
    annotations = configuration["metadata"].pop("annotations")
    assert annotations == {"cert-manager.io/inject-ca-from": f"platform/{name}-webhook"}
    assert _without_labels(configuration) == webhook.configuration(config)
    certificate = find(docs, "Certificate")
    assert certificate["spec"]["dnsNames"] == hosts_of(
        service=config.admission.service, namespace="platform", url_host=None
    )
    assert certificate["spec"]["issuerRef"] == {"kind": "Issuer", "name": find(docs, "Issuer")["metadata"]["name"]}
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "webhook-tls")
    assert volume["secret"]["secretName"] == certificate["spec"]["secretName"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "webhook-tls")
    assert str(config.admission.tls.cert_file).startswith(mount["mountPath"] + "/")
    # syncd touches neither the Secret nor the configuration: no RBAC, no policy clause for them.
    assert rbac.webhook_rules(config) == ([], [])
    assert not [d for d in docs if d["metadata"]["name"].endswith("-webhook") and d["kind"] in ("ClusterRole", "Role")]
    assert "kubernetes.io/tls" not in json.dumps([d for d in docs if d["kind"].startswith("ValidatingAdmission")])


def test_an_issuer_of_your_own(helm_home: Path) -> None:
    issuer = 'json:admission.certManager.issuerRef={"kind": "ClusterIssuer", "name": "corp-ca"}'
    docs = render(helm_home, ON, "admission.certManager.enabled=true", issuer)
    assert find(docs, "Certificate")["spec"]["issuerRef"] == {"kind": "ClusterIssuer", "name": "corp-ca"}
    assert not [d for d in docs if d["kind"] == "Issuer"]
