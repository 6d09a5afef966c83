"""Owners and tags on every asset, so that the catalog can be filtered by team, layer and personal data."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from ekvio_assets.models.assets import MODELS_GROUP
from ekvio_assets.naming import Namespace
from ekvio_assets.reports.assets import REPORTS_GROUP
from ekvio_assets.storage.metadata import PII_TAG

# Columns that identify a person: a table holding any of them holds personal data.
PERSONAL_COLUMNS = frozenset({"login", "fio", "user_id"})
_LAYERS = {REPORTS_GROUP: "report", MODELS_GROUP: "analytics"}
COMPANY_TAG = "ekvio/company"


def holds_personal_data(spec: dg.AssetSpec) -> bool:
    schema = spec.metadata.get("dagster/column_schema")
    columns = {column.name for column in schema.columns} if isinstance(schema, dg.TableSchema) else set()
    return spec.tags.get(PII_TAG) == "true" or bool(columns & PERSONAL_COLUMNS)


def _owned_and_tagged(spec: dg.AssetSpec, owners: Sequence[str], namespace: Namespace) -> dg.AssetSpec:
    layers = {namespace.name(group): layer for group, layer in _LAYERS.items()}
    tags = {"source": "ekvio", "layer": layers[spec.group_name or ""]}
    if namespace.company is not None:
        tags[COMPANY_TAG] = namespace.company
    if holds_personal_data(spec):
        tags[PII_TAG] = "true"
    return spec.merge_attributes(owners=list(owners), tags=tags)


def with_owners_and_tags(
    assets: Sequence[dg.AssetsDefinition], owners: Sequence[str], namespace: Namespace
) -> list[dg.AssetsDefinition]:
    """The company's assets with `owners` (EKVIO_ASSET_OWNERS), a `layer` tag (report or analytics),
    `pii: true` on those whose tables hold personal data (logins, names), and the company's key."""
    return list(dg.map_asset_specs(lambda spec: _owned_and_tagged(spec, owners, namespace), assets))
