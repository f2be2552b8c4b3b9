"""The CI workflow: valid against the GitHub Actions workflow schema, runs on push and pull request, runs the
project's own test command and builds both images from their Dockerfiles."""

from __future__ import annotations

import subprocess

import yaml

from conftest import ROOT, tool

WORKFLOW = ROOT / ".github/workflows/ci.yml"


def check(path) -> subprocess.CompletedProcess:
    return subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True, timeout=120)


def test_workflow_matches_the_github_actions_schema():
    result = check(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_job_without_steps(tmp_path):
    bad = tmp_path / "ci.yml"
    bad.write_text("name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stepz: []\n")
    assert check(bad).returncode != 0


def test_workflow_builds_tests_and_builds_both_images():
    wf = yaml.safe_load(WORKFLOW.read_text())
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` key as true
    assert {"push", "pull_request"} <= set(triggers)
    runs = [step.get("run", "") for job in wf["jobs"].values() for step in job["steps"]]
    assert "make test" in runs and any(r.startswith("swift build") for r in runs)
    images = wf["jobs"]["images"]
    assert images["needs"] == "test"
    matrix = {entry["image"]: entry["dockerfile"] for entry in images["strategy"]["matrix"]["include"]}
    assert matrix == {"gateway": "Dockerfile.proxy", "operator": "Dockerfile.operator"}
    build = next(s for s in images["steps"] if s.get("uses", "").startswith("docker/build-push-action"))
    assert build["with"]["file"] == "${{ matrix.dockerfile }}"
    # The names the manifests use: config/default's operator image and the operator's --gateway-image.
    rendered = subprocess.run(["kubectl", "kustomize", str(ROOT / "config/default")], capture_output=True, text=True,
                              timeout=120, check=True).stdout
    for name in matrix:
        assert f"s3-encryption-gateway/{name}:" in rendered, name
    args = build["with"]["build-args"]
    for arg in ("VERSION", "CREATED", "REVISION", "SOURCE"):
        assert f"{arg}=" in args, f"build argument {arg} (OCI label) not passed"
    # The test job runs in the toolchain image the Dockerfiles build with.
    swift_image = wf["jobs"]["test"]["container"]["image"]
    from dockerfile import Dockerfile
    assert Dockerfile.read(ROOT / "Dockerfile.proxy").stages[0].base == swift_image
