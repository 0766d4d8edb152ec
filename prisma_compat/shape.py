"""Database shapes, compared: what a schema.prisma says against what a live database has.

Both sides are reduced to the same terms (PostgreSQL's `format_type` names, normalised
defaults, column tuples for keys and indexes, foreign keys with their actions), so the
comparison is plain equality, object by object.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from prisma_compat.schema import Attribute, Call, Field, Model, Ref, Schema

IGNORED_TABLES = {"alembic_version", "_prisma_migrations"}
SCALARS = {"String", "Int", "BigInt", "Float", "Decimal", "Boolean", "DateTime", "Json", "Bytes"}
_BASE_TYPES = {
    "String": "text",
    "Int": "integer",
    "BigInt": "bigint",
    "Float": "double precision",
    "Decimal": "numeric(65,30)",
    "Boolean": "boolean",
    "DateTime": "timestamp(3) without time zone",
    "Json": "jsonb",
    "Bytes": "bytea",
}
_NATIVE = {
    "Text": "text", "Uuid": "uuid", "Integer": "integer", "SmallInt": "smallint",
    "BigInt": "bigint", "Real": "real", "DoublePrecision": "double precision",
    "Boolean": "boolean", "Date": "date", "Json": "json", "JsonB": "jsonb", "ByteA": "bytea",
    "Citext": "citext", "Inet": "inet", "Money": "money", "Xml": "xml",
}  # fmt: skip
ACTIONS = {
    "a": "NoAction", "r": "Restrict", "c": "Cascade", "n": "SetNull", "d": "SetDefault",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Column:
    type: str
    nullable: bool
    default: str | None


@dataclass(frozen=True, slots=True)
class ForeignKey:
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    on_delete: str
    on_update: str


@dataclass
class Table:
    columns: dict[str, Column] = field(default_factory=dict)
    primary_key: tuple[str, ...] = ()
    uniques: set[tuple[str, ...]] = field(default_factory=set)
    indexes: set[tuple[str, ...]] = field(default_factory=set)
    foreign_keys: set[ForeignKey] = field(default_factory=set)


Shape = dict[str, Table]


def normalize_default(expression: str | None) -> str | None:
    """Comparable form of a column default: no casts, no redundant parentheses, lowercase."""
    if expression is None:
        return None
    text = re.sub(r"::[a-z ]+(\(\d+(,\d+)?\))?(\[\])?", "", expression.strip(), flags=re.I)
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    if text.lower() in ("now()", "current_timestamp", "current_timestamp(3)"):
        return "current_timestamp"
    if text.lower().startswith("nextval("):
        return "autoincrement"
    return text.lower() if not text.startswith("'") else text


# -- from schema.prisma ---------------------------------------------------------------------


def _column_type(schema: Schema, found: Field) -> str:
    if found.unsupported is not None:
        base = found.unsupported.lower()
    elif found.type in schema.enums:
        base = f'"{found.type}"' if found.type != found.type.lower() else found.type
    else:
        base = _BASE_TYPES[found.type]
        native = found.native_type
        if native is not None:
            kind = native.name.removeprefix("db.")
            args = ",".join(str(a) for a in native.args)
            if kind in ("VarChar", "Char"):
                word = "character varying" if kind == "VarChar" else "character"
                base = f"{word}({args})" if args else word
            elif kind in ("Timestamp", "Timestamptz", "Time", "Timetz"):
                zone = "with time zone" if kind.endswith("tz") else "without time zone"
                word = "timestamp" if kind.startswith("Timestamp") else "time"
                base = f"{word}({args or 3}) {zone}"
            elif kind == "Decimal":
                base = f"numeric({args})" if args else "numeric"
            else:
                base = _NATIVE.get(kind, kind.lower())
    return base + ("[]" if found.is_list else "")


def _default(schema: Schema, found: Field) -> str | None:
    attribute = found.attribute("default")
    if attribute is None:
        return None
    value = attribute.arg("value")
    if isinstance(value, Call):
        if value.name == "now":
            return "current_timestamp"
        if value.name == "autoincrement":
            return "autoincrement"
        if value.name == "dbgenerated" and value.args:
            return normalize_default(str(value.args[0]))
        return None  # cuid(), uuid(): made by the client, no database default
    if isinstance(value, list):
        return (
            "array[]"
            if not value
            else normalize_default(
                "ARRAY[" + ",".join(f"'{v}'" if isinstance(v, str) else str(v) for v in value) + "]"
            )
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, Ref):  # an enum value
        return f"'{value.name}'"
    return normalize_default(str(value))


def _columns_of(model: Model, names: list[Any]) -> tuple[str, ...]:
    by_name = {f.name: f.db_name for f in model.fields}
    return tuple(by_name.get(getattr(n, "name", n), getattr(n, "name", n)) for n in names)


def _is_scalar(schema: Schema, found: Field) -> bool:
    return found.type in SCALARS or found.type in schema.enums or found.unsupported is not None


def from_schema(schema: Schema) -> Shape:
    """The tables, columns, keys and foreign keys that Prisma would create for `schema`."""
    shape: Shape = {}
    for model in schema.models.values():
        table = Table()
        for found in model.fields:
            if not _is_scalar(schema, found):
                continue
            table.columns[found.db_name] = Column(
                type=_column_type(schema, found),
                nullable=found.optional or found.is_list,
                default=_default(schema, found),
            )
            if found.attribute("id"):
                table.primary_key = (found.db_name,)
            if found.attribute("unique"):
                table.uniques.add((found.db_name,))
        for attribute in model.attributes:
            columns = _columns_of(model, attribute.arg("fields") or [])
            if attribute.name == "@id":
                table.primary_key = columns
            elif attribute.name == "@unique":
                table.uniques.add(columns)
            elif attribute.name == "@index":
                table.indexes.add(columns)
        shape[model.db_name] = table
    for model in schema.models.values():
        for found in model.fields:
            relation = found.attribute("relation")
            if relation is None or not relation.kwargs.get("fields"):
                continue
            target = schema.models[found.type]
            shape[model.db_name].foreign_keys.add(
                ForeignKey(
                    columns=_columns_of(model, relation.kwargs["fields"]),
                    ref_table=target.db_name,
                    ref_columns=_columns_of(target, relation.kwargs["references"]),
                    on_delete=_action(
                        relation, "onDelete", "SetNull" if found.optional else "Restrict"
                    ),
                    on_update=_action(relation, "onUpdate", "Cascade"),
                )
            )
    return shape


def _action(relation: Attribute, key: str, default: str) -> str:
    value = relation.kwargs.get(key)
    return value.name if isinstance(value, Ref) else default


# -- from a live database -------------------------------------------------------------------

COLUMNS_SQL = """
SELECT c.relname AS table_name, a.attname AS column_name,
       format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable,
       pg_get_expr(d.adbin, d.adrelid) AS default_value
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0
  AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
"""
INDEXES_SQL = """
SELECT t.relname AS table_name, ix.indisunique AS is_unique, ix.indisprimary AS is_primary,
       -- An expression's place (attnum 0) gives NULL: such an index is skipped.
       ARRAY(SELECT a.attname FROM unnest(ix.indkey) WITH ORDINALITY AS k(num, ord)
             LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.num
             ORDER BY k.ord) AS columns
FROM pg_index ix
JOIN pg_class t ON t.oid = ix.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = current_schema() AND t.relkind IN ('r', 'p')
"""
FOREIGN_KEYS_SQL = """
SELECT cl.relname AS table_name, rt.relname AS ref_table,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY AS k(num, ord)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num
             ORDER BY k.ord) AS columns,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY AS k(num, ord)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num
             ORDER BY k.ord) AS ref_columns,
       con.confdeltype AS on_delete, con.confupdtype AS on_update
FROM pg_constraint con
JOIN pg_class cl ON cl.oid = con.conrelid
JOIN pg_class rt ON rt.oid = con.confrelid
JOIN pg_namespace n ON n.oid = cl.relnamespace
WHERE con.contype = 'f' AND n.nspname = current_schema()
"""


async def from_database(connection: Any) -> Shape:
    """Read the current schema of an asyncpg connection into a Shape."""
    shape: Shape = {}
    for row in await connection.fetch(COLUMNS_SQL):
        if row["table_name"] in IGNORED_TABLES:
            continue
        table = shape.setdefault(row["table_name"], Table())
        table.columns[row["column_name"]] = Column(
            row["type"], row["nullable"], normalize_default(row["default_value"])
        )
    for row in await connection.fetch(INDEXES_SQL):
        found_table = shape.get(row["table_name"])
        if found_table is None or not all(row["columns"]):
            continue
        table = found_table
        columns = tuple(row["columns"])
        if row["is_primary"]:
            table.primary_key = columns
        elif row["is_unique"]:
            table.uniques.add(columns)
        else:
            table.indexes.add(columns)
    for row in await connection.fetch(FOREIGN_KEYS_SQL):
        owner = shape.get(row["table_name"])
        if owner is None:
            continue
        owner.foreign_keys.add(
            ForeignKey(
                tuple(row["columns"]), row["ref_table"], tuple(row["ref_columns"]),
                ACTIONS[_char(row["on_delete"])], ACTIONS[_char(row["on_update"])],
            )
        )  # fmt: skip
    return shape


def _char(value: bytes | str) -> str:
    """PostgreSQL's one-byte "char" comes from asyncpg as bytes."""
    return value.decode() if isinstance(value, bytes) else value


# -- the comparison -------------------------------------------------------------------------

Severity = Literal["drift", "additive"]


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    table: str
    object: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def compare(expected: Shape, actual: Shape) -> list[Finding]:
    """What the database lacks or has otherwise (drift), and what it has in addition."""
    found: list[Finding] = []
    for name, want in sorted(expected.items()):
        have = actual.get(name)
        if have is None:
            found.append(Finding("drift", name, "table", "table is missing"))
            continue
        found += _compare_table(name, want, have)
    for name in sorted(set(actual) - set(expected)):
        found.append(Finding("additive", name, "table", "table not in the schema"))
    return found


def _compare_table(name: str, want: Table, have: Table) -> list[Finding]:
    found: list[Finding] = []
    for column, spec in want.columns.items():
        got = have.columns.get(column)
        if got is None:
            found.append(Finding("drift", name, f"column {column}", "column is missing"))
            continue
        if got.type != spec.type:
            found.append(
                Finding(
                    "drift",
                    name,
                    f"column {column}",
                    f"type is {got.type}, schema says {spec.type}",
                )
            )
        if got.nullable != spec.nullable:
            says = "nullable" if spec.nullable else "required"
            found.append(
                Finding(
                    "drift", name, f"column {column}", f"nullability differs: schema says {says}"
                )
            )
        if spec.default is not None and got.default != spec.default:
            found.append(
                Finding(
                    "drift",
                    name,
                    f"column {column}",
                    f"default is {got.default}, schema says {spec.default}",
                )
            )
        elif spec.default is None and got.default is not None:
            found.append(
                Finding(
                    "additive",
                    name,
                    f"column {column}",
                    f"has a default ({got.default}) the schema does not declare",
                )
            )
    for column, got in have.columns.items():
        if column in want.columns:
            continue
        if got.nullable or got.default is not None:
            found.append(
                Finding(
                    "additive", name, f"column {column}", "extra column (nullable or defaulted)"
                )
            )
        else:
            found.append(
                Finding(
                    "drift",
                    name,
                    f"column {column}",
                    "extra required column without a default: Prisma's inserts would fail",
                )
            )
    if want.primary_key != have.primary_key:
        found.append(
            Finding(
                "drift",
                name,
                "primary key",
                f"is {have.primary_key or 'missing'}, schema says {want.primary_key or 'none'}",
            )
        )
    for columns in sorted(want.uniques - have.uniques):
        found.append(Finding("drift", name, f"unique {_cols(columns)}", "unique index is missing"))
    for columns in sorted(have.uniques - want.uniques):
        found.append(Finding("additive", name, f"unique {_cols(columns)}", "extra unique index"))
    for columns in sorted(want.indexes - have.indexes):
        found.append(Finding("drift", name, f"index {_cols(columns)}", "index is missing"))
    for columns in sorted(have.indexes - want.indexes):
        found.append(Finding("additive", name, f"index {_cols(columns)}", "extra index"))
    have_by_columns = {(fk.columns, fk.ref_table, fk.ref_columns): fk for fk in have.foreign_keys}
    wanted_keys = set()
    for fk in sorted(want.foreign_keys, key=lambda k: k.columns):
        key = (fk.columns, fk.ref_table, fk.ref_columns)
        wanted_keys.add(key)
        got_fk = have_by_columns.get(key)
        label = f"foreign key {_cols(fk.columns)} -> {fk.ref_table}"
        if got_fk is None:
            found.append(Finding("drift", name, label, "foreign key is missing"))
        elif (got_fk.on_delete, got_fk.on_update) != (fk.on_delete, fk.on_update):
            have_actions = f"ON DELETE {got_fk.on_delete} ON UPDATE {got_fk.on_update}"
            want_actions = f"ON DELETE {fk.on_delete} ON UPDATE {fk.on_update}"
            message = f"actions are {have_actions}, schema says {want_actions}"
            found.append(Finding("drift", name, label, message))
    for key, fk in have_by_columns.items():
        if key not in wanted_keys:
            found.append(
                Finding(
                    "additive",
                    name,
                    f"foreign key {_cols(fk.columns)} -> {fk.ref_table}",
                    "extra foreign key",
                )
            )
    return found


def _cols(columns: tuple[str, ...]) -> str:
    return "(" + ", ".join(columns) + ")"
