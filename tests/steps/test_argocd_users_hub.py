"""argocd-users in hub mode: two customers' accounts side by side in the hub's shared Argo CD objects.

Through real Ansible into the hub's Kubernetes emulator, whose server-side apply keeps
field ownership per manager (sandbox/kube.py ``_apply``): each customer applies as its own
manager, so each apply and each destroy touches only that customer's keys.
"""

from __future__ import annotations

import bcrypt

from bootstrap.clients import argocd
from bootstrap.step import Action
from sandbox import hub as sandbox_hub
from steps.argocd_users import ArgocdUsers, hub_manager
from tests.fixtures.world import World
from tests.steps.hub_world import customer_file

NS = "argocd"
KUVAQ = {
    "users": [
        {"name": "alice", "capabilities": ["login"], "role": "role:admin"},
        {"name": "ci", "capabilities": ["apiKey"], "role": "role:readonly"},
    ]
}
ZORBU = {"users": [{"name": "alice", "capabilities": ["login"], "role": "role:readonly"}]}


def data(world: World, kind: str, name: str) -> dict[str, str]:
    obj = world.hub.get("v1", kind, NS, name)
    return argocd.secret_data(obj) if kind == "Secret" else argocd.config_data(obj)


def password(world: World, customer: str, name: str) -> str | None:
    record = world.vault.client.read(f"{world.vault.prefix}/{customer}/argocd/users/{name}")
    return None if record is None else str(record["password"])


def test_two_customers_share_the_hub_and_destroy_one_leaves_the_other(hub_world: World) -> None:
    world = hub_world
    before = {name: data(world, "ConfigMap", name) for name in (argocd.CM, argocd.RBAC)}
    world.customer(argocd=KUVAQ)
    kuvaq = world.session().context
    hub = sandbox_hub.section(str(world.hub.kubeconfig_path))
    zorbu = world.session(customer_file(world, "zorbu", argocd=ZORBU, hub=hub)).context
    step = ArgocdUsers()

    plan = step.plan(kuvaq)
    assert [(c.action, c.target) for c in plan.changes] == [
        (Action.CREATE, "Argo CD account kuvaq-alice in the hub"),
        (Action.UPDATE, f"ConfigMap {NS}/argocd-cm in the hub"),
        (Action.UPDATE, f"ConfigMap {NS}/argocd-rbac-cm in the hub"),
        (Action.UPDATE, f"Secret {NS}/argocd-secret in the hub"),
    ]
    step.apply(kuvaq, plan)
    step.apply(zorbu, step.plan(zorbu))
    step.verify(kuvaq)
    step.verify(zorbu)

    cm, rbac, sec = (
        data(world, "ConfigMap", argocd.CM),
        data(world, "ConfigMap", argocd.RBAC),
        data(world, "Secret", argocd.SECRET),
    )
    assert {k: v for k, v in cm.items() if k.startswith("accounts.")} == {
        "accounts.kuvaq-alice": "login",
        "accounts.kuvaq-alice.enabled": "true",
        "accounts.kuvaq-ci": "apiKey",
        "accounts.kuvaq-ci.enabled": "true",
        "accounts.zorbu-alice": "login",
        "accounts.zorbu-alice.enabled": "true",
    }
    # The hub operator's keys (admin, policy.csv, policy.default) are as they were.
    assert all(cm.get(k) == v for k, v in before[argocd.CM].items())
    assert all(rbac.get(k) == v for k, v in before[argocd.RBAC].items())
    assert "admin.enabled" not in cm and "admin.password" not in sec
    # RBAC: one key per customer, every line scoped to the customer's own project.
    assert "p, kuvaq-alice, applications, *, kuvaq/*, allow" in rbac["policy.kuvaq.csv"]
    assert "p, zorbu-alice, applications, get, zorbu/*, allow" in rbac["policy.zorbu.csv"]
    assert "g, kuvaq:sre, role:kuvaq-admin" in rbac["policy.kuvaq.csv"]
    for customer in ("kuvaq", "zorbu"):
        objects = [
            line.split(", ")[4] for line in rbac[f"policy.{customer}.csv"].splitlines() if line[0] == "p"
        ]
        assert objects and all(o in (customer, f"{customer}/*") for o in objects)
    # Same user name, two customers: two accounts, two passwords, each hash from its own Vault record.
    for customer in ("kuvaq", "zorbu"):
        stored = password(world, customer, "alice")
        assert stored is not None
        assert bcrypt.checkpw(stored.encode(), sec[f"accounts.{customer}-alice.password"].encode())
    assert password(world, "kuvaq", "ci") is None and "accounts.kuvaq-ci.password" not in sec
    # Nothing in either customer cluster; each customer's keys belong to its own manager.
    assert world.kube.log.writes == []
    owned = argocd.owned_keys(world.hub.get("v1", "ConfigMap", NS, argocd.RBAC), hub_manager("zorbu"))
    assert owned == {"policy.zorbu.csv"}
    assert step.plan(world.session().context).empty

    # Rotation in a hub: the customer's login accounts only, never the hub's admin.
    assert [c.target for c in step.plan_rotate(kuvaq, "passwords").changes] == ["Argo CD account alice"]

    gone = step.plan_destroy(zorbu)
    assert sorted(c.target for c in gone.changes) == [
        f"Vault {world.vault.prefix}/zorbu/argocd/users/alice",
        f"{NS}/argocd-cm in the hub",
        f"{NS}/argocd-rbac-cm in the hub",
        f"{NS}/argocd-secret in the hub",
    ]
    step.destroy(zorbu, gone)
    after_cm, after_rbac = data(world, "ConfigMap", argocd.CM), data(world, "ConfigMap", argocd.RBAC)
    after_sec = data(world, "Secret", argocd.SECRET)
    assert not [k for k in (*after_cm, *after_rbac, *after_sec) if "zorbu" in k]
    assert {k: v for k, v in after_cm.items() if "kuvaq" in k} == {
        k: v for k, v in cm.items() if "kuvaq" in k
    }
    assert after_rbac["policy.kuvaq.csv"] == rbac["policy.kuvaq.csv"]
    assert {k: v for k, v in after_sec.items() if "kuvaq" in k} == {
        k: v for k, v in sec.items() if "kuvaq" in k
    }
    assert password(world, "zorbu", "alice") is None and password(world, "kuvaq", "alice") is not None
    assert step.plan(world.session().context).empty and step.plan_destroy(zorbu).empty
