"""Audit the locked dependencies for known vulnerabilities with pip-audit.

Fails (exit 1) when pip-audit reports a vulnerable pin. When no vulnerability service can be
reached (this build machine reaches only the package mirror), it says so and exits 0 unless
``--strict`` is given: an audit that could not run is reported, never mistaken for a pass.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lock", default=str(ROOT / "requirements-dev.lock"))
    parser.add_argument("--strict", action="store_true", help="fail when the audit cannot run")
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    proc = subprocess.run(
        [
            str(bin_dir / "pip-audit"),
            "-r",
            args.lock,
            "--no-deps",
            "--disable-pip",
            "--progress-spinner",
            "off",
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:
        report = {}
    deps = report.get("dependencies", [])
    vulnerable = [d for d in deps if d.get("vulns")]
    audited = [d for d in deps if "skip_reason" not in d]
    for d in vulnerable:
        ids = ", ".join(v["id"] for v in d["vulns"])
        print(f"VULNERABLE {d['name']} {d['version']}: {ids}")
    if vulnerable:
        return 1
    if not audited:
        print("pip-audit could not reach a vulnerability service; dependencies NOT audited")
        print((proc.stderr or "").strip().splitlines()[-1:] or "")
        return 1 if args.strict else 0
    print(f"pip-audit: {len(audited)} pinned dependencies, no known vulnerabilities")
    return 0


if __name__ == "__main__":
    sys.exit(main())
