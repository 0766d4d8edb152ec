"""`chatwithme prisma export`: the schema.prisma that describes the database at head.

The seed models (Prisma's own schema.prisma, shipped as `prisma/seed.prisma`) keep their
names, fields and relation fields; every column, table, index and foreign key that the
migrations add is appended from the SQLAlchemy models, with the relation fields Prisma needs
on both sides. Output is laid out as `prisma format` lays it out (aligned columns).

Only what Prisma's validator accepts is exported: an index the schema language cannot express
(a GIN index over a plain scalar, which needs btree_gin; a partial, expression or INCLUDE
index) is listed in a comment above its model instead, and `prisma check` adds it back from
the models (`database_only_indexes`), so the database is still compared with all of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Text,
)
from sqlalchemy import Table as SqlTable
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TIMESTAMP
from sqlalchemy.sql.elements import TextClause

from prisma_compat.schema import Attribute, Call, Field, Model, Ref, Schema, parse

HERE = Path(__file__).parent / "prisma"
SEED = HERE / "seed.prisma"
SHIPPED = HERE / "schema.prisma"
HEADER = (
    "// The database at head, as `chatwithme prisma export` describes it: Prisma's seed\n"
    "// models plus ChatWithMe's extensions. Generated; regenerate rather than edit.\n"
)
MODEL_NAMES = {"message_reactions": "MessageReaction"}
# (table, FK columns) -> (field on the child, field on the parent, relation name)
RELATIONS: dict[tuple[str, tuple[str, ...]], tuple[str, str, str | None]] = {
    ("messages", ("replyToId",)): ("replyTo", "replies", "MessageVersions"),
    ("messages", ("parentId",)): ("parent", "children", "MessageTree"),
    ("message_reactions", ("messageId",)): ("message", "reactions", None),
    ("message_reactions", ("userId",)): ("user", "messageReactions", None),
    ("title_usages", ("userId",)): ("user", "titleUsages", None),
    ("title_usages", ("conversationId",)): ("conversation", "titleUsages", None),
    ("tags", ("userId",)): ("user", "tags", None),
    ("conversation_tags", ("conversationId",)): ("conversation", "tags", None),
    ("conversation_tags", ("tagId",)): ("tag", "conversations", None),
    ("conversation_tags", ("userId",)): ("user", "conversationTags", None),
    ("conversation_shares", ("conversationId",)): ("conversation", "shares", None),
    ("conversation_shares", ("userId",)): ("user", "conversationShares", None),
    ("imports", ("userId",)): ("user", "imports", None),
    ("imported_conversations", ("userId",)): ("user", "importedConversations", None),
    ("imported_conversations", ("conversationId",)): ("conversation", "importedFrom", None),
    ("files", ("userId",)): ("user", "files", None),
    ("file_chunks", ("fileId",)): ("file", "chunks", None),
    ("file_chunks", ("userId",)): ("user", "fileChunks", None),
    ("message_files", ("messageId",)): ("message", "files", None),
    ("message_files", ("fileId",)): ("file", "messages", None),
    ("message_files", ("userId",)): ("user", "messageFiles", None),
}
ACTIONS = {"CASCADE": "Cascade", "SET NULL": "SetNull", "RESTRICT": "Restrict",
           "NO ACTION": "NoAction", "SET DEFAULT": "SetDefault"}  # fmt: skip


def _prisma_type(kind: Any) -> str:
    for sql_type, prisma in ((TIMESTAMP, "DateTime"), (JSONB, "Json"), (Boolean, "Boolean"),
                             (BigInteger, "BigInt"), (Integer, "Int"),  # BigInteger first
                             (Double, "Float"), (LargeBinary, "Bytes"),
                             (Text, "String")):  # fmt: skip
        if isinstance(kind, sql_type):
            return prisma
    raise ValueError(f"no Prisma type for {kind!r}")


def _scalar_type(column: Any) -> tuple[str, bool]:
    """(Prisma type, is a list)."""
    if isinstance(column.type, ARRAY):
        return _prisma_type(column.type.item_type), True
    return _prisma_type(column.type), False


def _default(column: Any) -> Any:
    if column.server_default is not None:
        clause = column.server_default.arg
        raw = clause.text if isinstance(clause, TextClause) else str(clause)
        if raw.upper() == "CURRENT_TIMESTAMP":
            return Call("now")
        if raw.startswith("'") and raw.endswith("'"):
            return raw[1:-1]
        if raw.isdigit():
            return int(raw)
        if raw.upper().startswith("ARRAY[]"):
            return []
        return Call("dbgenerated", (raw,))
    if column.primary_key and column.autoincrement is True:
        return Call("autoincrement")  # a serial key the database numbers
    if column.primary_key and column.default is not None:
        return Call("cuid")  # ids are made by the app with prisma_compat.cuid()
    return None


def _field(column: Any, unique: bool, single_key: bool = True) -> Field:
    if column.computed is not None:
        # A generated column (the search vectors): Prisma reads it as Unsupported and
        # never writes it; the expression is kept so `check` can compare it.
        expression = str(column.computed.sqltext)
        return Field(
            column.name,
            "Unsupported",
            optional=True,
            unsupported=column.type.__visit_name__.lower(),
            attributes=[Attribute("default", [Call("dbgenerated", (expression,))])],
        )  # fmt: skip
    prisma_type, is_list = _scalar_type(column)
    found = Field(
        column.name, prisma_type, optional=column.nullable and not is_list, is_list=is_list
    )
    if column.primary_key and single_key:
        found.attributes.append(Attribute("id"))
    default = _default(column)
    if default is not None:
        found.attributes.append(Attribute("default", [default]))
    if unique:
        found.attributes.append(Attribute("unique"))
    return found


def _index_columns(index: Index) -> tuple[str, ...]:
    return tuple(c.name for c in index.columns)


def _has_expression(index: Index) -> bool:
    return any(not isinstance(e, Column) for e in index.expressions)


def _not_expressible(index: Index) -> str | None:
    """Why Prisma's schema language cannot declare `index`, or None when it can."""
    options = index.dialect_options["postgresql"]
    if _has_expression(index):
        return "an expression index"
    if options.get("where") is not None:
        return f"a partial index (WHERE {options['where']})"
    if options.get("include"):
        return "an index with INCLUDE columns"
    if options.get("using") == "gin":
        ops = options.get("ops") or {}
        for column in index.columns:
            # Prisma takes a GIN column only as a list, Json, Unsupported(...) or with `ops`.
            if column.name in ops or column.computed is not None:
                continue
            if not isinstance(column.type, (ARRAY, JSONB)):
                return f"GIN over the {_prisma_type(column.type)} {column.name} needs btree_gin"
    return None


def database_only_indexes(metadata: MetaData) -> dict[str, set[tuple[str, ...]]]:
    """Indexes the migrations make that the export leaves out, as `check` compares them
    (key columns, then INCLUDE columns), by table. Expression indexes are not compared
    (`shape.from_database` skips them too): their key is no list of columns."""
    found: dict[str, set[tuple[str, ...]]] = {}
    for table in metadata.tables.values():
        for index in table.indexes:
            if _not_expressible(index) is None or _has_expression(index):
                continue
            include = tuple(index.dialect_options["postgresql"].get("include") or ())
            columns = _index_columns(index) + tuple(getattr(c, "name", c) for c in include)
            found.setdefault(table.name, set()).add(columns)
    return found


def build(metadata: MetaData) -> Schema:
    """The seed schema, extended with what `metadata` (the models at head) adds."""
    schema = parse(SEED.read_text())
    by_table = {m.db_name: m for m in schema.models.values()}
    for table in sorted(metadata.tables.values(), key=lambda t: (t.name not in by_table, t.name)):
        model = by_table.get(table.name)
        if model is None:
            model = Model(MODEL_NAMES.get(table.name, _pascal(table.name)))
            model.attributes.append(Attribute("@map", [table.name]))
            schema.models[model.name] = model
            by_table[table.name] = model
            new_model = True
        else:
            new_model = False
        _extend(model, table, new_model)
    for table in sorted(metadata.tables.values(), key=lambda t: t.name):
        _add_relations(schema, by_table, table)
    return schema


def _extend(model: Model, table: SqlTable, new_model: bool) -> None:
    known = {f.db_name for f in model.fields}
    single_unique = {
        _index_columns(i)[0] for i in table.indexes if i.unique and len(i.columns) == 1
    }
    insert_at = next(
        (
            i
            for i, f in enumerate(model.fields)
            if f.type[0].isupper() and not _is_scalar_name(f.type)
        ),
        len(model.fields),
    )
    key = [c.name for c in table.primary_key.columns]
    for column in table.columns:
        if column.name in known:
            continue
        unique = new_model and column.name in single_unique
        model.fields.insert(insert_at, _field(column, unique, single_key=len(key) == 1))
        insert_at += 1
    if new_model and len(key) > 1:
        model.attributes.insert(-1, Attribute("@id", [[Ref(c) for c in key]]))
    declared = {
        tuple(str(getattr(r, "name", r)) for r in (a.arg("fields") or []))
        for a in model.attributes
        if a.name in ("@index", "@unique")
    } | {(f.name,) for f in model.fields if f.attribute("unique")}
    left_out = []
    for index in sorted(table.indexes, key=lambda i: str(i.name)):
        columns = _index_columns(index)
        if columns in declared or (index.unique and len(columns) == 1 and new_model):
            continue
        kind = "@unique" if index.unique else "@index"
        options = index.dialect_options["postgresql"]
        ops = options.get("ops") or {}
        fields = [
            Call(c, (), (("ops", Call("raw", (ops[c],))),)) if c in ops else Ref(c) for c in columns
        ]
        if _has_expression(index):  # shown as SQL writes it: `lower(name)`
            fields = [
                Ref(e.name if isinstance(e, Column) else str(e).replace(f"{table.name}.", ""))
                for e in index.expressions
            ]
        kwargs = {"type": Ref("Gin")} if options.get("using") == "gin" else {}
        attribute = Attribute(kind, [fields], kwargs)
        reason = _not_expressible(index)
        if reason is None:
            model.attributes.insert(-1, attribute)
        else:
            left_out += [f"//   {_attribute(attribute)}", f"//     {index.name}: {reason}"]
    if new_model and table.comment:
        model.comment = [f"/// {table.comment}"]
    if left_out:
        model.comment += [
            "// Also in the database, made by the migrations, but left out below because",
            "// Prisma's schema language cannot declare them (`chatwithme prisma check` still",
            "// compares them):",
            *left_out,
        ]


def _is_scalar_name(name: str) -> bool:
    return name in {
        "String",
        "Int",
        "BigInt",
        "Float",
        "Decimal",
        "Boolean",
        "DateTime",
        "Json",
        "Bytes",
    }


def _add_relations(schema: Schema, by_table: dict[str, Model], table: SqlTable) -> None:
    child = by_table[table.name]
    for fk in sorted(table.foreign_key_constraints, key=lambda k: [c.name for c in k.columns]):
        columns = tuple(c.name for c in fk.columns)
        names = RELATIONS.get((table.name, columns))
        if names is None:
            continue  # a seed relation, already declared in seed.prisma
        child_field, parent_field, relation_name = names
        parent = by_table[fk.referred_table.name]
        optional = all(c.nullable for c in fk.columns)
        args: list[Any] = [relation_name] if relation_name else []
        kwargs: dict[str, Any] = {
            "fields": [Ref(c) for c in columns],
            "references": [Ref(e.column.name) for e in fk.elements],
            "onDelete": Ref(ACTIONS[(fk.ondelete or "NO ACTION").upper()]),
        }
        if (fk.onupdate or "").upper() != "CASCADE":
            kwargs["onUpdate"] = Ref(ACTIONS[(fk.onupdate or "NO ACTION").upper()])
        child.fields.append(
            Field(child_field, parent.name, optional=optional,
                  attributes=[Attribute("relation", args, kwargs)])
        )  # fmt: skip
        back = Field(parent_field, child.name, is_list=True)
        if relation_name:
            back.attributes.append(Attribute("relation", [relation_name]))
        parent.fields.append(back)


def _pascal(table: str) -> str:
    words = table.rstrip("s").split("_")
    return "".join(w[:1].upper() + w[1:] for w in words)


# -- rendering, as `prisma format` does ---------------------------------------------------


def _value(value: Any) -> str:
    if isinstance(value, Call):
        parts = [_value(a) for a in value.args] + [f"{k}: {_value(v)}" for k, v in value.kwargs]
        return f"{value.name}({', '.join(parts)})"
    if isinstance(value, Ref):
        return value.name
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def _attribute(attribute: Attribute) -> str:
    text = f"@{attribute.name}"  # block attributes are named "@map", so they print "@@map"
    parts = [_value(a) for a in attribute.args]
    parts += [f"{k}: {_value(v)}" for k, v in attribute.kwargs.items()]
    return f"{text}({', '.join(parts)})" if parts or attribute.name == "default" else text


def _type(found: Field) -> str:
    base = f'Unsupported("{found.unsupported}")' if found.unsupported else found.type
    return base + ("[]" if found.is_list else "?" if found.optional else "")


def render(schema: Schema) -> str:
    out = [HEADER]
    for name, settings in schema.generators.items():
        out.append(_settings_block("generator", name, settings))
    for name, settings in schema.datasources.items():
        out.append(_settings_block("datasource", name, settings))
    for name, values in schema.enums.items():
        out.append("enum " + name + " {\n" + "".join(f"  {v}\n" for v in values) + "}\n")
    for model in schema.models.values():
        name_width = max(len(f.name) for f in model.fields)
        type_width = max(len(_type(f)) for f in model.fields)
        lines = [*model.comment, f"model {model.name} {{"]
        for found in model.fields:
            attributes = " ".join(_attribute(a) for a in found.attributes)
            line = f"  {found.name.ljust(name_width)} {_type(found).ljust(type_width)} {attributes}"
            lines.append(line.rstrip())
        if model.attributes:
            lines.append("")
            lines += [f"  {_attribute(a)}" for a in model.attributes]
        lines.append("}")
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def _settings_block(kind: str, name: str, settings: dict[str, Any]) -> str:
    width = max(len(k) for k in settings)
    body = "".join(f"  {k.ljust(width)} = {_value(v)}\n" for k, v in settings.items())
    return f"{kind} {name} {{\n{body}}}\n"


# -- Prisma 6 or 7 ---------------------------------------------------------------------------

PRISMA_VERSIONS = (6, 7)
DEFAULT_PRISMA = 6
# Prisma 7's generator writes TypeScript into the app (`output` is required), next to prisma/.
PRISMA_7_GENERATOR = {"provider": "prisma-client", "output": "../generated/prisma"}


def export(metadata: MetaData, prisma: int = DEFAULT_PRISMA) -> str:
    """schema.prisma for Prisma 6 (`url` in the datasource, `prisma-client-js`) or for Prisma 7
    (no `url`: it refuses one and reads it from prisma.config.ts, see `config_ts`; the
    `prisma-client` generator with its `output`)."""
    if prisma not in PRISMA_VERSIONS:
        raise ValueError(f"Prisma {prisma}: only {' and '.join(map(str, PRISMA_VERSIONS))}")
    schema = build(metadata)
    if prisma == 7:
        schema.generators["client"] = dict(PRISMA_7_GENERATOR)
        for settings in schema.datasources.values():
            for key in ("url", "directUrl", "shadowDatabaseUrl"):
                settings.pop(key, None)
    return render(schema)


def config_ts(schema_path: str = "prisma/schema.prisma") -> str:
    """prisma.config.ts for Prisma 7, next to package.json; `schema_path` is relative to it."""
    return f"""\
// prisma.config.ts, as `chatwithme prisma export --prisma 7` writes it. Prisma 7 takes the
// connection URL from here, not from schema.prisma, and no longer reads .env by itself
// (add `import "dotenv/config";` above if you keep DATABASE_URL in a .env file).
import {{ defineConfig }} from "prisma/config";

export default defineConfig({{
  schema: {json.dumps(schema_path)},
  datasource: {{
    // The same database as the ChatWithMe API. The API owns the migrations: run
    // `chatwithme db upgrade`, never `prisma migrate` or `prisma db push`, on it.
    // process.env rather than env(): env() throws when it is unset, and `prisma generate`
    // (at build time) needs no database.
    url: process.env.DATABASE_URL,
  }},
}});
"""
