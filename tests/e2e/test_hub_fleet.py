"""A hub-mode fleet: many customers commit into one hub repo branch at once, and no update is lost.

Twenty customers run argocd-dir through the CLI with ``--parallel 10`` against the same hub
repo in the GitHub emulator. Inside the process the writers of that branch are batched
(bootstrap/clients/github_batch.py), so they never race each other: GitHub never answers a
non-fast-forward, every customer's values are on the branch at the end, and each shared
ApplicationSet was written by exactly one commit. The second test stands in for another
process: a foreign commit lands between our commit and the branch update, GitHub refuses the
update (422, not a fast forward) and the client re-reads and re-applies on top of it.
"""

from __future__ import annotations

import itertools
import json
import threading

from bootstrap.clients.github import GitHubClient
from sandbox import customer as sandbox_customer
from tests.fixtures.world import World
from tests.steps import hub_world
from tests.steps.hub_world import HUB_NAME, HUB_OWNER, PATH

NAMES = tuple(f"c{i:03d}" for i in range(1, 21))
SHARED = f"{PATH}/appsets/kit-core/base.yaml"


def _history(world: World) -> list[dict[str, str]]:
    """The branch's commits, oldest first, each as path → blob SHA."""
    repo = world.github.repos[(HUB_OWNER, HUB_NAME)]
    sha: str | None = repo.refs["heads/main"]
    out = []
    while sha is not None:
        commit = repo.commits[sha]
        out.append({p: leaf[2] for p, leaf in repo.leaves(commit.tree).items()})
        sha = commit.parents[0] if commit.parents else None
    return out[::-1]


def test_a_parallel_fleet_loses_no_update_and_commits_shared_sets_once(world: World) -> None:
    hub_world.add_hub_repo(world)
    paths = []
    for i, name in enumerate(NAMES):
        kit = {"cloud": "gcp" if i % 2 else "aws", "addons": ["loki"] if i % 3 else []}
        paths.append(hub_world.customer_file(world, name, kit=kit))
    world.reset_logs()

    proc = world.cli("run", *map(str, paths), "--only", "argocd-dir", "--parallel", "10", "--output", "json")

    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert {c["customer"]: c["exit_code"] for c in doc["customers"]} == dict.fromkeys(NAMES, 0)
    files = hub_world.hub_files(world)
    for name in NAMES:  # no lost update
        cloud = "gcp" if NAMES.index(name) % 2 else "aws"
        for section in ("base", cloud, "addons"):
            assert f"{PATH}/clusters/{name}/values/{section}.yaml" in files, (name, section)
        assert f"{PATH}/projects/{name}.yaml" in files
    history = _history(world)
    changes = [(a.get(SHARED), b.get(SHARED)) for a, b in itertools.pairwise(history)]
    assert sum(1 for before, after in changes if before != after) == 1  # the shared set: one commit
    # Serialized in the process: GitHub never had to refuse a branch update.
    assert world.github.log.count("PATCH", r"/git/refs/heads/main$") == len(history) - 1
    assert not [c for c in world.github.log.calls if c.method == "PATCH" and c.status >= 400]
    assert len(history) - 1 <= len(NAMES)  # at most one commit per customer; batches make it fewer


def test_a_push_by_another_process_is_re_read_and_re_applied(world: World) -> None:
    hub_world.add_hub_repo(world)
    client = GitHubClient(world.github.url, sandbox_customer.GITHUB_TOKEN)
    fired = threading.Event()

    def foreign_push(_: int) -> None:
        last = world.github.log.calls[-1]
        if last.method == "POST" and last.path.endswith("/git/commits") and not fired.is_set():
            fired.set()  # between our commit object and the branch update, someone else pushes
            world.github.commit_files(HUB_OWNER, HUB_NAME, "main", {"other/file.txt": "theirs\n"}, "foreign")

    world.github.faults.after_write = foreign_push
    head = client.commit_shared(hub_world.HUB_REPO, "main", {f"{PATH}/x.yaml": "ours: 1\n"}, "ours")
    world.github.faults.after_write = None

    tree = world.github.read_tree(HUB_OWNER, HUB_NAME, "main")
    assert tree["other/file.txt"] == "theirs\n" and tree[f"{PATH}/x.yaml"] == "ours: 1\n"
    assert world.github.repos[(HUB_OWNER, HUB_NAME)].refs["heads/main"] == head
    refused = [c for c in world.github.log.calls if c.method == "PATCH" and c.status == 422]
    assert len(refused) == 1  # the non-fast-forward happened, and was handled
    # Nothing left to do: the same files again make no commit.
    commits = world.github.log.count("POST", r"/git/commits$")
    assert client.commit_shared(hub_world.HUB_REPO, "main", {f"{PATH}/x.yaml": "ours: 1\n"}, "ours") == head
    assert world.github.log.count("POST", r"/git/commits$") == commits
