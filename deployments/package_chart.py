"""`helm package` of the chart, with Helm's own engine (helm-python-sdk), after `helm lint`.

    python deployments/package_chart.py [DEST]              # `make package` -> dist/
    python deployments/package_chart.py --push oci://REGISTRY/charts [DEST]

Publishing needs a registry this project cannot reach from its own machines: `--push` is the
one step to run where one can (log in first, e.g. `helm registry login`; Helm's stored
credentials are used).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import helm_python as helm

HERE = Path(__file__).resolve().parent
CHART = HERE / "helm" / "agent-sre"


def package(dest: Path) -> Path:
    report = helm.lint(CHART, strict=True)
    errors = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    if errors:
        raise SystemExit(f"helm lint: {errors}")
    dest.mkdir(parents=True, exist_ok=True)
    return Path(helm.package(CHART, destination=dest))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", nargs="?", default=str(HERE.parent / "dist"))
    parser.add_argument("--push", metavar="oci://REGISTRY/PATH", help="push the archive there")
    args = parser.parse_args(argv)
    archive = package(Path(args.dest))
    print(f"packaged {archive}")
    if args.push:
        helm.push(archive, args.push)
        print(f"pushed to {args.push}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
