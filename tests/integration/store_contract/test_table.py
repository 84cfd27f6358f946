"""The method table is the contract: every Protocol method is in it, each store has each one
with the Protocol's signature, and the server routes exactly the table."""

from __future__ import annotations

import inspect

import pytest

from qflow.store import contract
from qflow.store.metadata.store import SqlMetadataStore
from qflow.store.methods import StoreMethods, table
from qflow.store.remote import RemoteMetadataStore

pytestmark = pytest.mark.integration

AGGREGATES = (
    contract.RunStore,
    contract.StepRunStore,
    contract.LogStore,
    contract.EnvironmentStore,
    contract.RegistryStore,
    contract.RunQueryStore,
)


def _members(protocol: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(value)
        for name, value in vars(protocol).items()
        if inspect.isfunction(value) and not name.startswith("_")
    }


def test_the_table_has_every_method_of_every_aggregate() -> None:
    declared = {n: s for p in AGGREGATES for n, s in _members(p).items()}
    methods = {m.name: m for m in table()}
    assert set(methods) == set(declared)
    for name, method in methods.items():
        assert list(method.signature.parameters) == list(declared[name].parameters)[1:], name
        assert isinstance(getattr(StoreMethods, name), type(method))


def test_both_stores_have_each_method_with_the_protocols_parameters() -> None:
    for protocol in (*AGGREGATES, contract.MetadataStore):
        for name, signature in _members(protocol).items():
            sql = inspect.signature(getattr(SqlMetadataStore, name))
            assert list(sql.parameters) == list(signature.parameters), name
            assert callable(getattr(RemoteMetadataStore("http://127.0.0.1:9"), name))


def test_the_server_routes_exactly_the_table() -> None:
    from qflow.web.routes import api_store

    routes = {r.path.removeprefix("/api/store/") for r in api_store.router.routes}  # type: ignore[attr-defined]
    assert routes == {m.name for m in table()} == set(api_store.BODIES)
