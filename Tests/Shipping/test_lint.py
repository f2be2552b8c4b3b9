"""Lint over the repository (issue 11): hadolint on every Dockerfile, shellcheck on every shell script (and the
CI workflow's `run:` blocks), yamllint on every YAML file — files in git plus new, not ignored ones, so a file
added tomorrow is checked too. A failure lists each finding as `path:line:col RULE message`. Each checker is
first shown to fail on a known-bad input, so a silent no-op checker cannot pass.

Fixing a finding: change the file; where the rule is wrong for that line, silence it on that line with the
reason (`# shellcheck disable=SC2086  # word splitting wanted: ...`, `# hadolint ignore=DL3003`,
`# yamllint disable-line rule:line-length`). Generated YAML is fixed in its generator: the CRD's long
descriptions are folded by the operator's YAMLWriter."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from conftest import ROOT, tool, tracked

HOW_TO_FIX = ("fix each finding, or silence one line with a reason (see Tests/Shipping/test_lint.py); "
              "run `python3 -m pytest Tests/Shipping/test_lint.py` to check")


def relative(text: str) -> str:
    return text.replace(str(ROOT) + "/", "")


def fail_with_findings(checker: str, findings: list[str]) -> None:
    pytest.fail(f"{checker} found {len(findings)} problem(s):\n  " + "\n  ".join(findings) + f"\n{HOW_TO_FIX}",
                pytrace=False)


def shell_scripts() -> list:
    """`*.sh` plus every other text file whose first line is a sh/bash/dash shebang (e.g. `.ci/run`)."""
    scripts = set(tracked("*.sh"))
    for path in tracked():
        if path.is_file() and path.suffix not in (".py", ".swift", ".md"):
            try:
                with path.open("rb") as f:
                    first = f.readline(80)
            except OSError:
                continue
            if re.match(rb"#!\s*/(usr/)?bin/(env\s+)?(ba|da)?sh\b", first):
                scripts.add(path)
    return sorted(scripts)


def dockerfiles() -> list:
    return sorted(p for p in tracked("Dockerfile*", "**/Dockerfile*") if p.is_file())


def shellcheck_findings(paths: list, display=None) -> list[str]:
    """`path:line:col SCnnnn message` for every finding (gcc format: `path:line:col: level: message [SCnnnn]`)."""
    result = subprocess.run([tool("shellcheck"), "--format=gcc", *map(str, paths)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    findings = []
    for line in result.stdout.splitlines():
        m = re.match(r"(.+?):(\d+):(\d+): (\w+): (.*) \[(SC\d+)\]$", line)
        if m:
            path = display(m[1]) if display else relative(m[1])
            findings.append(f"{path}:{m[2]}:{m[3]} {m[6]} ({m[4]}) {m[5]}")
    if result.returncode != 0 and not findings:  # shellcheck itself failed (unreadable file, bad option)
        findings.append(f"shellcheck exited {result.returncode}: {relative(result.stderr.strip())}")
    return findings


def test_hadolint_on_every_dockerfile():
    files = dockerfiles()
    assert {p.name for p in files} >= {"Dockerfile.proxy", "Dockerfile.operator"}
    result = subprocess.run([tool("hadolint"), "--no-color", "--format", "tty", *map(str, files)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        # tty format: `path:line RULE level: message`
        findings = [relative(line) for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        fail_with_findings("hadolint (config: .hadolint.yaml)", findings)


def test_hadolint_flags_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:bookworm-slim\nRUN cd /tmp && apt-get install curl\n")
    result = subprocess.run([tool("hadolint"), "--no-color", str(bad)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0 and "DL3003" in result.stdout, result.stdout


def test_shellcheck_on_every_shell_script():
    scripts = shell_scripts()
    assert any(p.name == "test.sh" for p in scripts) and any(p.name == "run" for p in scripts)
    findings = shellcheck_findings(scripts)
    if findings:
        fail_with_findings("shellcheck", findings)


def test_shellcheck_on_the_workflow_run_blocks(tmp_path):
    workflows = tracked(".github/workflows/*.yml", ".github/workflows/*.yaml")
    assert workflows
    findings = []
    for workflow in workflows:
        for job_name, job in yaml.safe_load(workflow.read_text())["jobs"].items():
            for index, step in enumerate(job["steps"]):
                if "run" not in step:
                    continue
                # GitHub substitutes ${{ … }} before the shell runs; a placeholder word keeps the script valid.
                script = re.sub(r"\$\{\{[^}]*\}\}", "placeholder", step["run"])
                path = tmp_path / f"{workflow.stem}-{job_name}-{index}.sh"
                path.write_text("#!/bin/bash\nset -e\n" + script)
                where = f"{relative(str(workflow))} job {job_name} step {index} ({step.get('name', 'run')}), run line"
                # line numbers relative to the run block (2 lines of prologue were added)
                findings += [re.sub(r"^\S+?:(\d+):", lambda m: f"{where} {int(m[1]) - 2}:", f)
                             for f in shellcheck_findings([path], display=lambda _: "x")]
    if findings:
        fail_with_findings("shellcheck (workflow run blocks)", findings)


def test_shellcheck_flags_a_bad_script(tmp_path):
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/bash\nrm -rf $1/*\n")
    findings = shellcheck_findings([bad])
    assert any("SC2086" in f for f in findings), findings


def yamllint(files: list) -> subprocess.CompletedProcess:
    return subprocess.run([tool("yamllint"), "--strict", "-c", str(ROOT / ".yamllint.yaml"), "-f", "parsable",
                           *map(str, files)], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_yamllint_on_every_yaml_file():
    files = tracked("*.yml", "*.yaml")
    assert any(p.name == "docker-compose.yml" for p in files)
    assert any(p.name == "s3gateway.dev_encryptiongateways.yaml" for p in files)
    result = yamllint(files)
    if result.returncode != 0:
        # parsable format: `path:line:col: [level] message (rule)`
        findings = [relative(line) for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        fail_with_findings("yamllint (config: .yamllint.yaml)", findings)


def test_yamllint_flags_bad_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\na: 2\nb:   [1,2]\nc: " + "x " * 80 + "\n")
    result = yamllint([bad])
    assert result.returncode != 0
    for rule in ("key-duplicates", "colons", "line-length"):
        assert f"({rule})" in result.stdout, result.stdout
