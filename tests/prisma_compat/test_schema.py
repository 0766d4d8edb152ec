# ruff: noqa: E501  (schema text is written as Prisma formats it)
"""The Prisma schema parser."""

from __future__ import annotations

import pytest

from prisma_compat.export import SEED
from prisma_compat.schema import Call, PrismaSchemaError, Ref, parse

EXAMPLE = """
// a comment
generator client {
  provider = "prisma-client-js"
}

datasource db {
  provider = "postgresql"
  url      = env("DATABASE_URL")
}

enum Role {
  USER
  ADMIN
}

/// documentation comment
model Post {
  id        Int      @id @default(autoincrement())
  slug      String   @unique @db.VarChar(120)
  role      Role     @default(USER)
  tags      String[] @default([])
  search    Unsupported("tsvector")?
  score     Float    @default(1.5) @map("post_score")
  published Boolean  @default(false)
  createdAt DateTime @default(now()) @db.Timestamptz(6)
  authorId  String
  author    Author   @relation(fields: [authorId], references: [key], onDelete: Cascade, onUpdate: NoAction)

  @@unique([authorId, slug])
  @@index([createdAt])
  @@map("posts")
}

model Author {
  key   String @default(uuid())
  name  String
  posts Post[]

  @@id([key, name])
}
"""


def test_the_seed_schema_parses_into_seven_models() -> None:
    schema = parse(SEED.read_text())
    assert [m.db_name for m in schema.models.values()] == [
        "users", "accounts", "sessions", "verificationtokens",
        "conversations", "messages", "user_preferences",
    ]  # fmt: skip
    assert schema.datasources["db"]["url"] == Call("env", ("DATABASE_URL",))


def test_fields_types_and_attributes() -> None:
    schema = parse(EXAMPLE)
    post = schema.models["Post"]
    assert schema.enums == {"Role": ["USER", "ADMIN"]}
    assert post.db_name == "posts"
    assert post.field("id").attribute("default").args == [Call("autoincrement")]  # type: ignore[union-attr]
    assert post.field("slug").native_type.name == "db.VarChar"  # type: ignore[union-attr]
    assert post.field("slug").native_type.args == [120]  # type: ignore[union-attr]
    assert post.field("role").attribute("default").args == [Ref("USER")]  # type: ignore[union-attr]
    assert post.field("tags").is_list and post.field("tags").attribute("default").args == [[]]  # type: ignore[union-attr]
    assert post.field("search").unsupported == "tsvector" and post.field("search").optional
    assert post.field("score").db_name == "post_score"
    assert post.field("published").attribute("default").args == [False]  # type: ignore[union-attr]
    relation = post.field("author").attribute("relation")
    assert relation is not None
    assert relation.kwargs == {
        "fields": [Ref("authorId")], "references": [Ref("key")],
        "onDelete": Ref("Cascade"), "onUpdate": Ref("NoAction"),
    }  # fmt: skip
    assert [(a.name, a.args) for a in post.attributes] == [
        ("@unique", [[Ref("authorId"), Ref("slug")]]),
        ("@index", [[Ref("createdAt")]]),
        ("@map", ["posts"]),
    ]
    assert schema.models["Author"].attribute("@id")[0].args == [[Ref("key"), Ref("name")]]


@pytest.mark.parametrize(
    ("source", "line", "column", "complaint"),
    [
        ("model A {\n  id String @id(\n}\n", 2, 17, "expected a value"),
        ("model A {\n  id String\n  id Int\n}\n", 1, 7, "defined twice"),
        ("table A {\n}\n", 1, 1, "unknown block"),
        ("model A {\n  id String $\n}\n", 2, 13, "unexpected character"),
        ("model A {\n  id\n}\n", 2, 5, "expected 'ident'"),
        ('model A {\n  id String @default("x") extra\n}\n', 2, 27, "end of a line"),
    ],
)
def test_bad_input_names_line_and_column(
    source: str, line: int, column: int, complaint: str
) -> None:
    with pytest.raises(PrismaSchemaError) as error:
        parse(source)
    assert (error.value.line, error.value.column) == (line, column)
    assert complaint in str(error.value)
