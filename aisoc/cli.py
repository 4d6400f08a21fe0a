"""The `aisoc` command line. It wires the parts together; no part imports it."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from aisoc import __version__
from aisoc.paths import data_path

app = typer.Typer(
    name="aisoc",
    help="Bring AI systems into the SOC: ATLAS-mapped detections for data, model, inference and supply chain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
atlas_app = typer.Typer(help="The shipped MITRE ATLAS catalog.", no_args_is_help=True)
schema_app = typer.Typer(help="The field registry and what is generated from it.", no_args_is_help=True)
config_app = typer.Typer(help="The service configuration (aisoc.yml).", no_args_is_help=True)
deadletter_app = typer.Typer(help="Records aisoc could not take, with the reason and the raw bytes.",
                             no_args_is_help=True)
app.add_typer(atlas_app, name="atlas")
app.add_typer(schema_app, name="schema")
app.add_typer(config_app, name="config")
app.add_typer(deadletter_app, name="deadletter")
inventory_app = typer.Typer(help="The AI asset inventory (inventory.yml).", no_args_is_help=True)
app.add_typer(inventory_app, name="inventory")
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="aisoc.yml (default: embedded defaults).")]

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


class Fmt(StrEnum):
    text = "text"
    json = "json"
    sarif = "sarif"
    junit = "junit"


class TestFmt(StrEnum):
    text = "text"
    json = "json"
    junit = "junit"


class CoverageFmt(StrEnum):
    text = "text"
    json = "json"


PathsArg = Annotated[
    list[Path] | None,
    typer.Argument(help="Rule files or directories (default: the shipped rule pack).", show_default=False),
]


EsUrl = Annotated[str | None, typer.Option("--es", help="Elasticsearch URL. Auth from AISOC_ES_API_KEY or "
                                                       "AISOC_ES_USERNAME/AISOC_ES_PASSWORD.")]
CaCerts = Annotated[Path | None, typer.Option("--ca-certs", help="CA bundle to verify the server's TLS certificate.")]
Insecure = Annotated[bool, typer.Option("--insecure", help="Turn TLS verification OFF (never in production).")]


def _es_client(url: str, ca_certs: Path | None, insecure: bool):  # noqa: ANN202 - Elasticsearch, imported lazily
    from aisoc.es_client import EsConnection, make_client

    if insecure:
        typer.echo("aisoc: warning: TLS certificate verification is OFF for Elasticsearch", err=True)
    return make_client(EsConnection.from_env(url, ca_certs=ca_certs, verify_certs=not insecure))


def _fail_usage(message: str) -> None:
    typer.echo(f"aisoc: error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


def _rule_paths(paths: list[Path] | None) -> list[Path]:
    chosen = paths or [data_path("rules")]
    missing = [str(p) for p in chosen if not p.exists()]
    if missing:
        _fail_usage(f"no such file or directory: {', '.join(missing)}")
    return chosen


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


def _load_lock(paths: list[Path]):  # noqa: ANN202 - VersionLock, imported lazily
    from aisoc.rules.lock import VersionLock, find_lock

    try:
        return VersionLock.load(find_lock(paths))
    except ValueError as exc:
        _fail_usage(str(exc))


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"aisoc {__version__}")
        raise typer.Exit(EXIT_OK)


@app.command()
def validate(
    paths: PathsArg = None,
    fmt: Annotated[Fmt, typer.Option("--format", "-f", help="Output format.")] = Fmt.text,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the report here.")] = None,
    strict: Annotated[bool, typer.Option(help="Warnings fail too.")] = False,
    no_lock: Annotated[bool, typer.Option("--no-lock", help="Skip the version-lock check.")] = False,
    playbooks_dir: Annotated[Path | None, typer.Option("--playbooks", help="Also validate these playbooks "
                                                       "(default with no PATHS: the shipped ones).")] = None,
) -> None:
    """Check rules: Sigma syntax, ATLAS tags, fields, metadata, test events, version lock.

    Exit 0 when clean, 1 on findings, 2 on usage errors.
    """
    from aisoc import report
    from aisoc.findings import Finding
    from aisoc.rules.loader import iter_rule_paths
    from aisoc.rules.validate import validate as run_validate

    chosen = _rule_paths(paths)
    lock = None if no_lock else _load_lock(chosen)
    rules, findings = run_validate(chosen, lock)
    files = [str(p) for p in iter_rule_paths(chosen)]
    if playbooks_dir or not paths:
        from aisoc.respond import validate_playbooks
        from aisoc.respond.model import load_playbooks

        book_dir = playbooks_dir or data_path("playbooks")
        findings += validate_playbooks([book_dir])
        try:
            known = set(load_playbooks([book_dir]))
        except Exception:  # noqa: BLE001 - the errors are already findings above
            known = set()
        for rule in rules:
            for name in rule.meta.playbooks:
                if known and name not in known:
                    findings.append(Finding(str(rule.path), "playbook-unknown", f"rule suggests playbook {name!r}, "
                                            f"which is not in {book_dir}", "fix the name or add the playbook",
                                            rule.line(name), rule.rule_id))
    rendered = {
        Fmt.text: lambda: report.findings_text(findings, len(files)),
        Fmt.json: lambda: report.findings_json(findings, len(files)),
        Fmt.sarif: lambda: report.findings_sarif(findings),
        Fmt.junit: lambda: report.findings_junit(findings, files),
    }[fmt]()
    _write(rendered, output)
    failing = [f for f in findings if f.severity == "error" or strict]
    raise typer.Exit(EXIT_FINDINGS if failing else EXIT_OK)


@app.command("test")
def test_rules(
    paths: PathsArg = None,
    fmt: Annotated[TestFmt, typer.Option("--format", "-f", help="Output format.")] = TestFmt.text,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the report here.")] = None,
    es: EsUrl = None,
    ca_certs: CaCerts = None,
    insecure: Insecure = False,
) -> None:
    """Run every rule's test events on the embedded SQLite engine (and on Elasticsearch with --es).

    Exit 1 if any rule fails on any engine.
    """
    from aisoc import report
    from aisoc.detect.ruletest import test_rule_sqlite
    from aisoc.rules.loader import load_rules

    rules, findings = load_rules(_rule_paths(paths))
    for finding in findings:
        if finding.severity == "error":
            typer.echo(f"{finding.location()}: cannot load: {finding.message}", err=True)
    results = [test_rule_sqlite(rule).to_dict() for rule in rules]
    if es:
        from aisoc.detect.es_ruletest import test_rules_elasticsearch

        results += [r.to_dict() for r in test_rules_elasticsearch(_es_client(es, ca_certs, insecure), rules)]
    if fmt is TestFmt.json:
        text = json.dumps({"rules": results, "load_errors": [f.to_dict() for f in findings]}, indent=2)
    elif fmt is TestFmt.junit:
        text = report.results_junit(results)
    else:
        lines = []
        for r in results:
            status = "PASS" if r["passed"] else "FAIL"
            lines.append(f"{status} {r['engine']:7} {r['path']}  (+{r['positives']} / -{r['negatives']})")
            lines += [f"     {failure}" for failure in r["failures"]]
        passed = sum(1 for r in results if r["passed"])
        lines.append(f"{passed} passed, {len(results) - passed} failed")
        text = "\n".join(lines)
    _write(text, output)
    load_failed = any(f.severity == "error" and f.code != "test-events-missing" for f in findings)
    raise typer.Exit(EXIT_FINDINGS if load_failed or not all(r["passed"] for r in results) else EXIT_OK)


@app.command("compile")
def compile_rules(
    target: Annotated[str, typer.Option("--target", "-t", help="lucene, dsl, esql, eql, kibana, sqlite, "
                                                               "or any installed pySigma backend.")],
    paths: PathsArg = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the result here.")] = None,
    fmt: Annotated[str | None, typer.Option("--backend-format", help="Backend output format "
                                            "(for other pySigma backends).")] = None,
) -> None:
    """Compile rules to a query language. Rules a target cannot express are listed on stderr."""
    from aisoc.compile.targets import KIBANA, Compiled, UnknownTargetError, compile_with, resolve_target
    from aisoc.rules.loader import load_rules

    chosen = _rule_paths(paths)
    rules, findings = load_rules(chosen)
    load_errors = [f for f in findings if f.severity == "error" and f.code != "test-events-missing"]
    for finding in load_errors:
        typer.echo(f"{finding.location()}: cannot load: {finding.message}", err=True)
    results: list[Compiled]
    if target == KIBANA:
        from aisoc.atlas.catalog import load_catalog
        from aisoc.compile.kibana import kibana_ndjson

        lock = _load_lock(chosen)
        text, results = kibana_ndjson(rules, load_catalog(), {r.rule_id: lock.version(r.rule_id) for r in rules})
    else:
        try:
            resolved = resolve_target(target)
        except UnknownTargetError as exc:
            _fail_usage(str(exc))
        results = [compile_with(rule, resolved, fmt) for rule in rules]
        blocks = []
        for c in results:
            if c.ok:
                query = c.query if isinstance(c.query, str) else json.dumps(c.query, sort_keys=True)
                blocks.append(f"# {c.rule_id} {c.title}\n{query}")
        text = "\n\n".join(blocks)
    _write(text, output)
    failed = [c for c in results if not c.ok]
    for c in failed:
        typer.echo(f"{c.path}: [{c.rule_id}] not expressible in {target}: {c.error}", err=True)
    typer.echo(f"{len(results) - len(failed)} of {len(results)} rule(s) compiled to {target}"
               + (f"; {len(failed)} cannot be expressed in it" if failed else ""), err=True)
    raise typer.Exit(EXIT_FINDINGS if load_errors or not results else EXIT_OK)


@app.command()
def coverage(
    paths: PathsArg = None,
    fmt: Annotated[CoverageFmt, typer.Option("--format", "-f", help="Output format.")] = CoverageFmt.text,
    navigator: Annotated[Path | None, typer.Option(help="Write an ATLAS Navigator layer (JSON) here.")] = None,
    html: Annotated[Path | None, typer.Option(help="Write an HTML ATLAS matrix here.")] = None,
) -> None:
    """ATLAS techniques and tactics covered by rules whose test events pass, per layer."""
    from aisoc.atlas.catalog import load_catalog
    from aisoc.atlas.coverage import (
        RuleCoverageInput,
        build_coverage,
        coverage_html,
        coverage_json,
        coverage_text,
        navigator_layer,
    )
    from aisoc.detect.ruletest import test_rule_sqlite
    from aisoc.rules.loader import load_rules

    catalog = load_catalog()
    rules, _ = load_rules(_rule_paths(paths))
    inputs = [
        RuleCoverageInput(r.rule_id, r.title, r.layer or "unknown", r.atlas_tags, test_rule_sqlite(r).passed)
        for r in rules
    ]
    result = build_coverage(inputs, catalog)
    if navigator:
        _write(json.dumps(navigator_layer(result, catalog), indent=2), navigator)
    if html:
        _write(coverage_html(result, catalog), html)
    text = json.dumps(coverage_json(result), indent=2) if fmt is CoverageFmt.json else coverage_text(result)
    _write(text, None)


@app.command()
def detect(
    events: Annotated[list[Path], typer.Argument(help="ECS events, one JSON object per line (NDJSON).")],
    rules_path: Annotated[list[Path] | None, typer.Option("--rules", "-r", help="Rule files or dirs.")] = None,
    db: Annotated[Path | None, typer.Option(help="Keep events in this SQLite file (default: in memory).")] = None,
    fmt: Annotated[CoverageFmt, typer.Option("--format", "-f", help="text, or json (NDJSON alerts).")] = (
        CoverageFmt.text),
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write alerts here.")] = None,
) -> None:
    """Load events into the embedded store, run the rule pack, print ECS alerts."""
    from aisoc.atlas.catalog import load_catalog
    from aisoc.detect.alerts import unflatten
    from aisoc.detect.runner import DetectResult, load_events
    from aisoc.detect.runner import detect as run_detect
    from aisoc.detect.store import EventStore
    from aisoc.rules.loader import load_rules

    missing = [str(p) for p in events if not p.exists()]
    if missing:
        _fail_usage(f"no such events file: {', '.join(missing)}")
    chosen = _rule_paths(rules_path)
    rules, _ = load_rules(chosen)
    store = EventStore(db or ":memory:")
    result = DetectResult()
    for path in events:
        load_events(store, path, result)
    run_detect(store, rules, load_catalog(), _load_lock(chosen), result=result)
    for rejected in result.rejected:
        typer.echo(f"{rejected.source}: rejected: {rejected.reason}", err=True)
    for rule_id, error in result.rule_errors.items():
        typer.echo(f"rule {rule_id}: not run: {error}", err=True)
    if fmt is CoverageFmt.json:
        text = "\n".join(json.dumps(unflatten(a), sort_keys=True) for a in result.alerts)
    else:
        lines = []
        for a in result.alerts:
            techniques = ", ".join(a.get("threat.technique.subtechnique.id", []) or a.get("threat.technique.id", []))
            lines.append(f"{a['@timestamp']}  {a['rule.name']}  [{techniques}]  x{a['aisoc.alert.count']}")
            lines.append(f"    entity: {a['aisoc.alert.entity'] or '-'}   owner: {a['aisoc.owner.team']}"
                         f"   playbooks: {', '.join(a['aisoc.alert.playbooks']) or '-'}")
        lines.append(f"{result.events_loaded} event(s) loaded, {len(result.rejected)} rejected, "
                     f"{len(rules)} rule(s) run, {len(result.alerts)} alert(s)")
        text = "\n".join(lines)
    _write(text, output)
    store.close()


@app.command()
def collect(
    name: Annotated[str, typer.Argument(help="A collector named in aisoc.yml's `collectors:` (its type, path and "
                                             "options are used), or a collector type: litellm, kserve, "
                                             "training_batches, object_access_logs, modelscan, huggingface, "
                                             "mlflow, sbom, pip_environment, model_signatures, builds.")],
    replay_path: Annotated[Path | None, typer.Option(
        "--replay", help="Native files to replay (default: the configured collector's path).")] = None,
    config: ConfigOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write events here (NDJSON).")] = None,
    store: Annotated[Path | None, typer.Option("--db", help="Also load the events into this SQLite store.")] = None,
) -> None:
    """Run one collector once: replay native files (or pull live, for mlflow) and print or store the events."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from aisoc.collectors import registry
    from aisoc.collectors.base import CursorStore
    from aisoc.detect.store import EventStore
    from aisoc.records import Rejected
    from aisoc.sinks.deadletter import DeadLetterStore

    settings = _config(config)
    entry = settings.collectors.get(name)
    kind = str(entry.get("type", name)) if entry else name
    options = dict(entry.get("options") or {}) if entry else {}
    if replay_path is None and entry and entry.get("path"):
        replay_path = Path(str(entry["path"]))
    if replay_path is None:
        _fail_usage("live mode runs inside 'aisoc serve'; give --replay PATH to replay native files")
    if not replay_path.exists():
        _fail_usage(f"no such file or directory: {replay_path}")
    if kind not in registry.REPLAYERS:
        _fail_usage(f"unknown collector {kind!r}; choose one of: {', '.join(sorted(registry.REPLAYERS))}")
    problems = registry.check_options(kind, options)
    if problems:
        where = f"collectors.{name}." if entry else "options of "
        _fail_usage("; ".join(f"{where}{p}" for p in problems))
    cursor = CursorStore(settings.data_dir / "cursors.db")
    dead = DeadLetterStore(settings.data_dir / "deadletter.db")
    try:
        items = registry.replay(kind, replay_path, options, cursor)
    except ValueError as exc:
        _fail_usage(str(exc))
    events_store = EventStore(store) if store else None
    sink = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    good = bad = 0
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=True,
                  console=Console(stderr=True)) as progress:
        task = progress.add_task(f"{name}: 0 events", total=None)
        for item in items:
            if isinstance(item, Rejected):
                dead.add(item.source, item.reason, item.raw)
                typer.echo(f"{item.source}: rejected: {item.reason}", err=True)
                bad += 1
                continue
            sink.write(json.dumps(item, sort_keys=True, default=str) + "\n")
            if events_store is not None:
                events_store.insert([item])
            good += 1
            if good % 500 == 0:
                progress.update(task, description=f"{name}: {good} events")
    if output:
        sink.close()
    typer.echo(f"{name}: {good} event(s), {bad} rejected (dead letters in {settings.data_dir / 'deadletter.db'})",
               err=True)


@app.command()
def respond(
    alert_id: Annotated[str, typer.Argument(help="event.id of the alert (see the alerts file).")],
    playbook: Annotated[str | None, typer.Option("--playbook", "-p", help="Playbook id (default: those the "
                                                                           "alert selects).")] = None,
    approve: Annotated[str | None, typer.Option("--approve", help="Carry it out, approved by this person "
                                                                  "(without it: dry run).")] = None,
    alerts: Annotated[Path | None, typer.Option(help="Alerts NDJSON (default: data_dir/alerts.ndjson).")] = None,
    force: Annotated[bool, typer.Option(help="Run a playbook whose trigger does not select this alert.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Run response playbooks for an alert. Dry run by default: shows exactly what would change.

    Every run, dry or executed, is written to the append-only audit log with who approved it.
    """
    from aisoc.respond import PlaybookError, ResponseContext, load_playbooks, select_playbooks
    from aisoc.respond import respond as run_playbook

    settings = _config(config)
    alerts_path = alerts or settings.alerts_file or settings.data_dir / "alerts.ndjson"
    if not alerts_path.exists():
        _fail_usage(f"no alerts file: {alerts_path}")
    alert = None
    with open(alerts_path, encoding="utf-8") as fh:
        for line in fh:
            if alert_id in line:
                candidate = json.loads(line)
                if candidate.get("event", {}).get("id") == alert_id or candidate.get("event.id") == alert_id:
                    alert = candidate
    if alert is None:
        _fail_usage(f"no alert {alert_id} in {alerts_path}")
    try:
        playbooks = load_playbooks(settings.respond.playbooks or [data_path("playbooks")])
    except PlaybookError as exc:
        _fail_usage(str(exc))
    if playbook:
        if playbook not in playbooks:
            _fail_usage(f"unknown playbook {playbook!r}; known: {', '.join(sorted(playbooks))}")
        chosen = [playbooks[playbook]]
    else:
        chosen = select_playbooks(alert, playbooks.values())
    if not chosen:
        _fail_usage("no playbook applies to this alert; name one with --playbook (and --force if needed)")
    context = ResponseContext.model_validate({"evidence_dir": str(settings.data_dir / "evidence"),
                                              **settings.respond.context})
    audit = settings.respond.audit_log or settings.data_dir / "audit.jsonl"
    failed = False
    for book in chosen:
        report = run_playbook(alert, book, execute=approve is not None, approved_by=approve, audit_log=audit,
                              context=context, force=force)
        typer.echo(report.summary())
        failed = failed or report.status not in ("planned", "completed")
    raise typer.Exit(EXIT_FINDINGS if failed else EXIT_OK)


@app.command()
def deploy(
    es: EsUrl = None,
    kibana: Annotated[str | None, typer.Option("--kibana", help="Kibana URL: import the compiled rules.")] = None,
    rules_path: Annotated[list[Path] | None, typer.Option("--rules", "-r", help="Rule files or dirs.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change, change nothing.")] = False,
    ca_certs: CaCerts = None,
    insecure: Insecure = False,
) -> None:
    """Install index templates and the ingest pipeline (--es), import detection rules into Kibana (--kibana).

    Idempotent: a second run changes nothing.
    """
    if not es and not kibana:
        _fail_usage("give --es URL, --kibana URL or both")
    if es:
        from aisoc.deploy import deploy_elasticsearch

        plan = deploy_elasticsearch(_es_client(es, ca_certs, insecure), dry_run=dry_run)
        for step in plan.steps:
            verb = step.action if not dry_run or step.action in ("unchanged", "skipped") else f"would {step.action}"
            typer.echo(f"{step.kind:20} {step.name:28} {verb}")
        for note in plan.notes:
            typer.echo(f"note: {note}")
    if kibana:
        import httpx

        from aisoc.atlas.catalog import load_catalog
        from aisoc.compile.kibana import kibana_ndjson
        from aisoc.deploy import kibana_import_request
        from aisoc.rules.loader import load_rules

        chosen = _rule_paths(rules_path)
        rules, _ = load_rules(chosen)
        lock = _load_lock(chosen)
        ndjson, compiled = kibana_ndjson(rules, load_catalog(), {r.rule_id: lock.version(r.rule_id) for r in rules})
        request = kibana_import_request(kibana, ndjson)
        exported = sum(1 for c in compiled if c.ok)
        if dry_run:
            typer.echo(f"would POST {exported} rule(s) to {request['url']}")
            return
        auth = None
        import os

        if os.environ.get("AISOC_KIBANA_USERNAME"):
            auth = (os.environ["AISOC_KIBANA_USERNAME"], os.environ.get("AISOC_KIBANA_PASSWORD", ""))
        headers = dict(request["headers"])
        if os.environ.get("AISOC_KIBANA_API_KEY"):
            headers["Authorization"] = f"ApiKey {os.environ['AISOC_KIBANA_API_KEY']}"
        verify: bool | str = str(ca_certs) if ca_certs else not insecure
        response = httpx.post(request["url"], params=request["params"], headers=headers, files=request["files"],
                              auth=auth, verify=verify, timeout=60)
        if response.status_code >= 400:
            typer.echo(f"aisoc: Kibana refused the import: HTTP {response.status_code}: {response.text[:500]}",
                       err=True)
            raise typer.Exit(EXIT_FINDINGS)
        typer.echo(f"imported {exported} rule(s) into Kibana: {response.text[:300]}")


@app.command()
def ingest(
    events: Annotated[list[Path], typer.Argument(help="ECS events, one JSON object per line (NDJSON).")],
    es: EsUrl = None,
    namespace: Annotated[str, typer.Option(help="Data stream namespace.")] = "default",
    dead_letters: Annotated[Path, typer.Option(help="Dead-letter store (SQLite).")] = Path(".aisoc/deadletter.db"),
    ca_certs: CaCerts = None,
    insecure: Insecure = False,
) -> None:
    """Ship ECS events to Elasticsearch data streams (exactly once per event.id); rejects go to dead letter."""
    from aisoc.detect.runner import DetectResult, read_ndjson
    from aisoc.sinks.deadletter import DeadLetterStore
    from aisoc.sinks.elasticsearch import ElasticsearchSink, SinkUnavailable

    if not es:
        _fail_usage("give --es URL")
    store = DeadLetterStore(dead_letters)
    sink = ElasticsearchSink(_es_client(es, ca_certs, insecure), store, namespace=namespace)
    totals = DetectResult()
    for path in events:
        if not path.exists():
            _fail_usage(f"no such events file: {path}")
        good = []
        with open(path, encoding="utf-8", errors="replace") as handle:
            for _number, item in read_ndjson(handle, str(path)):
                if isinstance(item, dict):
                    good.append(item)
                else:
                    store.add(item.source, item.reason, item.raw)
                    totals.rejected.append(item)
        try:
            result = sink.send(good)
        except SinkUnavailable as exc:
            typer.echo(f"aisoc: {exc}; {len(exc.pending)} event(s) not delivered, re-run to retry "
                       "(redelivery never duplicates)", err=True)
            raise typer.Exit(EXIT_FINDINGS) from None
        typer.echo(f"{path}: {result.created} stored, {result.duplicates} already stored, "
                   f"{result.dead_lettered + len(totals.rejected)} to dead letter ({dead_letters})")
        totals.rejected.clear()


@app.command("run")
def run_detection(
    es: EsUrl = None,
    rules_path: Annotated[list[Path] | None, typer.Option("--rules", "-r", help="Rule files or dirs.")] = None,
    state: Annotated[Path, typer.Option(help="Where the checkpoint lives.")] = Path(".aisoc/state"),
    interval: Annotated[int, typer.Option(help="Seconds between runs.")] = 300,
    lookback: Annotated[int, typer.Option(help="Seconds each run looks back before the checkpoint.")] = 600,
    once: Annotated[bool, typer.Option("--once", help="Run once and exit.")] = False,
    source_namespace: Annotated[str, typer.Option(help="Data stream namespace(s) to read events from.")] = "*",
    alerts_namespace: Annotated[str, typer.Option(help="Namespace of the alerts data stream.")] = "default",
    ca_certs: CaCerts = None,
    insecure: Insecure = False,
) -> None:
    """Run the rule pack on Elasticsearch on a schedule, writing alerts to logs-aisoc.alerts-<namespace>."""
    import time
    from datetime import timedelta

    from aisoc.atlas.catalog import load_catalog
    from aisoc.detect.es_runner import Checkpoint, ElasticsearchRunner
    from aisoc.rules.loader import load_rules

    if not es:
        _fail_usage("give --es URL")
    chosen = _rule_paths(rules_path)
    rules, _ = load_rules(chosen)
    runner = ElasticsearchRunner(_es_client(es, ca_certs, insecure), rules, load_catalog(),
                                 Checkpoint(state / "es-runner.json"), _load_lock(chosen),
                                 namespace=alerts_namespace, source_namespace=source_namespace,
                                 lookback=timedelta(seconds=lookback))
    while True:
        report = runner.run_once()
        typer.echo(json.dumps({"start": report.start, "end": report.end, "created": report.alerts_created,
                               "updated": report.alerts_updated, "unchanged": report.alerts_unchanged,
                               "rule_errors": report.rule_errors}), nl=True)
        sys.stdout.flush()
        if once:
            return
        time.sleep(interval)


@app.command()
def demo(
    scale: Annotated[str, typer.Option(help="small (tests, ~30 s) or default (5 simulated days, ~2 min).")] = "default",
    seed: Annotated[int, typer.Option(help="Simulation seed: the same seed gives the same platform and attacks.")] = 7,
    out: Annotated[Path, typer.Option("--out", help="Work directory for native files and reports.")] = Path(
        "aisoc-demo"),
    html: Annotated[Path | None, typer.Option(help="HTML report (default: OUT/report.html).")] = None,
    keep_events: Annotated[bool, typer.Option(help="Keep the embedded store OUT/events.db.")] = False,
    rules_path: Annotated[list[Path] | None, typer.Option("--rules", "-r", help="Rule files or dirs.")] = None,
    scenarios: Annotated[bool, typer.Option("--scenarios", help="Instead: replay the rules' own test cases "
                                                                "on one timeline.")] = False,
) -> None:
    """Simulate an AI platform under a red-team run and report what the pipeline detected.

    The simulated platform's native telemetry goes through the real collectors, analyzers, the
    embedded store and the rule pack; incidents, ATLAS coverage, time to alert per attack and any
    missed attack are printed, and an HTML report is written. Exit 1 if an attack is missed or an
    alert fires on benign activity.
    """
    if scenarios:
        from aisoc.atlas.catalog import load_catalog
        from aisoc.demo_scenarios import render_text, replay_rule_scenarios
        from aisoc.rules.loader import load_rules

        rules, _ = load_rules(_rule_paths(rules_path))
        report = replay_rule_scenarios(rules, load_catalog(), lambda msg: typer.echo(msg, err=True))
        typer.echo(render_text(report))
        raise typer.Exit(EXIT_FINDINGS if report.missed or report.false_positives else EXIT_OK)
    from aisoc.demo import DemoOptions, demo_command
    from aisoc.simulate.world import get_scale

    try:
        get_scale(scale)
    except ValueError as exc:
        _fail_usage(str(exc))
    try:
        code = demo_command(DemoOptions(work_dir=out, scale=scale, seed=seed,
                                        rules=_rule_paths(rules_path) if rules_path else None,
                                        html=html, keep_events=keep_events))
    except FileExistsError as exc:
        _fail_usage(f"{exc}; choose another --out or empty it")
    raise typer.Exit(EXIT_FINDINGS if code else EXIT_OK)


@app.command()
def lock(paths: PathsArg = None) -> None:
    """Record each rule's content hash and bump the version of every changed rule."""
    from aisoc.rules.loader import load_rules

    chosen = _rule_paths(paths)
    rules, findings = load_rules(chosen)
    errors = [f for f in findings if f.severity == "error" and f.code != "test-events-missing"]
    if errors:
        for f in errors:
            typer.echo(f"{f.location()}: {f.message}", err=True)
        typer.echo("fix these rules before locking", err=True)
        raise typer.Exit(EXIT_FINDINGS)
    version_lock = _load_lock(chosen)
    changes = version_lock.update(rules)
    version_lock.save()
    for rule_id, (old, new) in sorted(changes.items()):
        typer.echo(f"{rule_id}: version {old} -> {new}")
    typer.echo(f"{len(changes)} rule(s) changed; lock written to {version_lock.path}")


@atlas_app.command("update")
def atlas_update(
    source: Annotated[str, typer.Argument(help="An official ATLAS YAML file or its http(s) URL.")],
) -> None:
    """Refresh the shipped catalog from an official ATLAS release (5.x single file or date-versioned)."""
    from aisoc.atlas.catalog import AtlasFormatError, update_catalog

    try:
        catalog = update_catalog(source)
    except (AtlasFormatError, OSError) as exc:
        _fail_usage(f"{source}: {exc}")
    typer.echo(f"catalog updated to ATLAS {catalog.version}: {len(catalog.tactics)} tactics, "
               f"{len(catalog.techniques)} techniques and sub-techniques")


@atlas_app.command("list")
def atlas_list() -> None:
    """Print the catalog's tactics and techniques with the Sigma tags that name them."""
    from aisoc.atlas.catalog import load_catalog

    catalog = load_catalog()
    for tactic in catalog.tactics:
        typer.echo(f"{tactic.id}  atlas.{tactic.short_name}  {tactic.name}")
    for technique in catalog.techniques.values():
        typer.echo(f"{technique.id}  atlas.{technique.id.lower()}  {technique.name}")


@schema_app.command("docs")
def schema_docs(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (e.g. docs/fields.md).")] = None,
) -> None:
    """Generate the field reference from the registry."""
    from aisoc.schema.docs import field_reference

    _write(field_reference(), output)


@schema_app.command("templates")
def schema_templates() -> None:
    """Print the Elasticsearch component and index templates generated from the registry."""
    from aisoc.schema.templates import COMPONENT_TEMPLATE, component_template, index_templates

    body = {"component_templates": {COMPONENT_TEMPLATE: component_template()},
            "index_templates": index_templates()}
    _write(json.dumps(body, indent=2, sort_keys=True), None)


def _config(path: Path | None):  # noqa: ANN202 - AisocConfig, imported lazily
    from aisoc.config import ConfigError, load_config

    if path is not None and not path.exists():
        _fail_usage(f"no such config file: {path}")
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(f"aisoc: config: {problem}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


@config_app.command("check")
def config_check(config: Annotated[Path, typer.Argument(help="The aisoc.yml to check.")]) -> None:
    """Validate a configuration; every problem is named with its path and line."""
    loaded = _config(config)
    sources = ", ".join(sorted(loaded.receiver.sources)) or "none"
    store = "Elasticsearch + " if loaded.sinks.elasticsearch else ""
    typer.echo(f"{config}: OK (data in {loaded.data_dir}; sinks: {store}"
               f"{'embedded SQLite' if loaded.sinks.sqlite else ''}; receiver sources: {sources})")


@app.command()
def serve(config: ConfigOpt = None) -> None:
    """Run the forwarder: receiver, durable spool, sinks, detection, alert outputs. SIGTERM drains and stops."""
    from aisoc.service.app import Service, configure_logging

    configure_logging()
    Service(_config(config)).run_forever()


def _dead_letters(config: Path | None):  # noqa: ANN202
    from aisoc.sinks.deadletter import DeadLetterStore

    return DeadLetterStore(_config(config).data_dir / "deadletter.db")


@deadletter_app.command("list")
def deadletter_list(config: ConfigOpt = None, limit: int = 50) -> None:
    """Dead letters, oldest first: id, when, where from, why."""
    store = _dead_letters(config)
    rows = store.list(limit)
    for row in rows:
        typer.echo(f"{row.id:6}  {row.at}  {row.source}  {row.reason[:160]}")
    typer.echo(f"{store.count()} dead letter(s)")


@deadletter_app.command("show")
def deadletter_show(record: int, config: ConfigOpt = None) -> None:
    """One dead letter with its raw bytes."""
    found = next((r for r in _dead_letters(config).list(10**9) if r.id == record), None)
    if found is None:
        _fail_usage(f"no dead letter {record}")
    typer.echo(json.dumps({"id": found.id, "at": found.at, "source": found.source, "reason": found.reason,
                           "raw": found.raw.decode("utf-8", "replace")}, indent=2))


@deadletter_app.command("replay")
def deadletter_replay(
    url: Annotated[str, typer.Option(help="Receiver endpoint, e.g. http://127.0.0.1:8787/ingest/events")],
    token_env: Annotated[str, typer.Option(help="Env var holding the receiver's bearer token.")] = "AISOC_TOKEN",
    config: ConfigOpt = None,
) -> None:
    """Send dead letters back through the receiver (after fixing the cause); accepted ones are removed."""
    import os

    import httpx

    store = _dead_letters(config)
    token = os.environ.get(token_env, "")
    done, failed = [], 0
    for row in store.list(10**6):
        response = httpx.post(url, content=row.raw, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        if response.status_code == 202 and response.json().get("rejected") == 0:
            done.append(row.id)
        else:
            failed += 1
    store.remove(done)
    typer.echo(f"{len(done)} replayed and removed, {failed} still rejected")


@app.command()
def docs(output: Annotated[Path, typer.Option("--output", "-o", help="Docs directory.")] = Path("docs")) -> None:
    """Write the generated references: docs/config.md, docs/fields.md, docs/rules.md."""
    from aisoc.atlas.catalog import load_catalog
    from aisoc.reference import config_reference, rule_reference
    from aisoc.rules.loader import load_rules
    from aisoc.schema.docs import field_reference

    rules, _ = load_rules([data_path("rules")])
    _write(config_reference(), output / "config.md")
    _write(field_reference(), output / "fields.md")
    _write(rule_reference(rules, load_catalog()), output / "rules.md")


@inventory_app.command("check")
def inventory_check(
    inventory: Annotated[Path, typer.Argument(help="inventory.yml")],
    fmt: Annotated[Fmt, typer.Option("--format", "-f", help="Output format.")] = Fmt.text,
) -> None:
    """Flag AI systems without owner, lineage or provenance, and unknown ATLAS techniques. Exit 1 on findings."""
    from aisoc import report
    from aisoc.inventory import InventoryError, check_inventory, load_inventory

    if not inventory.exists():
        _fail_usage(f"no such inventory: {inventory}")
    try:
        inv = load_inventory(inventory)
    except InventoryError as exc:
        findings = getattr(exc, "findings", None) or []
        typer.echo(str(exc), err=True)
        for finding in findings:
            typer.echo(f"{finding.location()}: {finding.message} ({finding.fix})", err=True)
        raise typer.Exit(EXIT_FINDINGS) from None
    findings = check_inventory(inv)
    rendered = {
        Fmt.text: lambda: report.findings_text(findings, len(inv.systems), "AI system(s)"),
        Fmt.json: lambda: report.findings_json(findings, len(inv.systems)),
        Fmt.sarif: lambda: report.findings_sarif(findings),
        Fmt.junit: lambda: report.findings_junit(findings, [str(inventory)]),
    }[fmt]()
    _write(rendered, None)
    raise typer.Exit(EXIT_FINDINGS if any(f.severity == "error" for f in findings) else EXIT_OK)


class MetricsFmt(StrEnum):
    text = "text"
    json = "json"
    html = "html"


@app.command()
def metrics(
    inventory: Annotated[Path | None, typer.Option(help="inventory.yml")] = None,
    alerts: Annotated[Path | None, typer.Option(help="Alerts (NDJSON).")] = None,
    responses: Annotated[Path | None, typer.Option(help="Response/audit history (JSONL).")] = None,
    incidents: Annotated[Path | None, typer.Option(help="Incident records (YAML or JSON list).")] = None,
    events: Annotated[Path | None, typer.Option(help="Integrity events (NDJSON).")] = None,
    rules_path: Annotated[list[Path] | None, typer.Option("--rules", "-r", help="Rule files or dirs.")] = None,
    fmt: Annotated[MetricsFmt, typer.Option("--format", "-f", help="Output format.")] = MetricsFmt.text,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here.")] = None,
) -> None:
    """The SOC metrics: asset visibility, ATLAS coverage, MTTA, MTTR, integrity SLA, escape rate."""
    from aisoc.inventory import InventoryError
    from aisoc.metrics import MetricsInputError, metrics_from_files, metrics_html, metrics_json, metrics_text

    for path in (inventory, alerts, responses, incidents, events):
        if path is not None and not path.exists():
            _fail_usage(f"no such file: {path}")
    try:
        result = metrics_from_files(inventory=inventory, rules=rules_path, alerts=alerts, responses=responses,
                                    incidents=incidents, events=events, period_start=None, period_end=None)
    except (InventoryError, MetricsInputError) as exc:
        _fail_usage(str(exc))
    text = {MetricsFmt.text: lambda: metrics_text(result),
            MetricsFmt.json: lambda: json.dumps(metrics_json(result), indent=2),
            MetricsFmt.html: lambda: metrics_html(result)}[fmt]()
    _write(text, output)


def main() -> None:
    """Entry point: a bug in aisoc prints one line (set AISOC_DEBUG=1 for the traceback), never a stack."""
    import os

    try:
        app()
    except Exception as exc:  # noqa: BLE001 - last-resort guard for users
        if os.environ.get("AISOC_DEBUG"):
            raise
        typer.echo(f"aisoc: internal error: {type(exc).__name__}: {exc} "
                   "(re-run with AISOC_DEBUG=1 and report it)", err=True)
        sys.exit(3)


if __name__ == "__main__":
    main()
