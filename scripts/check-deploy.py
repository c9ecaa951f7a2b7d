#!/usr/bin/env python3
"""Checks what can be checked of the deployment files without Docker or a cluster.

- Every manifest under deploy/kubernetes parses, has a known apiVersion and kind and no
  namespace; CronJob schedules are valid 5-field cron expressions; CronJobs forbid overlap;
  pods run as the image's non-root user; the server Deployment has one replica and probes
  /api/v1/health on the port it listens on.
- Every container, systemd ExecStart and Dockerfile CMD that runs bunker names a real subcommand
  and real options with valid values, as the bunker binary's own --help says.
- Every secretKeyRef names a key of secret.example.yaml; every configMap, volume and claim is
  declared; every password_env of the configuration reaches the containers.
- The ConfigMap's bunker.toml is read by the real binary (paths moved into a temporary
  directory): a misspelt key fails.
- The Dockerfile is multi-stage, runs as a non-root user and its HEALTHCHECK asks /api/v1/health.

BUNKER selects the binary (default: the debug build, from `swift build --show-bin-path`).
Installs PyYAML with pip when it is missing.
"""
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import yaml
except ImportError:
    print("== Installing PyYAML")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "pyyaml"], check=True)
    import yaml

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "deploy" / "kubernetes"
KNOWN_KINDS = {
    ("v1", "Secret"), ("v1", "ConfigMap"), ("v1", "PersistentVolumeClaim"), ("v1", "Service"),
    ("apps/v1", "Deployment"), ("batch/v1", "CronJob"),
}
# Volumes that belong to the application being backed up, not to these manifests.
EXTERNAL_CLAIMS = {"dermai-uploads"}
HEALTH_PATH = "/api/v1/health"
RUN_AS = 10001

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


# --- what the binary accepts -----------------------------------------------------------------

def binary():
    explicit = os.environ.get("BUNKER")
    if explicit:
        return explicit
    path = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    return os.path.join(path, "bunker")


BUNKER = binary()
if not os.access(BUNKER, os.X_OK):
    sys.exit(f"no bunker binary at {BUNKER}: run swift build first (or set BUNKER)")

_help_cache = {}


def command_help(words):
    """The parsed `bunker WORDS --help`: subcommands, options (name -> takes a value, values), arguments."""
    key = tuple(words)
    if key in _help_cache:
        return _help_cache[key]
    run = subprocess.run([BUNKER, *words, "--help"], capture_output=True, text=True, timeout=60)
    text = run.stdout + run.stderr
    if run.returncode != 0 or "USAGE:" not in text:
        _help_cache[key] = None
        return None
    section = None
    subcommands, options, has_arguments = set(), {}, False
    last = None
    for line in text.splitlines():
        if re.match(r"^[A-Z][A-Z ]+:$", line.strip()) and not line.startswith(" "):
            section = line.strip()[:-1]
            continue
        if section == "SUBCOMMANDS":
            m = re.match(r"^  ([a-z][a-z0-9-]*)\b", line)
            if m:
                subcommands.add(m.group(1))
        elif section == "ARGUMENTS":
            if re.match(r"^  <", line):
                has_arguments = True
        elif section == "OPTIONS":
            m = re.match(r"^  (?:(-\w), )?(--[a-z0-9-]+)(?: <[^>]+>)?", line)
            if m:
                takes_value = "<" in line[: m.end()]
                entry = {"value": takes_value, "values": None}
                for name in filter(None, (m.group(1), m.group(2))):
                    options[name] = entry
                last = entry
            if last is not None:
                v = re.search(r"\(values: ([^;)]+)", line)
                if v:
                    last["values"] = {s.strip() for s in v.group(1).split(",")}
    result = {"subcommands": subcommands, "options": options, "arguments": has_arguments}
    _help_cache[key] = result
    return result


DURATION = re.compile(r"^(\d+[dhms])+$")


def check_argv(where, argv):
    """argv without the program name; problems go to `problem`. Returns the subcommand path."""
    words = []
    rest = list(argv)
    while rest and not rest[0].startswith("-"):
        h = command_help(words)
        if h is None or not h["subcommands"] or rest[0] not in h["subcommands"]:
            break
        words.append(rest.pop(0))
    if not words:
        problem(where, f"`bunker {' '.join(argv)}` names no bunker subcommand")
        return words
    h = command_help(words)
    positional = []
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            positional += rest
            break
        if arg.startswith("-") and arg != "-":
            name, _, inline = arg.partition("=")
            option = h["options"].get(name)
            if option is None:
                problem(where, f"`bunker {' '.join(words)}` has no option {name}")
                continue
            if option["value"]:
                value = inline if inline else (rest.pop(0) if rest else None)
                if value is None:
                    problem(where, f"{name} needs a value")
                elif option["values"] and value not in option["values"]:
                    problem(where, f"{name} {value}: not one of {sorted(option['values'])}")
                elif name == "--retry-lock" and not DURATION.match(value):
                    problem(where, f"--retry-lock {value}: not a duration such as 30m")
            elif inline:
                problem(where, f"{name} takes no value")
        else:
            positional.append(arg)
    if positional and not h["arguments"]:
        problem(where, f"`bunker {' '.join(words)}` takes no arguments, got {positional}")
    return words


# The checker itself must be able to fail.
_before = len(problems)
check_argv("self-test", ["backup", "--typo"])
check_argv("self-test", ["backup", "--type", "everything"])
check_argv("self-test", ["no-such-command"])
if len(problems) - _before != 3:
    sys.exit(f"check-deploy.py's own self-test failed: {problems[_before:]}")
del problems[_before:]


# --- cron ------------------------------------------------------------------------------------

CRON_FIELDS = [("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
               ("day of week", 0, 7)]


def cron_problem(expression):
    fields = expression.split()
    if len(fields) != 5:
        return f"{len(fields)} fields, not 5"
    for text, (name, low, high) in zip(fields, CRON_FIELDS):
        for part in text.split(","):
            m = re.fullmatch(r"(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?", part)
            if not m:
                return f"{name} {part!r} is not cron syntax"
            numbers = [int(n) for n in (m.group(2), m.group(3)) if n is not None]
            if any(n < low or n > high for n in numbers):
                return f"{name} {part!r} is outside {low}-{high}"
            if len(numbers) == 2 and numbers[0] > numbers[1]:
                return f"{name} {part!r} is a backwards range"
            if m.group(4) is not None and int(m.group(4)) == 0:
                return f"{name} {part!r} steps by 0"
    return None


# --- the manifests ---------------------------------------------------------------------------

documents = []
for path in sorted(MANIFESTS.glob("*.yaml")):
    try:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                documents.append((path.name, doc))
    except yaml.YAMLError as error:
        problem(path.name, f"does not parse: {error}")
if not documents:
    problem("deploy/kubernetes", "no manifests")

by_kind = {}
for file, doc in documents:
    where = f"{file} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    if (doc.get("apiVersion"), doc.get("kind")) not in KNOWN_KINDS:
        problem(where, f"unexpected apiVersion/kind {doc.get('apiVersion')}/{doc.get('kind')}")
    if "namespace" in doc.get("metadata", {}):
        problem(where, "names a namespace: the manifests go into whichever one is applied to")
    by_kind.setdefault(doc.get("kind"), []).append((where, doc))

secrets = {}
for where, doc in by_kind.get("Secret", []):
    secrets[doc["metadata"]["name"]] = set((doc.get("stringData") or {}).keys()) | set((doc.get("data") or {}).keys())
configmaps = {doc["metadata"]["name"]: doc for _, doc in by_kind.get("ConfigMap", [])}
claims = {doc["metadata"]["name"] for _, doc in by_kind.get("PersistentVolumeClaim", [])} | EXTERNAL_CLAIMS

password_envs = set()
for name, doc in configmaps.items():
    toml = (doc.get("data") or {}).get("bunker.toml", "")
    password_envs |= set(re.findall(r'^\s*(?:password_env|secret_env|routing_key_env)\s*=\s*"([^"]+)"', toml, re.M))
    for cron in re.findall(r'^\s*cron\s*=\s*"([^"]+)"', toml, re.M):
        if (why := cron_problem(cron)):
            problem(f"ConfigMap/{name} bunker.toml", f"cron {cron!r}: {why}")
if any("[smtp]" in (d.get("data") or {}).get("bunker.toml", "") for d in configmaps.values()):
    password_envs.add("SMTP_PASSWORD")  # [smtp] password_env's default


def check_pod(where, spec, listen_port=None):
    """Checks one pod template's spec; returns the containers' bunker argv lists."""
    security = spec.get("securityContext", {})
    if security.get("runAsNonRoot") is not True or security.get("runAsUser") != RUN_AS:
        problem(where, f"pod must run as non-root uid {RUN_AS} (runAsNonRoot, runAsUser)")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for volume in volumes.values():
        if "persistentVolumeClaim" in volume and volume["persistentVolumeClaim"]["claimName"] not in claims:
            problem(where, f"claim {volume['persistentVolumeClaim']['claimName']} is not in pvc.yaml")
        if "configMap" in volume and volume["configMap"]["name"] not in configmaps:
            problem(where, f"ConfigMap {volume['configMap']['name']} is not in configmap.yaml")
    for container in spec.get("containers", []):
        cwhere = f"{where} container {container.get('name')}"
        if container.get("securityContext", {}).get("allowPrivilegeEscalation") is not False:
            problem(cwhere, "allowPrivilegeEscalation must be false")
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                problem(cwhere, f"mounts undeclared volume {mount['name']}")
        env = {}
        for variable in container.get("env", []):
            env[variable["name"]] = variable
            ref = variable.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                if ref.get("name") not in secrets:
                    problem(cwhere, f"{variable['name']}: Secret {ref.get('name')} is not in secret.example.yaml")
                elif ref.get("key") not in secrets[ref["name"]]:
                    problem(cwhere, f"{variable['name']}: key {ref.get('key')} is not in Secret {ref['name']}")
        for needed in sorted(password_envs | {"BUNKER_PASSWORD", "BUNKER_CONFIG"}):
            if needed not in env:
                problem(cwhere, f"does not set {needed}, which bunker.toml or the repository needs")
        command = container.get("command") or ["bunker"]  # the image's ENTRYPOINT
        if os.path.basename(command[0]) == "bunker":
            argv = list(command[1:]) + list(container.get("args") or [])
            words = check_argv(cwhere, argv)
            if words == ["serve"] and listen_port is not None:
                listen = argv[argv.index("--listen") + 1] if "--listen" in argv else None
                if listen is None or not listen.startswith("0.0.0.0:"):
                    problem(cwhere, "bunker serve must --listen on 0.0.0.0 inside a pod")
                ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
                for probe in ("livenessProbe", "readinessProbe"):
                    get = container.get(probe, {}).get("httpGet")
                    if not get or get.get("path") != HEALTH_PATH:
                        problem(cwhere, f"{probe} must GET {HEALTH_PATH}")
                        continue
                    port = ports.get(get["port"], get["port"])
                    if listen and str(port) != listen.rsplit(":", 1)[1]:
                        problem(cwhere, f"{probe} port {port} is not the listen port {listen}")
                if not container.get("resources", {}).get("limits"):
                    problem(cwhere, "no resource limits")


for where, doc in by_kind.get("CronJob", []):
    spec = doc.get("spec", {})
    schedule = spec.get("schedule", "")
    if (why := cron_problem(schedule)):
        problem(where, f"schedule {schedule!r}: {why}")
    if spec.get("concurrencyPolicy") != "Forbid":
        problem(where, "concurrencyPolicy must be Forbid: two runs would only wait for each other's lock")
    pod = spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})
    if pod.get("restartPolicy") not in ("Never", "OnFailure"):
        problem(where, "a Job's pod needs restartPolicy Never or OnFailure")
    check_pod(where, pod)

if not any(d["metadata"]["name"] == "dermai-backup" for _, d in by_kind.get("CronJob", [])):
    problem("cronjob.yaml", "no dermai-backup CronJob (the DermAI strategy's scheduled backup)")
for where, doc in by_kind.get("CronJob", []):
    if doc["metadata"]["name"] == "dermai-backup":
        args = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0].get("args", [])
        if args[:1] != ["backup"] or "--retry-lock" not in args:
            problem(where, "must run `bunker backup … --retry-lock DURATION`")

for where, doc in by_kind.get("Deployment", []):
    if doc.get("spec", {}).get("replicas") != 1:
        problem(where, "replicas must be 1: one writer per data directory")
    check_pod(where, doc["spec"]["template"]["spec"], listen_port=True)
if not by_kind.get("Deployment"):
    problem("deployment.yaml", "no Deployment for bunker serve")

services = by_kind.get("Service", [])
for where, doc in services:
    selector = doc["spec"].get("selector", {})
    if not any(all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in selector.items())
               for _, d in by_kind.get("Deployment", [])):
        problem(where, f"selector {selector} matches no Deployment's pods")

# --- the configuration, read by the binary ---------------------------------------------------

for name, doc in configmaps.items():
    toml = (doc.get("data") or {}).get("bunker.toml")
    if toml is None:
        continue
    with tempfile.TemporaryDirectory() as work:
        moved = re.sub(r'^(\s*(?:data_dir|path)\s*=\s*)"/([^"]*)"',
                       lambda m: f'{m.group(1)}"{work}/{m.group(2)}"', toml, flags=re.M)
        for line in re.findall(r'^\s*path\s*=\s*"([^"]+)"', moved, re.M):
            os.makedirs(line, exist_ok=True)
        Path(work, "bunker.toml").write_text(moved)
        env = {"PATH": os.environ.get("PATH", ""), "HOME": work, "BUNKER_CONFIG": f"{work}/bunker.toml",
               "BUNKER_PASSWORD": "check-deploy"}
        for words in (["init", "--quiet"], ["snapshots", "--json"]):
            run = subprocess.run([BUNKER, *words], cwd=work, env=env, capture_output=True, text=True, timeout=300)
            if run.returncode != 0:
                problem(f"ConfigMap/{name} bunker.toml", f"`bunker {' '.join(words)}` failed: {(run.stderr or run.stdout).strip()}")
                break

# --- the Dockerfile ----------------------------------------------------------------------------

dockerfile = (ROOT / "Dockerfile").read_text()
joined = re.sub(r"\\\n", " ", dockerfile)
instructions = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
froms = [i for i in instructions if i.upper().startswith("FROM ")]
if len(froms) < 2:
    problem("Dockerfile", "not multi-stage (a build stage and a run stage)")
elif "bookworm-slim" not in froms[-1]:
    problem("Dockerfile", f"the run stage is {froms[-1]!r}, not debian:bookworm-slim")
if "--static-swift-stdlib" not in joined or "--product bunker" not in joined:
    problem("Dockerfile", "does not build --product bunker with --static-swift-stdlib")
health = [i for i in instructions if i.upper().startswith("HEALTHCHECK ")]
if not health or HEALTH_PATH + " " not in health[0]:
    problem("Dockerfile", f"HEALTHCHECK must ask {HEALTH_PATH}")
users = [i.split()[1] for i in instructions if i.upper().startswith("USER ")]
if not users or users[-1].split(":")[0] in ("root", "0"):
    problem("Dockerfile", "the run stage must end as a non-root USER")
if f"--uid {RUN_AS}" not in joined:
    problem("Dockerfile", f"the bunker user is not uid {RUN_AS} (the manifests' runAsUser)")
if "ARG PG_MAJOR" not in joined:
    problem("Dockerfile", "no ARG PG_MAJOR for the PostgreSQL client")
for package in ("libzstd1", "sqlite3", "postgresql-client-${PG_MAJOR}", "ca-certificates", "tzdata"):
    if package not in joined:
        problem("Dockerfile", f"the run stage does not install {package}")
entry = [i for i in instructions if i.upper().startswith("ENTRYPOINT ")]
cmd = [i for i in instructions if i.upper().startswith("CMD ")]
if not entry or yaml.safe_load(entry[-1].split(None, 1)[1]) != ["bunker"]:
    problem("Dockerfile", 'ENTRYPOINT must be ["bunker"]')
if cmd:
    argv = yaml.safe_load(cmd[-1].split(None, 1)[1])
    check_argv("Dockerfile CMD", argv)
    exposed = [i.split()[1] for i in instructions if i.upper().startswith("EXPOSE ")]
    if "--listen" in argv:
        port = argv[argv.index("--listen") + 1].rsplit(":", 1)[1]
        if port not in exposed:
            problem("Dockerfile", f"listens on {port} but EXPOSEs {exposed}")
        if not health or f"/{port}" not in health[0]:
            problem("Dockerfile", f"HEALTHCHECK does not connect to port {port}")
else:
    problem("Dockerfile", "no CMD")

# --- the systemd units ---------------------------------------------------------------------------

for unit in sorted((ROOT / "docs" / "systemd").glob("*.service")):
    for line in unit.read_text().splitlines():
        m = re.match(r"^Exec\w+=[-@:+!]*(\S+)\s*(.*)$", line)
        if m and os.path.basename(m.group(1)) == "bunker":
            check_argv(f"{unit.name} {line.split('=')[0]}", m.group(2).split())

if problems:
    print(f"check-deploy: {len(problems)} problem(s)")
    for p in problems:
        print("  " + p)
    sys.exit(1)
print(f"check-deploy: {len(documents)} manifests, the Dockerfile and {len(list((ROOT / 'docs' / 'systemd').glob('*.service')))} "
      f"systemd services agree with {BUNKER}")
