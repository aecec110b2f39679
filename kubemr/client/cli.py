"""The `kubemr` command."""

from __future__ import annotations

import argparse
import json
import os
import sys

from kubemr.errors import JobFailed, KubemrError

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def _run(args: argparse.Namespace) -> int:
    from kubemr.runtime.local import run_local
    from kubemr.spec.manifest import load_manifest

    job = load_manifest(args.manifest)
    if not args.local:
        raise KubemrError("`kubemr run` runs on this machine: add --local, or use `kubemr submit` "
                          "to run on the cluster")

    def progress(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    result = run_local(job, workers=args.workers, overwrite=args.overwrite, progress=progress,
                       logs=args.logs)
    if args.output == "json":
        print(json.dumps({"name": result.name, "output": result.output,
                          "counters": result.counters, "maps": result.maps,
                          "reduces": result.reduces,
                          **({"logs": result.logs} if result.logs else {})}, indent=2))
    else:
        for group, values in sorted(result.counters.items()):
            for name, value in sorted(values.items()):
                print(f"{group}.{name}\t{value}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from kubemr.spec.manifest import load_manifest

    job = load_manifest(args.manifest)
    print(f"{args.manifest}: MapReduceJob {job.name} is valid")
    return 0


def _cluster():
    from kubemr.client.cluster import Cluster

    return Cluster()


def _print(args: argparse.Namespace, data, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if args.output == "json" else text)


def _wait(args: argparse.Namespace, namespace: str, name: str) -> int:
    from kubemr.client.sdk import Job

    job = Job(name, namespace, _cluster())
    job.wait(timeout=args.timeout, progress=sys.stderr.isatty() or args.progress)
    print(f"mapreducejob {namespace}/{name} succeeded", file=sys.stderr)
    return 0


def _submit_class(args: argparse.Namespace) -> int:
    """Submit a Python job class: a Pipeline subclass, or a class with mapper/reducer methods."""
    from kubemr.client.sdk import Pipeline, Step, submit
    from kubemr.engine.usercode import UserCodeError, _import_path

    cls = _import_path("mapper", args.manifest)
    if not isinstance(cls, type):
        raise UserCodeError(f"{args.manifest} is not a class (nor a manifest file)")
    if not args.input or not args.output_uri:
        raise KubemrError("submitting a job class needs --input and --output-uri")
    instance = cls()
    if hasattr(instance, "setup"):
        instance.setup()
    namespace = args.namespace or "default"
    options = {"namespace": namespace, "local": args.local}
    if isinstance(instance, Pipeline):
        job = instance.run(args.input, args.output_uri, name=args.name, **options)
    else:
        step = Step(**{role: getattr(instance, role) for role in
                       ("mapper", "reducer", "combiner", "partitioner")
                       if hasattr(instance, role)}, reducers=args.reducers)
        job = submit(step.mapper, step.reducer, combiner=step.combiner,
                     partitioner=step.partitioner, reducers=step.reducers, input=args.input,
                     output=args.output_uri, name=args.name, **options)
        if args.wait and not args.local:
            return _wait(args, namespace, job.name)
    print(f"mapreducejob {namespace}/{job.name} {'done' if args.local else 'created'}",
          file=sys.stderr)
    return 0


def _submit(args: argparse.Namespace) -> int:
    from kubemr.spec.manifest import load_manifest

    if not args.manifest.endswith((".yaml", ".yml", ".json")) and ":" in args.manifest:
        return _submit_class(args)
    job = load_manifest(args.manifest)
    manifest = job.to_manifest()
    manifest["metadata"]["namespace"] = args.namespace or job.namespace
    if "uris" in manifest["spec"]["input"] and len(manifest["spec"]["input"]["uris"]) == 1:
        manifest["spec"]["input"]["uri"] = manifest["spec"]["input"].pop("uris")[0]
    _cluster().create_job(manifest)
    namespace = manifest["metadata"]["namespace"]
    print(f"mapreducejob {namespace}/{job.name} created", file=sys.stderr)
    return _wait(args, namespace, job.name) if args.wait else 0


def _list(args: argparse.Namespace) -> int:
    jobs = _cluster().list_jobs(None if args.all_namespaces else args.namespace or "default")
    rows = [[j["metadata"]["namespace"], j["metadata"]["name"],
             (j.get("status") or {}).get("phase", "Pending"),
             (j.get("status") or {}).get("mapsDone", "-"),
             (j.get("status") or {}).get("reducesDone", "-")] for j in jobs]
    data = [dict(zip(["namespace", "name", "phase", "maps", "reduces"], r, strict=True))
            for r in rows]
    _print(args, data, _table(["NAMESPACE", "NAME", "PHASE", "MAPS", "REDUCES"], rows))
    return 0


def _describe(args: argparse.Namespace) -> int:
    cluster = _cluster()
    namespace = args.namespace or "default"
    job = cluster.get_job(namespace, args.job)
    status = job.get("status") or {}
    attempts = cluster.attempts(namespace, args.job)
    rows = []
    for a in attempts:
        counters = ((a.record or {}).get("counters") or {}).get("kubemr", {})
        records_in = counters.get("map_input_records", counters.get(
            "reduce_input_groups", counters.get("tree_input_groups", "")))
        records_out = counters.get("map_output_records", counters.get(
            "reduce_output_records", counters.get("tree_output_records", "")))
        local = ""
        if a.task_type == "map" and a.record:
            nodes = a.record.get("dataNodes") or [a.record.get("dataNode")]
            local = "yes" if None in nodes or a.node in nodes else "no"
        name = a.name
        if a.task_type == "combine" and a.record and "level" in a.record:
            name += f" (level {a.record['level']})"
        rows.append([name, str(a.attempt), a.phase, a.node or "-", local,
                     f"{a.seconds:.1f}s" if a.seconds is not None else "-", str(records_in),
                     str(records_out), (a.error.strip().splitlines() or [""])[-1][:60]])
    header = (f"Name:      {namespace}/{args.job}\nPhase:     {status.get('phase', 'Pending')}\n"
              f"Maps:      {status.get('mapsDone', '-')}\nReduces:   "
              f"{status.get('reducesDone', '-')}\n"
              + (f"Combines:  {status['combinesDone']} in "
                 f"{status.get('combines', {}).get('levels', '?')} levels\n"
                 if status.get("combinesDone") else "")
              + f"Attempts:  {status.get('attempts', 0)}\n"
              f"Locality:  {status.get('locality', {})}\n")
    if status.get("message"):
        header += f"Message:   {status['message']}\n"
    table = _table(["TASK", "ATTEMPT", "PHASE", "NODE", "DATA-LOCAL", "DURATION", "IN", "OUT",
                    "ERROR"], rows)
    data = {"job": job, "attempts": [a.__dict__ for a in attempts]}
    _print(args, data, header + "\n" + table)
    return 0


def _logs(args: argparse.Namespace) -> int:
    from kubemr.client.sdk import Job

    print(Job(args.job, args.namespace or "default", _cluster()).logs(args.task, args.attempt),
          end="")
    return 0


def _cat(args: argparse.Namespace) -> int:
    from kubemr.client.sdk import read_output

    job = _cluster().get_job(args.namespace or "default", args.job)
    output = job["spec"]["output"]
    for key, value in read_output(output["uri"], output.get("format", "text")):
        print(json.dumps([key, value], ensure_ascii=False) if args.output == "json"
              else f"{key}\t{value}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    _cluster().delete_job(args.namespace or "default", args.job)
    print(f"mapreducejob {args.job} deleted", file=sys.stderr)
    return 0


def _timeline(args: argparse.Namespace) -> int:
    import time

    from kubemr.client.timeline import render_html, render_svg

    renderers = {".html": render_html, ".htm": render_html, ".svg": render_svg}
    render = renderers.get(os.path.splitext(args.file)[1].lower())
    if render is None:
        raise KubemrError("timeline: write an .html page or an .svg image "
                          "(-o timeline.html, -o timeline.svg)")
    namespace = args.namespace or "default"
    attempts = _cluster().attempts(namespace, args.job)
    with open(args.file, "w", encoding="utf-8") as f:
        f.write(render(args.job, attempts, time.time()))
    print(f"wrote {args.file}: {len(attempts)} task attempts", file=sys.stderr)
    return 0


def _ui(args: argparse.Namespace) -> int:
    """Serve the dashboard of local runs, or open the operator's through a port-forward."""
    if args.local:
        from kubemr.client.dashboard import LocalRuns, make_server

        if "://" not in args.local and not os.path.isdir(args.local):
            raise KubemrError(f"{args.local} is no directory: keep local runs there with "
                              f"`kubemr run JOB.yaml --local --logs {args.local}`")
        server = make_server(LocalRuns(args.local), "127.0.0.1", args.port)
        _show(f"http://127.0.0.1:{server.server_port}/", args.open)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        return 0
    return _port_forward(args)


def _show(url: str, open_browser: bool) -> None:
    print(f"kubemr dashboard at {url} (Ctrl-C stops)", flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(url)


def _port_forward(args: argparse.Namespace) -> int:
    """`kubectl port-forward` to the chart's dashboard Service, for as long as it runs."""
    import re
    import shutil
    import signal
    import subprocess

    namespace = args.namespace or "kubemr-system"
    port = _cluster().service_port(namespace, args.service, "dashboard")
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise KubemrError("`kubemr ui` needs kubectl on PATH for its port-forward")
    forward = subprocess.Popen(
        [kubectl, "port-forward", "-n", namespace, f"service/{args.service}",
         f"{args.port or ''}:{port}"], stdout=subprocess.PIPE, text=True)  # stderr: the user's
    shown = False

    def stop(signum, frame):
        raise KeyboardInterrupt  # so that the port-forward ends with us (finally, below)

    signal.signal(signal.SIGTERM, stop)
    try:
        for line in forward.stdout:  # read to the end: kubectl prints a line per connection
            found = re.match(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
            if found and not shown:
                _show(f"http://127.0.0.1:{found.group(1)}/", args.open)
                shown = True
        forward.wait()
        if not shown:
            raise KubemrError(f"kubectl port-forward to service {namespace}/{args.service} "
                              "failed (its message is above)")
    except KeyboardInterrupt:
        pass
    finally:
        forward.terminate()
        forward.wait()
    return 0


def _nodes(args: argparse.Namespace):
    from kubemr.client.datasets import named_nodes

    return named_nodes(args.node, args.zone) if args.node else None


def _put(args: argparse.Namespace) -> int:
    from kubemr.client.datasets import put

    manifest = put(args.paths, args.dataset, replicas=args.replicas, block_size=args.block_size,
                   nodes=_nodes(args))
    blocks = sum(len(f["blocks"]) for f in manifest["files"])
    size = sum(f["size"] for f in manifest["files"])
    _print(args, manifest, f"{args.dataset}: {len(manifest['files'])} files, {size} bytes in "
                           f"{blocks} blocks, {manifest['replicas']} replicas each")
    return 0


def _fsck(args: argparse.Namespace) -> int:
    from kubemr.client.datasets import fsck

    health = fsck(args.dataset, repair=args.repair, nodes=_nodes(args))
    lines = [*health.under_replicated, *health.lost]
    verdict = ("healthy" if not lines else
               f"{len(health.under_replicated)} under-replicated and {len(health.lost)} lost "
               f"of {health.blocks} blocks" +
               (f"; {health.repaired} repaired" if args.repair else ""))
    _print(args, health.__dict__, "\n".join([*lines, f"{args.dataset}: {verdict}"]))
    unrepaired = len(health.under_replicated) - health.repaired
    return EXIT_FAILED if health.lost or unrepaired else 0


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *rows])


def build_parser() -> argparse.ArgumentParser:
    # Installed twice: as `kubemr`, and as `kubectl-mr`, which kubectl runs for `kubectl mr`.
    prog = "kubectl mr" if os.path.basename(sys.argv[0]) == "kubectl-mr" else "kubemr"
    parser = argparse.ArgumentParser(prog=prog, description="Kubernetes-native MapReduce.")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler, help: str, job: bool = False,
                output_format: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help)
        if job:
            sub.add_argument("job", help="MapReduceJob name")
        sub.add_argument("-n", "--namespace", help="namespace (default: default)")
        if output_format:
            sub.add_argument("-o", "--output", choices=["text", "json"], default="text",
                             help="json for scripts")
        sub.set_defaults(handler=handler)
        return sub

    run = command("run", _run, "run a MapReduceJob manifest (--local: on this machine)")
    run.add_argument("manifest", help="MapReduceJob YAML file")
    run.add_argument("--local", action="store_true", help="run on this machine, no cluster")
    run.add_argument("--workers", type=int, help="worker processes (default: one per core, >= 2)")
    run.add_argument("--overwrite", action="store_true", help="replace a committed output")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress messages")
    run.add_argument("--logs", metavar="DIR", help="keep each attempt's log (its last MiB) in "
                     "DIR/JOB-RUN/map-00003/attempt-1.log")
    submit = command("submit", _submit, "create a MapReduceJob on the cluster")
    submit.add_argument("manifest", help="MapReduceJob YAML file, or a job class module:Class")
    submit.add_argument("--input", help="input URI (job class only)")
    submit.add_argument("--output-uri", help="output URI (job class only)")
    submit.add_argument("--reducers", type=int, default=1, help="reduce tasks (job class only)")
    submit.add_argument("--name", help="job name (job class only; default: generated)")
    submit.add_argument("--local", action="store_true", help="run a job class on this machine")
    submit.add_argument("--wait", action="store_true", help="wait for the job, with progress")
    submit.add_argument("--progress", action="store_true", help="progress bar even if no tty")
    submit.add_argument("--timeout", type=float, help="seconds to wait at most")
    validate = command("validate", _validate, "check a manifest without running it")
    validate.add_argument("manifest")
    listing = command("list", _list, "list MapReduceJobs")
    listing.add_argument("-A", "--all-namespaces", action="store_true")
    command("describe", _describe, "a job's status and a table of its task attempts", job=True)
    logs = command("logs", _logs, "a task attempt's log: its pod's, or once the pod is gone "
                   "the last MiB the attempt stored", job=True)
    logs.add_argument("--task", default="map-0",
                      help="task name: map-3, combine-2, reduce-0 (default map-0)")
    logs.add_argument("--attempt", type=int, help="attempt number (default: the latest)")
    command("cat", _cat, "print the job's output records", job=True)
    command("delete", _delete, "delete a job, its pods and its intermediate data", job=True)
    timeline = command("timeline", _timeline, "draw task attempts per node over time", job=True,
                       output_format=False)
    timeline.add_argument("-o", "--file", default="timeline.html",
                          help="file to write: .html (a page) or .svg (an image)")
    ui = commands.add_parser("ui", help="the dashboard: the operator's, through a port-forward "
                             "to its Service; or, with --local DIR, that of local runs")
    ui.add_argument("-n", "--namespace", help="namespace of the kubemr release (default: "
                    "kubemr-system)")
    ui.add_argument("--service", default="kubemr-dashboard",
                    help="the dashboard's Service (default: kubemr-dashboard)")
    ui.add_argument("--local", metavar="DIR", help="serve the runs kept in DIR by "
                    "`kubemr run JOB.yaml --local --logs DIR` instead")
    ui.add_argument("--port", type=int, default=0, help="local port (default: a free one)")
    ui.add_argument("--open", action="store_true", help="open the page in a web browser")
    ui.set_defaults(handler=_ui)
    put = command("put", _put, "store local files as a replicated dataset a job can read")
    put.add_argument("paths", nargs="+", metavar="LOCAL", help="files or folders")
    put.add_argument("dataset", metavar="DATASET", help="where: s3://BUCKET/PATH")
    put.add_argument("--replicas", type=int,
                     help="nodes that keep each block (default 2 with 2 or more nodes)")
    put.add_argument("--block-size", default="64Mi", help="bytes per block (default 64Mi)")
    fsck = command("fsck", _fsck, "report a dataset's under-replicated blocks (--repair: "
                   "copy them from a live replica)")
    fsck.add_argument("dataset", metavar="DATASET", help="s3://BUCKET/PATH")
    fsck.add_argument("--repair", action="store_true",
                      help="restore each block's replicas by copying a live one")
    for sub in (put, fsck):
        sub.add_argument("--node", action="append", default=[], metavar="NAME[=URI]",
                         help="a node to keep blocks on (default: the cluster's nodes with a "
                              "MinIO server); URI where it keeps them (default s3://node-NAME)")
        sub.add_argument("--zone", action="append", default=[], metavar="NAME=ZONE",
                         help="a --node's zone (blocks are spread over zones)")
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
