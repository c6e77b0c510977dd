"""argocd-dir: the customer's ``argocd/`` directory in the infra repo, rendered from the kit's template.

What it guarantees:

- the directory is a pure function of customer.yaml and the kit at ``kit.version``:
  the kit branch may carry its own template (``templates/customer/argocd/``), which
  wins over the one shipped in ``playbooks/templates/argocd/``, so the layout evolves
  with the kit; ``kit.addons`` are checked against that branch's catalog, the
  components ``addons/values.yaml`` lists (the kit contract, ../shared/KIT.md);
- the layout is one Argo CD can keep: ``root.yaml`` and ``project.yaml`` are records
  that argocd-install applies as they are, outside the directory the root syncs
  (``apps/``, not recursive: user-guide/directory.md), so the root never manages or
  prunes itself (argoproj/argo-cd#8846); each ``apps/<section>.yaml`` is a
  multi-source Application (user-guide/multiple_sources.md): the kit's section chart
  at ``kit.version`` with ``helm.valueFiles: [$values/<path>/values/<section>.yaml]``,
  and the infra repo as ``ref: values``, so the customer's overrides reach the charts;
- nothing broken is ever committed: every rendered YAML file must parse and every
  Argo CD Application in it must carry the fields Argo CD needs;
- all changes land in **one** commit on top of the head observed by ``plan`` (Git
  Data API, no force): a push in between is a RetryableError and the engine
  re-plans, so nobody's commit is ever overwritten; no change means no commit;
- a managed file edited by hand is *drift*, not something to silently overwrite.
  The outputs record the sha256 of every file as last committed by us; a file whose
  content differs from that record (and from the new render) was changed by someone
  else: plan shows it, apply refuses with DriftError unless ``--force``. Without a
  record (first run, checkpoint lost, another repo) we cannot tell a hand edit from an
  old render, so a differing file is an ordinary update. A managed file deleted by
  hand is simply restored: there is no one's content to lose.

Hub mode (customer.yaml ``hub:``): the same kit sections are rendered as ApplicationSets
into the hub's GitOps repo instead (``render_hub``; layout and reasons in
bootstrap/hub_apps.py). Files shared by every cluster of the hub are never deleted or
reported as drift on one customer's behalf; the commit goes through the GitHub client's
``commit_shared``, which batches the customers of one process per hub branch and, after
another process's push, re-reads the branch and re-applies what still differs.

Known limit: a crash after the commit but before the checkpoint is saved leaves the
old record; the next plan with an unchanged config sees the repo equal to the render
and records the new hashes. If customer.yaml changes in between, our own last commit
is reported as drift — a refusal with a clear way out, never a lost edit.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

import playbooks
from bootstrap import hub as hub_label
from bootstrap import hub_apps
from bootstrap.clients import argocd as argocd_client
from bootstrap.clients import kit as kit_catalog
from bootstrap.errors import ConfigError, DriftError, PermanentError, StepError
from bootstrap.step import Action, Change, Context, Need, Outputs, Plan, Step, StepId

if TYPE_CHECKING:
    from bootstrap.config import CustomerConfig

BUILTIN_TEMPLATES = playbooks.path("templates", "argocd")
KIT_TEMPLATES = "templates/customer/argocd"
"""Where a kit branch may carry its own customer template (it then replaces the built-in one)."""
ADDONS = kit_catalog.ADDONS
ALERTMANAGER_COMPONENT = "kube-prometheus-stack"
IN_CLUSTER = "https://kubernetes.default.svc"
ROOT_APP = "root.yaml"
PROJECT = "project.yaml"
README = "README.md"
_GONE = "remove (no longer produced by the template)"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class WriteFile:
    """One file of the commit: ``content`` at ``path``, or the path removed (``content`` None).

    ``by_hand``: the repository's copy differs from what gitops-bootstrap last committed, so
    writing it loses someone's edit (apply refuses without ``--force``).
    """

    path: str
    content: str | None
    by_hand: bool = False


@dataclass(frozen=True)
class Head:
    """The branch head plan read the files at (None: no branch yet).

    Standalone, the commit goes on top of exactly this commit, and a push in between makes
    it fail (RetryableError) instead of overwriting; in the hub's shared repository it is a
    hint only (``commit_shared`` re-reads the head and re-applies what still differs).
    """

    commit: str | None


def application_problems(doc: Mapping[str, Any]) -> list[str]:
    """What an Argo CD Application lacks for Argo CD to accept it (empty = fine)."""
    problems = []
    meta, spec = doc.get("metadata") or {}, doc.get("spec") or {}
    if not str(doc.get("apiVersion", "")).startswith("argoproj.io/"):
        problems.append("apiVersion must be argoproj.io/v1alpha1")
    if not meta.get("name"):
        problems.append("metadata.name is missing")
    if not spec.get("project"):
        problems.append("spec.project is missing")
    dest = spec.get("destination") or {}
    if not (dest.get("server") or dest.get("name")):
        problems.append("spec.destination needs server or name")
    if not dest.get("namespace"):
        # Namespaced objects without a namespace fail, and CreateNamespace=true does nothing.
        problems.append("spec.destination.namespace is missing")
    policy = spec.get("syncPolicy") or {}
    if "automated" in policy and not policy.get("retry"):
        # Auto-sync does not retry a failed sync of the same revision (user-guide/auto_sync.md).
        problems.append("spec.syncPolicy.retry is missing (auto-sync never retries a failed sync)")
    sources = spec.get("sources") or ([spec["source"]] if spec.get("source") else [])
    if not sources:
        problems.append("spec.source is missing")
    for i, src in enumerate(sources):
        where = "spec.source" if "source" in spec else f"spec.sources[{i}]"
        for key in ("repoURL", "targetRevision"):
            if not src.get(key):
                problems.append(f"{where}.{key} is missing")
        if not (src.get("path") or src.get("chart") or src.get("ref")):
            problems.append(f"{where}.path is missing")
    refs = {str(src["ref"]) for src in sources if src.get("ref")}
    for i, src in enumerate(sources):
        for file in (src.get("helm") or {}).get("valueFiles") or []:
            ref = str(file)[1:].split("/", 1)[0] if str(file).startswith("$") else None
            if ref is not None and ref not in refs:
                problems.append(f"spec.sources[{i}].helm.valueFiles: ${ref} names no source with ref: {ref}")
    return problems


class ArgocdDir(Step):
    id = StepId("argocd-dir")
    title = "argocd/ directory in the infra repo"
    reads = (
        "customer",
        "kit",
        "github.api_url",
        "github.org",
        "github.infra_repo",
        "github.branch",
        "github.path",
        "argocd.namespace",
        "alerting.alertmanager",
        # hub mode: where the hub's files go and what the cluster is called there (not how to reach the hub)
        "hub.gitops",
        "hub.namespace",
        "hub.cluster_name",
        "hub.server",
        "slack.channel",
    )

    def checks(self, config: CustomerConfig) -> tuple[Need, ...]:
        # Hub mode writes only the hub's repo (with github.token), never the infra repo.
        repo = config.hub.gitops.repo if config.hub is not None else config.github.infra_repo
        return (Need("github", repo, ("contents:write",)), Need("kit", config.kit.repo))

    def plan(self, ctx: Context) -> Plan:
        if ctx.config.hub is not None:
            return _hub_plan(ctx)
        gh = ctx.config.github
        rendered = render(ctx)
        head = ctx.services.github.branch_head(gh.infra_repo, gh.branch)
        current = ctx.services.github.read_tree(gh.infra_repo, head, gh.path, rendered) if head else {}
        return _file_plan(ctx, head, rendered, current)

    def apply(self, ctx: Context, plan: Plan) -> Outputs:
        """Commit exactly the planned files, on top of the head plan read them at."""
        repo, branch, path = _target(ctx.config)
        planned = writes(plan)
        drifted = [w.path for w in planned if w.by_hand]
        if drifted and not ctx.force:
            raise DriftError(
                f"{', '.join(drifted)} in {repo} {'was' if len(drifted) == 1 else 'were'} edited by "
                "hand since gitops-bootstrap last committed it; re-run with --force to overwrite, or fold "
                "the change into customer.yaml / the kit"
            )
        files = {w.path: w.content for w in planned}
        if ctx.config.hub is not None:
            return _hub_apply(ctx, plan, files)
        parent = plan.observed_as(Head).commit
        ctx.intend(
            f"commit {len(files)} file(s) under {path}/ to {repo} branch {branch} "
            f"on top of {parent or 'nothing (new branch)'}"
        )
        message = f"bootstrap: {path}/ for {ctx.config.customer.name} (kit {ctx.config.kit.version})"
        commit = ctx.services.github.commit_files(repo, branch, parent, files, message)
        return {**plan.outputs, "commit": commit}

    def verify(self, ctx: Context) -> None:
        repo, branch, path = _target(ctx.config)
        if ctx.config.hub is not None:
            rendered, shared = render_hub(ctx)
            current = ctx.services.github.read_paths(repo, branch, _hub_places(ctx, shared), rendered)
        else:
            rendered = render(ctx)
            current = ctx.services.github.read_tree(repo, branch, path, rendered)
        wrong = sorted(p for p, text in rendered.items() if current.get(p) != text)
        if wrong:
            raise PermanentError(
                f"{repo} branch {branch} does not hold the rendered {', '.join(wrong)}; run again to re-plan"
            )

    def plan_destroy(self, ctx: Context) -> Plan:
        if ctx.config.hub is not None:
            return _hub_plan_destroy(ctx)
        gh = ctx.config.github
        recorded = _recorded(ctx)
        managed = set(recorded)
        try:
            managed |= set(render(ctx))
        except (ConfigError, StepError) as exc:
            if not managed:
                raise
            note = f"the template cannot be rendered ({exc}); removing the files recorded as ours"
        else:
            note = ""
        head = ctx.services.github.branch_head(gh.infra_repo, gh.branch)
        current = ctx.services.github.read_tree(gh.infra_repo, head, gh.path) if head else {}
        changes = []
        for path in sorted(managed & set(current)):
            last = recorded.get(path)
            by_hand = last is not None and sha256(current[path]) != last
            change = _change(gh.infra_repo, path, current[path], None, by_hand, restored=False)
            changes.append(dataclasses.replace(change, summary=change.summary.replace(_GONE, "remove")))
        return Plan(tuple(changes), (note,) if note else (), observed=Head(head))

    def destroy(self, ctx: Context, plan: Plan) -> None:
        if plan.empty:
            return
        repo, branch, path = _target(ctx.config)
        files = {w.path: w.content for w in writes(plan)}
        if ctx.config.hub is not None:
            cluster = ctx.config.hub_cluster_name
            ctx.intend(f"commit removing {len(files)} file(s) of {cluster} from {repo} {branch}")
            ctx.services.github.commit_shared(
                repo, branch, files, f"bootstrap: remove {path}/ files of cluster {cluster}"
            )
            return
        ctx.intend(f"commit removing {len(files)} file(s) under {path}/ from {repo} {branch}")
        ctx.services.github.commit_files(
            repo,
            branch,
            plan.observed_as(Head).commit,
            files,
            f"bootstrap: remove {path}/ for {ctx.config.customer.name}",
        )


# -- rendering -----------------------------------------------------------------


def render(ctx: Context) -> dict[str, str]:
    """The directory as it should be: repo path → text (reads the kit branch, never writes)."""
    kit = ctx.config.kit
    github = ctx.services.github
    head, sections = _kit_sections(ctx)
    addons = _addons(ctx.config, sections[ADDONS])
    templates = {
        path.removeprefix(KIT_TEMPLATES + "/"): text
        for path, text in github.read_tree(kit.repo, head, KIT_TEMPLATES).items()
    }
    source = f"{kit.repo}@{kit.version}:{KIT_TEMPLATES}"
    if not templates:
        templates = {
            str(p.relative_to(BUILTIN_TEMPLATES)): p.read_text()
            for p in sorted(BUILTIN_TEMPLATES.rglob("*"))
            if p.is_file()
        }
        source = "the built-in template (playbooks/templates/argocd)"
    files = render_templates(templates, _context(ctx, addons, sections), source)
    prefix = ctx.config.github.path.strip("/")
    out = {f"{prefix}/{name}": text for name, text in files.items()}
    _check_root(source, out, prefix)
    return out


def _kit_sections(ctx: Context) -> tuple[str, dict[str, dict[str, Any]]]:
    """The kit branch's head and each section's values.yaml (base, the cloud, addons)."""
    kit = ctx.config.kit
    github = ctx.services.github
    head = github.branch_head(kit.repo, kit.version)
    if head is None:
        raise ConfigError(kit_catalog.missing_version(ctx.config, github.branches(kit.repo)))
    sections = {
        s: kit_catalog.section_values(
            kit.repo, kit.version, s, github.read_file(kit.repo, head, f"{s}/values.yaml")
        )
        for s in ("base", kit.cloud, ADDONS)
    }
    return head, sections


def render_templates(templates: Mapping[str, str], context: Mapping[str, Any], source: str) -> dict[str, str]:
    """Render every template (``x.j2`` → ``x``) and check the result.

    Templates whose file name starts with ``_`` are partials (only included); a
    template that renders to whitespace only produces no file; ``{cloud}`` in a
    template's path becomes ``kit.cloud`` (``apps/{cloud}.yaml.j2`` → ``apps/aws.yaml``);
    ``README.md`` is rendered last and gets ``managed_files``, the sorted list of
    produced files.
    """
    import jinja2.sandbox  # only when rendering: `bootstrap status` imports the steps for their ids

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        loader=jinja2.DictLoader(dict(templates)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["yaml"] = _yaml_inline
    env.filters["yaml_block"] = _yaml_block
    names = sorted(n for n in templates if not Path(n).name.startswith("_"))
    readme = [n for n in names if n.removesuffix(".j2") == README]
    cloud = str((context.get("kit") or {}).get("cloud", ""))
    out: dict[str, str] = {}
    for name in [n for n in names if n not in readme] + readme:
        target = name.removesuffix(".j2").replace("{cloud}", cloud)
        if ".." in Path(target).parts or target.startswith("/"):
            raise PermanentError(f"{source}: template {name} would write outside the directory")
        extra = {"managed_files": sorted({*out, target})} if name in readme else {}
        try:
            text = env.get_template(name).render({**context, **extra})
        except jinja2.TemplateError as exc:
            line = f" line {exc.lineno}" if isinstance(exc, jinja2.TemplateSyntaxError) else ""
            raise PermanentError(f"{source}: template {name}{line} cannot be rendered: {exc}") from None
        if text.strip():
            out[target] = text.rstrip("\n") + "\n"
            _check(source, target, out[target])
    if ROOT_APP not in out:
        raise PermanentError(f"{source}: the template produces no {ROOT_APP} (the root Application)")
    return out


def _check(source: str, name: str, text: str) -> None:
    if not name.endswith((".yaml", ".yml")):
        return
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise PermanentError(f"{source}: {name} does not render to valid YAML: {exc}") from None
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "Application":
            problems = application_problems(doc)
            if problems:
                what = (doc.get("metadata") or {}).get("name", "?")
                raise PermanentError(f"{source}: Application {what} in {name}: {'; '.join(problems)}")


def synced_paths(root: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """(path, recursive) of every Git directory the root Application syncs."""
    spec = root.get("spec") or {}
    sources = spec.get("sources") or ([spec["source"]] if spec.get("source") else [])
    return [
        (str(src.get("path") or ".").strip("/"), bool((src.get("directory") or {}).get("recurse")))
        for src in sources
        if not src.get("ref")
    ]


def synced_by(paths: list[tuple[str, bool]], file: str) -> bool:
    """Whether a file lies in a synced directory (user-guide/directory.md: not recursive by default)."""
    parent = str(Path(file).parent)
    return any(parent == p or (recurse and parent.startswith(p + "/")) for p, recurse in paths)


def _check_root(source: str, files: Mapping[str, str], prefix: str) -> None:
    """The root's synced path must not hold root.yaml (nor project.yaml): argocd-install applies them.

    An Application whose source path holds its own definition manages itself, and with
    ``prune`` deletes itself when that definition changes (argoproj/argo-cd#8846); two
    writers of one object (bootstrap and Argo CD) would also fight over it.
    """
    root = next(d for d in yaml.safe_load_all(files[f"{prefix}/{ROOT_APP}"]) if isinstance(d, dict))
    paths = synced_paths(root)
    for record in (f"{prefix}/{ROOT_APP}", f"{prefix}/{PROJECT}"):
        if record in files and synced_by(paths, record):
            raise PermanentError(
                f"{source}: the root Application syncs the directory that holds {record}; "
                f"it would manage (and could prune) itself: sync a subdirectory such as apps/"
            )


def _yaml_inline(value: Any) -> str:
    """A YAML-safe flow value: JSON is YAML, and it quotes whatever needs quoting."""
    return json.dumps(value, ensure_ascii=False)


def _yaml_block(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True).rstrip("\n")


def _context(ctx: Context, addons: list[str], sections: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    cfg = ctx.config
    gh = cfg.github
    project = cfg.customer.name
    common: dict[str, Any] = {
        "customer": cfg.customer.name,
        "domain": cfg.customer.domain,
        "githubOrg": gh.org,
        "cloud": cfg.kit.cloud,
        "argocd": {
            "namespace": cfg.argocd.namespace,
            "project": project,
            "destination": {"server": IN_CLUSTER},
        },
    }
    values = _section_values(cfg, sections, common, {a: True for a in addons})
    charts = _chart_repos(sections)
    infra_url, kit_url = gh.ssh_url(gh.infra_repo), gh.https_url(cfg.kit.repo)
    return {
        "customer": cfg.customer.model_dump(mode="json"),
        "project": project,
        "root_name": root_name(cfg.customer.name),
        "destination": {"server": IN_CLUSTER},
        "kit": {
            "repo": cfg.kit.repo,
            "version": cfg.kit.version,
            "cloud": cfg.kit.cloud,
            "repo_url": kit_url,
            "addons": [{"name": a} for a in addons],
            "values": dict(cfg.kit.values),
        },
        "infra": {
            "repo": gh.infra_repo,
            "branch": gh.branch,
            "path": gh.path.strip("/"),
            "repo_url": infra_url,
        },
        "github": {"org": gh.org, "host": gh.git_host},
        "argocd": {"namespace": cfg.argocd.namespace},
        "source_repos": [infra_url, kit_url, *sorted(charts - {infra_url, kit_url})],
        "values": values,
    }


def _section_values(
    cfg: CustomerConfig,
    sections: Mapping[str, Mapping[str, Any]],
    common: Mapping[str, Any],
    app_enabled: Mapping[str, bool] | None,
) -> dict[str, dict[str, Any]]:
    """Each section's values file: the customer's settings, the Alertmanager wiring, kit.values.

    ``app_enabled`` None leaves ``appEnabled`` out of the addons values (hub mode: the
    cluster's labels switch addons on, not its values).
    """
    am = cfg.alerting.alertmanager
    values: dict[str, dict[str, Any]] = {}
    for name, kit_values in sections.items():
        own = dict(common)
        if name == ADDONS and app_enabled is not None:
            own["appEnabled"] = dict(app_enabled)
        if ALERTMANAGER_COMPONENT in (kit_values.get("components") or {}):
            # kube-prometheus-stack renders its own alertmanager-<crname> Secret unless
            # useExistingSecret; configSecret names ours, which must be in Alertmanager's namespace
            # (vendor/kube-prometheus-stack/templates-alertmanager-secret.yaml, values.yaml).
            own["components"] = {
                ALERTMANAGER_COMPONENT: {
                    "namespace": am.namespace,
                    "values": {
                        "alertmanager": {
                            "alertmanagerSpec": {"useExistingSecret": True, "configSecret": am.secret_name}
                        }
                    },
                }
            }
        values[name] = _merge(own, cfg.kit.values)
    return values


def _chart_repos(sections: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The Helm repositories the kit's components come from (an AppProject must allow them)."""
    return {
        str(c["repoURL"])
        for v in sections.values()
        for c in (v.get("components") or {}).values()
        if isinstance(c, Mapping) and c.get("repoURL")
    }


def _addons(config: CustomerConfig, addons_values: Mapping[str, Any]) -> list[str]:
    """The enabled addons; ConfigError naming every unknown one with its line (from addons/values.yaml)."""
    known = sorted(addons_values.get("components") or {})
    unknown = kit_catalog.unknown_addons(config, known)
    if unknown:
        raise ConfigError(
            f"{'; '.join(unknown)}; kit {config.kit.version} has: {', '.join(known) or '(none)'}"
        )
    return list(config.kit.addons)


# -- hub mode --------------------------------------------------------------------


def render_hub(ctx: Context) -> tuple[dict[str, str], set[str]]:
    """Hub mode: the hub repo's files this customer needs (path → text), and which of them are shared.

    Shared files (root, README, the kit's ApplicationSets) are a function of the kit and
    the hub only, so every customer of the hub renders them identically; the AppProject
    and ``clusters/<cluster>/`` are this customer's own (bootstrap/hub_apps.py).
    """
    cfg = ctx.config
    assert cfg.hub is not None and cfg.hub_cluster_name is not None
    hub, gh = cfg.hub, cfg.github
    repo, branch, prefix = _target(cfg)
    _, sections = _kit_sections(ctx)
    _addons(cfg, sections[ADDONS])  # kit.addons must exist in the catalog: they become labels
    catalog = sorted(sections[ADDONS].get("components") or {})
    cluster, project = cfg.hub_cluster_name, cfg.customer.name
    hub_url, kit_url = gh.ssh_url(repo), gh.https_url(cfg.kit.repo)
    kit = hub_label.kit_name(cfg.kit.repo)
    common = {"hub_url": hub_url, "hub_branch": branch, "hub_path": prefix, "namespace": hub.namespace}
    shared: dict[str, str] = {
        f"{prefix}/{README}": hub_apps.README,
        f"{prefix}/{ROOT_APP}": hub_apps.dump(
            hub_apps.HEADER.format(
                readme="README.md", what="The hub's root Application (a record, not synced)."
            ),
            hub_apps.root_application(**common),
        ),
    }
    sets = [("base", None, None), (cfg.kit.cloud, cfg.kit.cloud, None)]
    sets += [(ADDONS, None, addon) for addon in catalog]
    for section, cloud, addon in sets:
        name = f"addon-{addon}" if addon else section
        doc = hub_apps.application_set(
            kit_repo=cfg.kit.repo, kit_url=kit_url, section=section, cloud=cloud, addon=addon, **common
        )
        what = (
            f"The kit's {section}/ section{f' (addon {addon})' if addon else ''} for every selected cluster."
        )
        shared[f"{prefix}/appsets/{kit}/{name}.yaml"] = hub_apps.dump(
            hub_apps.HEADER.format(readme="../../README.md", what=what), doc
        )
    argocd = {"namespace": hub.namespace, "project": project}
    base = {
        "customer": cfg.customer.name,
        "domain": cfg.customer.domain,
        "githubOrg": gh.org,
        "cloud": cfg.kit.cloud,
        "argocd": argocd,
    }
    own: dict[str, str] = {}
    for section, values in _section_values(cfg, sections, base, None).items():
        header = hub_apps.HEADER.format(
            readme="../../../README.md",
            what=f"Cluster {cluster}'s values for the kit's {section}/ chart; its labels switch addons on.",
        )
        own[hub_apps.values_path(prefix, cluster, section)] = header + _yaml_block(values) + "\n"
    charts = _chart_repos(sections)
    project_doc = hub_apps.app_project(
        name=project,
        description=f"Platform of {cfg.customer.display_name or project} (kit {cfg.kit.repo}, hub mode)",
        namespace=hub.namespace,
        cluster=cluster,
        server=str(hub.server).rstrip("/") if hub.server else None,
        source_repos=[hub_url, kit_url, *sorted(charts - {hub_url, kit_url})],
        annotations=hub_apps.slack_subscriptions(cfg.slack.channel, argocd_client.TRIGGERS),
    )
    own[f"{prefix}/projects/{project}.yaml"] = hub_apps.dump(
        hub_apps.HEADER.format(
            readme="../README.md", what=f"{project}'s AppProject, synced by the hub's root."
        ),
        project_doc,
    )
    files = {**shared, **own}
    for path, text in files.items():
        _check(f"the hub render of {project}", path, text)
    return files, set(shared)


def _hub_places(ctx: Context, shared: set[str]) -> tuple[str, ...]:
    """What of the hub repo this customer reads: its own places and the shared files it renders.

    Never the whole directory: other customers' values are theirs, and reading them would
    cost one blob call each.
    """
    return (*_hub_own(ctx), *sorted(shared))


def _hub_own(ctx: Context) -> tuple[str, str]:
    _, _, prefix = _target(ctx.config)
    return (
        f"{prefix}/clusters/{ctx.config.hub_cluster_name}",
        f"{prefix}/projects/{ctx.config.customer.name}.yaml",
    )


def _owned(ctx: Context, path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in _hub_own(ctx))


def _hub_plan(ctx: Context) -> Plan:
    repo, branch, _ = _target(ctx.config)
    rendered, shared = render_hub(ctx)
    github = ctx.services.github
    head = github.branch_head(repo, branch)
    current = github.read_paths(repo, head, _hub_places(ctx, shared), rendered) if head else {}
    return _file_plan(ctx, head, rendered, current, shared=shared, owned=lambda p: _owned(ctx, p))


def _hub_apply(ctx: Context, plan: Plan, files: dict[str, str | None]) -> Outputs:
    """Commit the planned files to the hub's branch, which other customers write too.

    The plan's parent is only a hint here: the commit goes on top of the branch as it is
    when the commit is made (``commit_shared`` batches the writers of this process and
    re-reads after another process's push), and planned files that already hold the
    wanted content (a shared ApplicationSet another customer committed) are left out.
    """
    repo, branch, path = _target(ctx.config)
    cluster = ctx.config.hub_cluster_name
    ctx.intend(f"commit {len(files)} file(s) under {path}/ to {repo} branch {branch} for cluster {cluster}")
    cfg = ctx.config
    message = f"bootstrap: {path}/ for cluster {cluster} of {cfg.customer.name} (kit {cfg.kit.version})"
    head = ctx.services.github.commit_shared(repo, branch, files, message)
    return {**plan.outputs, "commit": head}


def _hub_plan_destroy(ctx: Context) -> Plan:
    """Remove this customer's own files; the shared ApplicationSets stay for the other clusters."""
    repo, branch, _ = _target(ctx.config)
    recorded = _recorded(ctx)
    managed = {p for p in recorded if _owned(ctx, p)}
    note = ""
    shared: set[str] = set()
    try:
        rendered, shared = render_hub(ctx)
    except (ConfigError, StepError) as exc:
        if not managed:
            raise
        note = f"the hub files cannot be rendered ({exc}); removing the files recorded as ours"
    else:
        managed |= set(rendered) - shared
    head = ctx.services.github.branch_head(repo, branch)
    current = ctx.services.github.read_paths(repo, head, _hub_own(ctx)) if head else {}
    changes = []
    for path in sorted(managed & set(current)):
        last = recorded.get(path)
        by_hand = last is not None and sha256(current[path]) != last
        change = _change(repo, path, current[path], None, by_hand, restored=False)
        changes.append(dataclasses.replace(change, summary=change.summary.replace(_GONE, "remove")))
    notes = [note] if note else []
    if shared:
        notes.append(f"the shared ApplicationSets in {repo} stay: other clusters of the hub may use them")
    return Plan(tuple(changes), tuple(notes), observed=Head(head))


# -- helpers -------------------------------------------------------------------


def root_name(customer: str) -> str:
    return f"{customer}-root"


def revision_changes(current: str | None, new: str | None) -> list[str]:
    """Which Applications in a file change kit revision: ``name: v1.4 -> v1.5`` (plan shows them)."""

    def revisions(text: str | None) -> dict[str, str]:
        out: dict[str, str] = {}
        try:
            docs = list(yaml.safe_load_all(text or ""))
        except yaml.YAMLError:
            return out
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("kind") != "Application":
                continue
            spec = doc.get("spec") or {}
            sources = spec.get("sources") or ([spec["source"]] if spec.get("source") else [])
            revs = [str(s.get("targetRevision")) for s in sources if not s.get("ref")]
            out[str((doc.get("metadata") or {}).get("name"))] = ",".join(revs)
        return out

    before, after = revisions(current), revisions(new)
    return [
        f"{n}: {before[n]} -> {after[n]}"
        for n in sorted(before.keys() & after.keys())
        if before[n] != after[n]
    ]


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _file_plan(
    ctx: Context,
    head: str | None,
    rendered: Mapping[str, str],
    current: Mapping[str, str],
    shared: Collection[str] = (),
    owned: Callable[[str], bool] | None = None,
) -> Plan:
    """The changes that make ``current`` (the repo at ``head``) hold ``rendered``, drift marked.

    ``owned`` says which recorded paths this customer may delete (hub mode: a shared file
    this customer no longer renders, e.g. an addon its kit version lacks, may still serve
    other clusters, so it is never deleted on one customer's behalf); ``shared`` paths are
    labelled as such in the plan and never count as drift.
    """
    repo, branch, _ = _target(ctx.config)
    recorded = _recorded(ctx)
    changes = []
    for path in sorted(set(rendered) | set(recorded)):
        new, cur, last = rendered.get(path), current.get(path), recorded.get(path)
        if new == cur or (new is None and owned is not None and not owned(path)):
            continue
        # Other customers of the hub write the shared files too: a change there is not a hand edit.
        by_hand = last is not None and cur is not None and sha256(cur) != last and path not in shared
        change = _change(repo, path, cur, new, by_hand, restored=last is not None)
        moved = revision_changes(cur, new)
        if moved:
            change = dataclasses.replace(change, summary=f"{change.summary}; revision {', '.join(moved)}")
        if path in shared:
            change = dataclasses.replace(change, summary=f"{change.summary} (shared by the hub's clusters)")
        changes.append(change)
    notes = [
        f"{repo}:{path} is not managed by gitops-bootstrap; left alone"
        for path in sorted(set(current) - set(rendered) - set(recorded))
    ]
    if head is None:
        notes.append(f"{repo} has no branch {branch}; the commit creates it")
    return Plan(tuple(changes), tuple(notes), _outputs(ctx, head, rendered), Head(head))


def _recorded(ctx: Context) -> dict[str, str]:
    """sha256 of each file as we last committed it, if the record is for this repo and branch."""
    repo, branch, _ = _target(ctx.config)
    mine = ctx.outputs.get(ArgocdDir.id, {})
    files = mine.get("files")
    if mine.get("repo") != repo or mine.get("branch") != branch or not isinstance(files, dict):
        return {}
    return {str(p): str(h) for p, h in files.items()}


def _target(config: CustomerConfig) -> tuple[str, str, str]:
    """(repo, branch, path) the step writes: the infra repo, or in hub mode the hub's repo."""
    if config.hub is not None:
        hub = config.hub.gitops
        return hub.repo, hub.branch, hub.path.strip("/")
    gh = config.github
    return gh.infra_repo, gh.branch, gh.path.strip("/")


def _outputs(ctx: Context, commit: str | None, rendered: Mapping[str, str]) -> Outputs:
    repo, branch, path = _target(ctx.config)
    out: Outputs = {
        "repo": repo,
        "branch": branch,
        "path": path,
        "commit": commit,
        "root_app_path": f"{path}/{ROOT_APP}",
        "repo_url": ctx.config.github.ssh_url(repo),
        "kit_repo": ctx.config.kit.repo,
        "kit_version": ctx.config.kit.version,
        "files": {p: sha256(t) for p, t in sorted(rendered.items())},
    }
    if ctx.config.hub is not None:
        out["hub_cluster"] = ctx.config.hub_cluster_name
    return out


def writes(plan: Plan) -> list[WriteFile]:
    """The files a plan of this step commits (every change is one file)."""
    return [c.payload_as(WriteFile) for c in plan.changes]


def _change(repo: str, path: str, cur: str | None, new: str | None, by_hand: bool, restored: bool) -> Change:
    if new is None:
        action, summary = Action.DELETE, _GONE
    elif cur is None:
        action, summary = Action.CREATE, "restore (deleted by hand)" if restored else "create"
    else:
        action, summary = Action.UPDATE, "update"
    if by_hand:
        summary += "; edited by hand since gitops-bootstrap last committed it"
    diff = "".join(
        difflib.unified_diff(
            (cur or "").splitlines(keepends=True),
            (new or "").splitlines(keepends=True),
            f"a/{path}" if cur is not None else "/dev/null",
            f"b/{path}" if new is not None else "/dev/null",
        )
    )
    return Change(action, f"{repo}:{path}", summary, diff, payload=WriteFile(path, new, by_hand))
