"""`glm5cluster schema`: print the inventory's JSON Schema, for editors to validate as you type."""

from __future__ import annotations

import json
from typing import Any

import click

from glm5cluster.model.inventory import Inventory

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def inventory_schema() -> dict[str, Any]:
    """The JSON Schema of an inventory file (titles and descriptions included)."""
    schema = Inventory.model_json_schema(mode="validation")
    return {"$schema": SCHEMA_DIALECT, **schema}


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the schema to this file instead of standard output.")
def command(output: str | None) -> None:
    """Print the JSON Schema of inventory files.

    Editors validate as you type with it, e.g. with the YAML language server, a first line
    `# yaml-language-server: $schema=./glm5cluster-inventory.schema.json`.
    """
    text = json.dumps(inventory_schema(), indent=2, sort_keys=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
