"""The `kubemr` command."""

from __future__ import annotations

import argparse
import json
import sys

from kubemr.errors import JobFailed, KubemrError

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def _run(args: argparse.Namespace) -> int:
    from kubemr.manifest import load_manifest
    from kubemr.runner import run_local

    job = load_manifest(args.manifest)
    if not args.local:
        raise KubemrError("only local runs are supported by `kubemr run` yet: add --local")

    def progress(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    result = run_local(job, workers=args.workers, overwrite=args.overwrite, progress=progress)
    if args.output == "json":
        print(json.dumps({"name": result.name, "output": result.output,
                          "counters": result.counters, "maps": result.maps,
                          "reduces": result.reduces}, indent=2))
    else:
        for group, values in sorted(result.counters.items()):
            for name, value in sorted(values.items()):
                print(f"{group}.{name}\t{value}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from kubemr.manifest import load_manifest

    job = load_manifest(args.manifest)
    print(f"{args.manifest}: MapReduceJob {job.name} is valid")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubemr", description="Kubernetes-native MapReduce.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a MapReduceJob manifest")
    run.add_argument("manifest", help="MapReduceJob YAML file")
    run.add_argument("--local", action="store_true", help="run on this machine, no cluster")
    run.add_argument("--workers", type=int, help="worker processes (default: one per core, >= 2)")
    run.add_argument("--overwrite", action="store_true", help="replace a committed output")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress messages")
    run.add_argument("-o", "--output", choices=["text", "json"], default="text")
    run.set_defaults(handler=_run)
    validate = commands.add_parser("validate", help="check a manifest without running it")
    validate.add_argument("manifest")
    validate.set_defaults(handler=_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except JobFailed as e:
        print(f"kubemr: job failed: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KubemrError as e:
        print(f"kubemr: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
