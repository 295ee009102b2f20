"""`abos`: the command line. Run `abos --help` or `abos <command> --help`."""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import signal
import sys
import threading
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from pipelines.sandbox.core.connection import sandbox_env
from pipelines.settings import load_settings

DEFAULT_SEED = 42
DEFAULT_SHOPIFY_PORT = 8701
DEFAULT_STRIPE_PORT = 8702
BENCH_AS_OF = date(2026, 11, 25)  # a fixed day: the large store is generated once, every run measures the same data


def _say(message: str) -> None:
    """Progress for people: stderr, so stdout stays machine-readable."""
    print(f"[abos] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _output_to_log(path: Path):
    """Send everything written to stdout and stderr meanwhile, by this process and its children (dbt,
    dlt's progress, Dagster's events, warnings), to the file `path`; yields the function that still
    prints a progress line for people (on the terminal's stderr, and in the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with path.open("a") as log:
        for fd in (1, 2):
            os.dup2(log.fileno(), fd)

        def say(message: str) -> None:
            line = f"[abos] {message}\n"
            sys.stdout.flush()
            sys.stderr.flush()
            os.write(saved[2], line.encode())
            os.write(2, line.encode())  # the log file, in order with what was printed around it

        try:
            yield say
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)


@contextlib.contextmanager
def _stdout_to_stderr():
    """Send everything written to stdout meanwhile, by this process and its children, to stderr."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _size(args: argparse.Namespace) -> str:
    """The simulator size, `large@0.05` when --scale takes a fraction of it, `tiny+200` with --tenants 200."""
    from pipelines.sandbox.simulation.tenants import with_tenants

    size = f"{args.size}@{args.scale:g}" if getattr(args, "scale", None) else args.size
    return with_tenants(size, getattr(args, "tenants", None))


def _store_path(args: argparse.Namespace) -> Path:
    if args.store:
        return Path(args.store)
    settings = load_settings()
    if getattr(args, "matrix", None):
        return settings.sandbox_dir / f"{_matrix_name(args)}.sqlite"
    if args.fixtures:
        return settings.sandbox_dir / f"fixtures-{Path(args.fixtures).stem}.sqlite"
    return settings.sandbox_dir / f"{_size(args)}-seed{args.seed}-{args.as_of.isoformat()}.sqlite"


def _matrix_name(args: argparse.Namespace) -> str:
    return f"matrix-{args.matrix}-seed{args.seed}-{args.as_of.isoformat()}"


def _write_matrix(args: argparse.Namespace) -> Path:
    """`--matrix N`: the tenant matrix's fixture file and the operator's rates file, under ABOS_HOME/sandbox/."""
    from pipelines.sandbox.simulation import matrix

    folder = load_settings().sandbox_dir
    folder.mkdir(parents=True, exist_ok=True)
    doc = matrix.fixture(matrix.tenant_matrix(args.matrix, args.seed), args.as_of)
    path = folder / f"{_matrix_name(args)}.json"
    path.write_text(json.dumps(doc))
    rates = path.with_name(path.stem + "-rates.csv")
    rates.write_text(doc["matrix"]["operator_rates"])
    _say(f"tenant matrix: {args.matrix} tenants in {path}; point ABOS_FX_RATES_FILE at {rates} "
         "(the currencies the ECB does not quote)")
    for workspace, spec in doc["workspaces"].items():
        _say(f"  {workspace}: {'shopify' if 'shopify' in spec else 'stripe'}, {spec['currency']} reporting in "
             f"{spec['reporting_currency']}, {spec['timezone']}")
    return path


def _open_store(args: argparse.Namespace, progress=_say):
    from pipelines.sandbox.server import build_store

    if getattr(args, "matrix", None):
        args.fixtures = str(_write_matrix(args))
    return build_store(
        _store_path(args), size=_size(args), seed=args.seed, as_of=args.as_of, fixtures=args.fixtures, progress=progress
    )


def _add_store_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", choices=["tiny", "small", "large"], default="small",
                        help="small: the demo; large: the benchmark; tiny: a quick four-month sample")
    parser.add_argument("--scale", type=float, help="a fraction of the size's volume, e.g. 0.05 (the benchmark)")
    parser.add_argument("--tenants", type=int, help="add N generated tiny shops and SaaS accounts, t0000... "
                                                    "(docs/sandbox.md, \"Many tenants\")")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default %(default)s)")
    parser.add_argument(
        "--as-of", type=date.fromisoformat, default=date.today(), help="last simulated day, YYYY-MM-DD (default today)"
    )
    parser.add_argument("--fixtures", help="serve the objects of this JSON file instead of the simulator")
    parser.add_argument("--matrix", type=int, metavar="N",
                        help="serve N generated tenants of varied currencies, timezones and shapes (with --seed, "
                             "--as-of) instead of the simulator")
    parser.add_argument("--store", help="sandbox store file (default: under ABOS_HOME/sandbox/)")


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    from pipelines.sandbox.core.http import FaultSpecError
    from pipelines.sandbox.server import Sandbox

    store = _open_store(args)
    try:
        sandbox = Sandbox(
            store,
            host=args.host,
            shopify_port=args.shopify_port,
            stripe_port=args.stripe_port,
            faults=args.faults,
            seed=args.seed,
            webhooks_url=args.webhooks_url,
        )
        if args.webhooks_misbehave:
            sandbox.webhooks.misbehave(args.webhooks_misbehave)
    except (FaultSpecError, ValueError) as exc:
        _say(str(exc))
        return 2
    except OSError as exc:
        _say(f"cannot listen on {args.host} ({exc.strerror}); pick other ports with --shopify-port/--stripe-port")
        return 2
    # Every page decodes and encodes thousands of small objects: Python's cyclic collector, at its
    # default of every 700 allocations, would trace each page many times (as in the connectors,
    # ingest/pipeline.py's rare_collections). This process serves until it is stopped.
    gc.freeze()
    gc.set_threshold(50_000, *gc.get_threshold()[1:])
    sandbox.start()
    print(json.dumps(sandbox.connection_info()), flush=True)
    _say("sandbox ready; Ctrl-C to stop")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    sandbox.stop()
    return 0


def cmd_sandbox_truth(args: argparse.Namespace) -> int:
    if args.url:
        import urllib.request

        with urllib.request.urlopen(args.url.rstrip("/") + "/_sandbox/truth", timeout=600) as response:
            result = json.load(response)
    else:
        from pipelines.sandbox.simulation.runner import truth

        result = truth(_open_store(args))
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.output:
        Path(args.output).write_text(text + "\n")
        _say(f"ground truth written to {args.output}")
    else:
        print(text)
    return 0


def cmd_sandbox_advance(args: argparse.Namespace) -> int:
    import urllib.request

    payload: dict[str, Any] = {"days": args.days} if args.days is not None else {"to": args.to}
    request = urllib.request.Request(
        args.url.rstrip("/") + "/_sandbox/advance",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=3600) as response:
        print(json.dumps(json.load(response), indent=2))
    return 0


def cmd_sandbox_env(args: argparse.Namespace) -> int:
    """Print `export` lines for a running sandbox's connection info (read from stdin or --info)."""
    info = json.loads(Path(args.info).read_text() if args.info else sys.stdin.readline())
    for key, value in sandbox_env(info).items():
        print(f"export {key}={value}")
    return 0


def cmd_workspaces_check(args: argparse.Namespace) -> int:
    from pipelines.workspaces import WorkspaceError, load_workspaces

    try:
        workspaces = load_workspaces(args.file, require_secrets=not args.no_secrets)
    except WorkspaceError as exc:
        _say(str(exc))
        return 1
    for workspace in workspaces:
        print(f"{workspace.id}: {workspace.vertical}, {workspace.currency}, {workspace.timezone}, "
              f"connectors: {', '.join(workspace.connectors)}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """Sync one source for one workspace, outside Dagster."""
    from pipelines.workspaces import WorkspaceError, load_workspaces

    settings = load_settings()
    settings.warehouse.ensure_reachable()
    from pipelines.deliver.alerts import alert_operator
    from pipelines.ingest.sync import sync

    try:
        workspace = load_workspaces(settings.workspaces_file).get(args.workspace)
        started = time.monotonic()
        result = sync(args.source, workspace, settings, alert=functools.partial(alert_operator, settings))
    except WorkspaceError as exc:
        _say(str(exc))
        return 1
    _say(f"{args.source} for {workspace.id} synced in {time.monotonic() - started:.1f}s")
    print(json.dumps({"stats": result.stats.as_metadata(), "cursor_before": result.cursor_before,
                      "cursor_after": result.cursor_after}, default=str))
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    """Answer a question in plain language from one workspace's metric tables (docs/ask.md)."""
    from pipelines.ask.chart import folder_of
    from pipelines.ask.history import converse, suggestions
    from pipelines.ask.query import Query
    from pipelines.workspaces import load_workspaces

    settings = load_settings()
    settings.warehouse.ensure_reachable()
    workspace = load_workspaces(settings.workspaces_file, require_secrets=False).get(args.workspace)
    if args.suggest:
        offered = suggestions(settings.warehouse, workspace)
        print(json.dumps([vars(s) for s in offered], indent=2) if args.json else
              "\n".join(f"{s.question}  ({s.why})" for s in offered))
        return 0
    if not args.question:
        _say('ask a question, e.g. abos ask "net sales last week" --workspace ID, or --suggest')
        return 1
    try:
        previous = Query.model_validate_json(args.previous) if args.previous else None
    except ValueError as exc:  # pydantic's ValidationError says which field
        _say(f"--previous is not an answer's query: {exc}")
        return 1
    answer = converse(args.question, workspace, settings.warehouse, conversation=f"cli:{args.conversation}",
                      via="cli", previous=previous, llm=settings.llm, charts=folder_of(settings.home))
    print(answer.to_json() if args.json else answer.to_text())
    return 0 if answer.status in ("answered", "clarify") else 2


def cmd_dbt(args: argparse.Namespace) -> int:
    """Run dbt in dbt_project/ against the warehouse in ABOS_WAREHOUSE_URL, under its lock."""
    from pipelines.transform import run_dbt

    settings = load_settings()
    settings.warehouse.ensure_reachable()
    return run_dbt(args.dbt_args, settings.warehouse)


def cmd_docs_tables(args: argparse.Namespace) -> int:
    """Regenerate (or, with --check, verify) what is generated: dbt's metric registry macro from the
    registry (pipelines/packs), then the table reference in docs/analysts.md from the dbt manifest."""
    from pipelines.transform.reference import ANALYSTS_DOC, update_analysts_doc
    from pipelines.transform.registry import REGISTRY_MACRO, update_registry_macro

    stale = 0
    for path, update, what in [(REGISTRY_MACRO, update_registry_macro, "the metric registry"),
                               (ANALYSTS_DOC, update_analysts_doc, "the dbt models")]:
        current = update(check=args.check)
        if args.check and not current:
            print(f"{path} is out of date with {what}: run `abos docs tables`", file=sys.stderr)
            stale = 1
        else:
            print(f"{path}: {'up to date' if current else 'rewritten'}")
    return stale


def cmd_docs_serve(args: argparse.Namespace) -> int:
    """Generate dbt's docs site (lineage, every column from the warehouse's catalog) and serve it."""
    generated = cmd_dbt(argparse.Namespace(dbt_args=["docs", "generate"]))
    if generated != 0:
        return generated
    return cmd_dbt(argparse.Namespace(dbt_args=["docs", "serve", "--host", args.host, "--port", str(args.port),
                                                "--no-browser"]))


def cmd_analyst(args: argparse.Namespace) -> int:
    """Grant or revoke an analyst login role's read access to one workspace (Postgres)."""
    from pipelines.settings import SettingsError
    from pipelines.transform import access
    from pipelines.workspaces import WorkspaceError, load_workspaces


    settings = load_settings()
    try:
        settings.warehouse.ensure_reachable()
        load_workspaces(settings.workspaces_file).get(args.workspace)
        password = os.environ.get(args.password_env) if args.password_env else None
        if args.password_env and not password:
            _say(f"--password-env names {args.password_env}, which is not set")
            return 1
        if args.analyst_command == "grant":
            result = access.grant(settings, args.workspace, args.role, password)
        else:
            result = access.revoke(settings, args.workspace, args.role)
    except (WorkspaceError, SettingsError, access.AccessError) as exc:
        _say(str(exc))
        return 1
    if result.get("password"):
        _say(f"created login role {args.role}; its password (shown once): {result['password']}")
    print(json.dumps({k: v for k, v in result.items() if k != "password"}))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Materialize every asset for every workspace of the tenants file, headless."""
    from pipelines.settings import SettingsError
    from pipelines.workspaces import WorkspaceError, load_workspaces

    if args.workspaces:
        # The Definitions read the tenants file from the environment when they load.
        os.environ["ABOS_WORKSPACES"] = str(Path(args.workspaces).absolute())
    try:
        settings = load_settings()
        workspaces = load_workspaces(settings.workspaces_file, require_secrets=True)
    except (WorkspaceError, SettingsError) as exc:
        _say(str(exc))
        return 1
    return _run_pipeline(workspaces, settings, args)


def log_path(settings, command: str) -> Path:
    """Where a command keeps its details: `<ABOS_HOME>/logs/<command>-<UTC time>.log`."""
    return settings.home / "logs" / f"{command}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.log"


def _run_pipeline(workspaces, settings, args: argparse.Namespace, extra: dict[str, Any] | None = None,
                  log: Path | None = None) -> int:
    """`run_all`, then a summary for people (and the result as JSON on stdout with `--json`); non-zero if
    a run failed.

    The terminal shows one line per run (stage and workspace) and the summary; dbt's, dlt's and
    Dagster's output (its events from INFO up) go to the log file. `-v` prints all of it, Dagster's
    DEBUG events included, on the terminal instead.
    """
    settings.warehouse.ensure_reachable()  # in seconds, before the Definitions load
    from pipelines.run import run_all

    started = time.monotonic()
    result_path = None
    if args.verbose:
        with _stdout_to_stderr():  # dbt and Dagster print progress; stdout carries only the JSON result
            result = run_all(workspaces, progress=_say, settings=settings, log_level="DEBUG",
                             launched_by=f"abos {args.command}")
    else:
        if log is None:
            log = log_path(settings, args.command)
            _say(f"details: {log}")
        with _output_to_log(log) as say:
            result = run_all(workspaces, progress=say, settings=settings, log_level="INFO",
                             launched_by=f"abos {args.command}")
        result_path = log.with_suffix(".json")
    _say(f"pipeline finished in {time.monotonic() - started:.1f}s")
    document = json.dumps({"workspaces": workspaces.ids, "pipeline": result, **(extra or {})}, indent=2, default=str)
    if result_path:
        result_path.write_text(document + "\n")
    if args.json:
        print(document, flush=True)
    for line in summary_lines(result.get("summary") or {}):
        _say(line)
    if result_path:
        _say(f"  result as JSON: {result_path}")
    return 1 if result.get("failed") else 0


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The end of `abos run` and `abos demo`: rows per stage, anomalies, and where reports and outbox files are."""
    if not summary:
        return []
    lines = ["summary:", f"  dbt models built: {summary['dbt_models_built']}"]
    for workspace_id, facts in summary["workspaces"].items():
        lines.append(f"  {workspace_id}: {facts['ingested_rows']} rows ingested, "
                     f"{facts.get('anomalies', 'no')} anomalies found")
        if facts.get("report"):
            lines.append(f"    report: {facts['report']}")
        lines.extend(f"    outbox: {path}" for path in facts.get("outbox", []))
        lines.extend(f"    outbox: {path} (delivered by an earlier run, not sent again)"
                     for path in facts.get("delivered_before", []))
    return lines


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the sandbox and run the whole pipeline over the demo workspaces (`abos run` on the sandbox)."""
    from pipelines.sandbox.server import Sandbox
    from pipelines.sandbox.simulation.runner import truth
    from pipelines.workspaces import load_workspaces


    args.fixtures = args.matrix = None
    args.store = None
    settings = load_settings()
    settings.warehouse.ensure_reachable()  # before minutes of generating the sandbox
    log = log_path(settings, args.command)
    if args.verbose:
        store = _open_store(args)
    else:  # one line per generated workspace; the month-by-month progress goes to the log
        _say(f"details: {log}")
        with _output_to_log(log) as say:
            store = _open_store(args, progress=lambda line: (say if line.startswith("generating") else print)(line))
    with Sandbox(store, shopify_port=args.shopify_port, stripe_port=args.stripe_port, seed=args.seed) as sandbox:
        info = sandbox.connection_info()
        os.environ.update(sandbox_env(info))
        _say(f"sandbox serving Shopify at {sandbox.shopify_url} and Stripe at {sandbox.stripe_url}")
        settings = load_settings()
        workspaces = load_workspaces(settings.workspaces_file, require_secrets=True)
        facts = truth(store)
        return _run_pipeline(workspaces, settings, args,
                             {"sandbox": {ws: t["counts"] for ws, t in facts["workspaces"].items()}}, log)


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve the sandbox and run `dagster dev` on the same data (Ctrl-C stops both)."""
    from pipelines.processes import run_child
    from pipelines.run import ensure_dagster_home
    from pipelines.sandbox.server import Sandbox
    from pipelines.settings import PROJECT_ROOT

    args.fixtures = args.matrix = None
    args.store = None
    settings = load_settings()
    store = _open_store(args)
    with Sandbox(store, shopify_port=args.shopify_port, stripe_port=args.stripe_port, seed=args.seed) as sandbox:
        bin_dir = Path(sys.executable).parent
        # `dagster dev` prepares the dbt project with the `dbt` on PATH: this virtualenv's, even when
        # it is not activated (`make ui` runs .venv/bin/abos).
        env = {**os.environ, **sandbox_env(sandbox.connection_info()),
               "DAGSTER_HOME": str(ensure_dagster_home(settings)), "ABOS_HOME": str(settings.home),
               "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])}
        dagster = bin_dir / "dagster"
        _say(f"sandbox at {sandbox.shopify_url} (Shopify) and {sandbox.stripe_url} (Stripe); "
             f"Dagster UI at http://{args.host}:{args.port}")
        command = [str(dagster), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", args.host, "-p", str(args.port)]
        return run_child(command, env=env, cwd=PROJECT_ROOT)  # SIGTERM or Ctrl-C stop dagster dev and its daemon


def cmd_bench(args: argparse.Namespace) -> int:
    """Measure the pipeline (docs/performance.md); the logic lives in pipelines/bench."""
    from pipelines.bench import BenchOptions, run_bench
    from pipelines.sandbox.simulation.simulator import history_days

    if args.webhook_freshness:
        from pipelines.bench.webhooks import run_freshness_bench

        result = run_freshness_bench(progress=_say)
        print(json.dumps(result, indent=2, default=str))
        return 0 if result["within_60s"] else 1
    if args.webhooks:
        from pipelines.bench.webhooks import run_webhook_bench

        result = run_webhook_bench(args.webhook_rate, args.webhook_seconds, warehouse_url=args.webhook_warehouse,
                                   progress=_say)
        print(json.dumps(result, indent=2))
        return 0 if result["lost"] == 0 else 1
    if args.ask:
        from pipelines.bench.ask import run_ask_bench

        result = run_ask_bench(load_settings(), {"shop": args.ask_shop, "saas": args.ask_saas}, progress=_say)
        print(json.dumps(result, indent=2))
        return 0
    if args.detection:
        from pipelines.bench.detection import run_detection_bench

        result = run_detection_bench(args.p5_workspaces, progress=_say)
        print(json.dumps({"targets": result["targets"], "files": result["files"]}, indent=2))
        return 0
    args.fixtures = args.matrix = None
    args.store = None
    cache = load_settings().sandbox_dir
    if args.tenants_only or args.growth:
        from pipelines.bench import report, run_phase_bench

        if args.tenants_only:
            from pipelines.bench.tenants import tenants_phase

            result = run_phase_bench("tenants", lambda work, rss, save: tenants_phase(
                args.bench_tenants, seed=args.seed, as_of=args.as_of, cache=cache, work=work, rss=rss, progress=_say),
                report.tenants_targets, keep_work=args.keep_work, progress=_say)
        else:
            from pipelines.bench.growth import growth_phase

            scales = [float(value) for value in args.growth.split(",")]
            result = run_phase_bench("growth", lambda work, rss, save: growth_phase(
                scales, seed=args.seed, as_of=args.as_of, history_days=history_days(args.size), cache=cache,
                work=work, rss=rss, progress=_say, postgres_url=args.postgres if args.growth_warehouse == "postgres"
                else None, save=save), report.growth_targets, keep_work=args.keep_work, progress=_say)
        print(json.dumps({"targets": result["targets"], "files": result["files"]}, indent=2))
        return 0
    options = BenchOptions(
        store=_store_path(args), size=_size(args), seed=args.seed, as_of=args.as_of,
        history_days=history_days(_size(args)), postgres_url=None if args.no_postgres else args.postgres,
        baseline_orders=args.baseline_orders or None, p5_workspaces=args.p5_workspaces, tenants=args.bench_tenants,
        stripe_pace=args.stripe_pace, keep_work=args.keep_work,
    )
    result = run_bench(options, progress=_say)
    print(json.dumps({"targets": result["targets"], "files": result["files"]}, indent=2))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the webhook gateway (docs/webhooks.md), the ask API, page and Slack command (docs/ask.md) until
    interrupted."""
    from pipelines.serve import create_app, run
    from pipelines.workspaces import WorkspaceError, load_workspaces

    settings = load_settings()
    try:
        workspaces = load_workspaces(settings.workspaces_file)
    except WorkspaceError as exc:
        _say(str(exc))
        return 1
    limits = {"max_body_bytes": args.max_body_bytes} if args.max_body_bytes else {}
    app = create_app(settings, workspaces, **limits)
    served = app.state.gateway.endpoints
    for workspace in workspaces:
        for provider in workspace.connectors:
            if (provider, workspace.id) in served:
                _say(f"webhooks for {workspace.id}: POST http://{args.host}:{args.port}/webhooks/{provider}/{workspace.id}")
            else:
                _say(f"no webhook secret for {workspace.id}'s {provider} connector: its endpoint refuses every "
                     f"delivery (connectors.{provider}.webhook_secret_env must name a variable that is set)")
    for workspace in workspaces:
        if workspace.id in app.state.ask.tokens:
            _say(f"questions for {workspace.id}: POST http://{args.host}:{args.port}/v1/workspaces/{workspace.id}/ask, "
                 f"or the page http://{args.host}:{args.port}/ask?workspace={workspace.id}")
        if workspace.ask_slack is not None and workspace.id not in app.state.slack.workspace_ids:
            _say(f"no Slack signing secret for {workspace.id}: /ask in Slack is refused (ask_slack.signing_secret_env "
                 "must name a variable that is set)")
    if app.state.slack.workspace_ids:
        _say(f"Slack's /ask for {', '.join(app.state.slack.workspace_ids)}: "
             f"POST http://{args.host}:{args.port}/v1/slack/commands")
    run(app, args.host, args.port)
    return 0


def cmd_privacy(args: argparse.Namespace) -> int:
    """Privacy requests (docs/privacy.md): redact or export one customer, or carry out the inbox's requests."""
    from pipelines import privacy
    from pipelines.workspaces import WorkspaceError, load_workspaces

    settings = load_settings()
    if args.privacy_command == "compliance":
        print(json.dumps(privacy.handle_compliance(settings), indent=2, default=str))
        return 0
    try:
        load_workspaces(settings.workspaces_file).get(args.workspace)
    except WorkspaceError as exc:
        _say(str(exc))
        return 1
    if args.privacy_command == "export":
        path = privacy.export(settings, args.workspace, args.customer, orders=args.orders)
        _say(f"what the warehouse holds on the customer is in {path}")
        print(json.dumps({"export": str(path)}))
        return 0
    entry = privacy.redact(settings, args.workspace, args.customer, orders=args.orders)
    if not entry["found"]:
        _say(f"no customer {args.customer!r} in {args.workspace}: nothing changed (the request is in the audit log)")
    print(json.dumps(entry, indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="abos", description="AI Business OS command line")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the sandbox and the whole pipeline on the demo workspaces")
    _add_store_args(demo)
    demo.add_argument("--shopify-port", type=int, default=0)
    demo.add_argument("--stripe-port", type=int, default=0)
    demo.add_argument("-v", "--verbose", action="store_true",
                      help="print dbt's, dlt's and every Dagster event on the terminal, not in the log file")
    demo.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    demo.set_defaults(func=cmd_demo)

    run = commands.add_parser("run", help="materialize every asset for every workspace, headless")
    run.add_argument("--workspaces", help="the tenants file (default: ABOS_WORKSPACES or ./workspaces.yaml)")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="print dbt's, dlt's and every Dagster event on the terminal, not in the log file")
    run.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    run.set_defaults(func=cmd_run)

    ingest = commands.add_parser("ingest", help="sync one source for one workspace (outside Dagster)")
    ingest.add_argument("source", choices=["shopify", "stripe"])
    ingest.add_argument("workspace", help="a workspace id from workspaces.yaml")
    ingest.set_defaults(func=cmd_ingest)

    ask = commands.add_parser("ask", help="answer a question in plain language from a workspace's metrics "
                                          "(docs/ask.md)")
    ask.add_argument("question", nargs="?", help='e.g. "net sales last week vs the week before"')
    ask.add_argument("--workspace", required=True, help="the workspace id (workspaces.yaml) the question is about")
    ask.add_argument("--json", action="store_true", help="the answer, its query and citations as JSON")
    ask.add_argument("--previous", help="a follow-up: the previous answer's `query` (JSON) it builds on "
                                        "(default: the conversation's last answer, within the hour)")
    ask.add_argument("--conversation", default="default",
                     help="the conversation stored questions belong to (default %(default)s)")
    ask.add_argument("--suggest", action="store_true",
                     help="print suggested questions (recent anomalies, the pack) instead of answering")
    ask.set_defaults(func=cmd_ask)

    dbt = commands.add_parser("dbt", help="run dbt against the configured warehouse, e.g. `abos dbt build`")
    dbt.add_argument("dbt_args", nargs=argparse.REMAINDER, help="arguments passed to dbt")
    dbt.set_defaults(func=cmd_dbt)

    docs = commands.add_parser("docs", help="the analysts' docs: table reference, dbt docs site").add_subparsers(
        dest="docs_command", required=True)
    tables = docs.add_parser("tables", help="regenerate dbt's metric registry macro and docs/analysts.md's table reference")
    tables.add_argument("--check", action="store_true", help="only check; exit 1 when the reference is stale")
    tables.set_defaults(func=cmd_docs_tables)
    serve_docs = docs.add_parser("serve", help="`dbt docs generate` on the configured warehouse, then serve it")
    serve_docs.add_argument("--host", default="127.0.0.1")
    serve_docs.add_argument("--port", type=int, default=8080, help="default %(default)s")
    serve_docs.set_defaults(func=cmd_docs_serve)

    analyst = commands.add_parser("analyst", help="analyst login roles (Postgres): grant or revoke a workspace")
    analyst_commands = analyst.add_subparsers(dest="analyst_command", required=True)
    for name, text in (("grant", "create or update a role that reads only this workspace's marts and metrics"),
                       ("revoke", "take the workspace away; a role left with none is dropped")):
        command = analyst_commands.add_parser(name, help=text)
        command.add_argument("--workspace", required=True, help="a workspace id from workspaces.yaml")
        command.add_argument("--role", required=True, help="the Postgres login role")
        if name == "grant":
            command.add_argument("--password-env", help="variable holding the role's password (default: generate one)")
        else:
            command.set_defaults(password_env=None)
        command.set_defaults(func=cmd_analyst)

    ui = commands.add_parser("ui", help="serve the sandbox and the Dagster UI on the same data")
    _add_store_args(ui)
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000, help="Dagster UI port (default %(default)s)")
    ui.add_argument("--shopify-port", type=int, default=DEFAULT_SHOPIFY_PORT)
    ui.add_argument("--stripe-port", type=int, default=DEFAULT_STRIPE_PORT)
    ui.set_defaults(func=cmd_ui)

    bench = commands.add_parser("bench", help="measure full and incremental runs, baselines, the anomaly scan")
    bench.add_argument("--size", choices=["tiny", "small", "large"], default="large")
    bench.add_argument("--scale", type=float, help="a fraction of the size's volume, e.g. 0.05")
    bench.add_argument("--seed", type=int, default=DEFAULT_SEED)
    bench.add_argument("--as-of", type=date.fromisoformat, default=BENCH_AS_OF, help="default %(default)s")
    bench.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/abos_bench",
                       help="a database the benchmark drops and recreates (default %(default)s)")
    bench.add_argument("--no-postgres", action="store_true", help="measure DuckDB only")
    bench.add_argument("--stripe-pace", choices=["live", "test"], default="live",
                       help="pace the Stripe client as for a live key (80 requests/s, the default) or a test "
                            "key (20/s); the sandbox allows either")
    bench.add_argument("--baseline-orders", type=int, default=100_000,
                       help="orders the baselines read from the bulk file, 0 for all (default %(default)s)")
    bench.add_argument("--p5-workspaces", type=int, default=1000, help="workspaces in the anomaly scan (P5)")
    bench.add_argument("--tenants", type=int, default=200, dest="bench_tenants",  # not the sandbox's --tenants
                       help="generated tiny tenants refreshed through Dagster, 0 for none (default %(default)s)")
    bench.add_argument("--keep-work", action="store_true",
                       help="keep ABOS_HOME/bench/work (the warehouses the runs built) for inspection; the next run "
                            "removes it")
    bench.add_argument("--tenants-only", action="store_true", help="only the many-tenants phase")
    bench.add_argument("--growth", metavar="SCALES",
                       help="only the growth curve: full and incremental runs (on DuckDB, or --growth-warehouse) at "
                            "these scales of the large sandbox, e.g. 0.01,0.1,1, and the fitted exponents")
    bench.add_argument("--growth-warehouse", choices=["duckdb", "postgres"], default="duckdb",
                       help="the growth curve's warehouse: a DuckDB file (default) or the --postgres database")
    bench.add_argument("--detection", action="store_true",
                       help="only the anomaly detection benchmark and P5 (no sandbox, about a minute)")
    bench.add_argument("--ask", action="store_true",
                       help="only questions: answer time of the shipped question set on the configured, built "
                            "warehouse (docs/ask.md)")
    bench.add_argument("--ask-shop", default="demo-us-store", help="the ecommerce workspace asked (default %(default)s)")
    bench.add_argument("--ask-saas", default="demo-saas", help="the SaaS workspace asked (default %(default)s)")
    bench.add_argument("--webhooks", action="store_true",
                       help="only the webhook gateway: accept latency at a steady rate, nothing lost (docs/webhooks.md)")
    bench.add_argument("--webhook-freshness", action="store_true",
                       help="only the time from an order's webhook to marts.orders and its anomaly check, through "
                            "abos serve and dagster-daemon (docs/webhooks.md)")
    bench.add_argument("--webhook-rate", type=float, default=500, help="webhooks per second (default %(default)s)")
    bench.add_argument("--webhook-seconds", type=float, default=60, help="for how long (default %(default)s)")
    bench.add_argument("--webhook-warehouse", help="the gateway's warehouse URL (default: a fresh DuckDB file)")
    bench.set_defaults(func=cmd_bench)

    serve = commands.add_parser("serve", help="serve the webhook gateway for Shopify and Stripe "
                                              "(docs/webhooks.md), the ask API, page and Slack command (docs/ask.md)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8800, help="default %(default)s")
    serve.add_argument("--max-body-bytes", type=int, help="larger deliveries are refused with 413 (default 1 MiB)")
    serve.set_defaults(func=cmd_serve)

    privacy_parser = commands.add_parser("privacy", help="privacy requests: redact or export a customer "
                                                         "(docs/privacy.md)")
    privacy_commands = privacy_parser.add_subparsers(dest="privacy_command", required=True)
    for name, text in (("redact", "anonymize one customer's personal data everywhere (raw, marts, inbox, files)"),
                       ("export", "write what the warehouse holds on one customer to a JSON file")):
        command = privacy_commands.add_parser(name, help=text)
        command.add_argument("--workspace", required=True, help="a workspace id from workspaces.yaml")
        command.add_argument("--customer", required=True,
                             help="a Shopify customer id (gid or number), a Stripe customer id, or an e-mail")
        command.add_argument("--orders", nargs="*", default=[], help="order ids to include (e.g. guest orders)")
        command.set_defaults(func=cmd_privacy)
    compliance = privacy_commands.add_parser("compliance", help="carry out the Shopify compliance webhooks in the "
                                                                 "inbox not done yet")
    compliance.set_defaults(func=cmd_privacy)

    sandbox = commands.add_parser("sandbox", help="the simulated Shopify and Stripe businesses").add_subparsers(
        dest="sandbox_command", required=True
    )
    serve = sandbox.add_parser("serve", help="serve the fake Shopify and Stripe APIs")
    _add_store_args(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--shopify-port", type=int, default=DEFAULT_SHOPIFY_PORT)
    serve.add_argument("--stripe-port", type=int, default=DEFAULT_STRIPE_PORT)
    serve.add_argument("--faults", help="inject faults, e.g. 429=0.05,5xx=0.05,shopify:throttled=0.1 (docs/sandbox.md)")
    serve.add_argument("--webhooks-url", help="deliver webhooks for what each advance changes to this gateway, "
                                              "e.g. http://127.0.0.1:8800 (`abos serve`)")
    serve.add_argument("--webhooks-misbehave", help="e.g. duplicate=0.1,out_of_order=1,bad_signature=0.05,stale=0.05,"
                                                    "replay=0.05 (docs/sandbox.md)")
    serve.set_defaults(func=cmd_sandbox_serve)

    truth = sandbox.add_parser("truth", help="write the ground truth (counts, money, MRR, anomalies) as JSON")
    _add_store_args(truth)
    truth.add_argument("--url", help="ask a running sandbox instead (its base URL), e.g. after advancing it")
    truth.add_argument("--output", "-o", help="write to this file instead of stdout")
    truth.set_defaults(func=cmd_sandbox_truth)

    advance = sandbox.add_parser("advance", help="move a running sandbox's clock forward")
    advance.add_argument("--url", default=f"http://127.0.0.1:{DEFAULT_SHOPIFY_PORT}", help="a sandbox base URL")
    when = advance.add_mutually_exclusive_group(required=True)
    when.add_argument("--days", type=float, help="advance by this many days")
    when.add_argument("--to", help="advance to this date (YYYY-MM-DD, end of day UTC) or ISO timestamp")
    advance.set_defaults(func=cmd_sandbox_advance)

    env = sandbox.add_parser("env", help="print export lines for a running sandbox (pipe `serve`'s first line)")
    env.add_argument("--info", help="a file holding the JSON line `serve` printed (default: stdin)")
    env.set_defaults(func=cmd_sandbox_env)

    workspaces = commands.add_parser("workspaces", help="tenants").add_subparsers(
        dest="workspaces_command", required=True
    )
    check = workspaces.add_parser("check", help="validate workspaces.yaml and that its secret variables are set")
    check.add_argument("--file", help="default: ABOS_WORKSPACES or ./workspaces.yaml")
    check.add_argument("--no-secrets", action="store_true", help="do not require the secret variables")
    check.set_defaults(func=cmd_workspaces_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pipelines.processes import Stopped
    from pipelines.settings import SettingsError
    from pipelines.workspaces import WorkspaceError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (SettingsError, WorkspaceError) as exc:  # they name the setting to fix, and hold no secret
        _say(str(exc))
        return 1
    except Stopped as stopped:
        _say(f"stopped by {stopped}")
        return 128 + stopped.signum
    except KeyboardInterrupt:
        _say("stopped by SIGINT")
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
