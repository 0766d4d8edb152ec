"""The Prisma schema language, as far as this project needs it: a parser with positions.

Supported: `datasource`, `generator` (key = value), `enum`, `model`; fields `name Type`,
`Type?`, `Type[]`, `Unsupported("...")`; field attributes `@id`, `@default(...)`, `@unique`,
`@updatedAt`, `@map("...")`, `@db.X` / `@db.X(args)`, `@relation(...)`; block attributes
`@@map`, `@@id`, `@@unique`, `@@index`; `//` and `///` comments. Not supported: `view`,
`type` (composite types, MongoDB only), multi-file schemas, `@@schema`, `@@ignore` and
`@ignore` semantics (parsed as plain attributes), `@@fulltext`, and `@default` functions other
than `cuid()`, `uuid()`, `now()`, `autoincrement()`, `dbgenerated("...")` and literals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


class PrismaSchemaError(ValueError):
    """Bad input, with the line and column where it went wrong."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class Call:
    """A function call in an attribute argument: `cuid()`, `dbgenerated("...")`, and field
    references with arguments in index lists: `content(ops: raw("gin_trgm_ops"))`."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Ref:
    """A bare identifier: `Cascade`, `id`, `true` stays a bool."""

    name: str


@dataclass(slots=True)
class Attribute:
    name: str  # "id", "default", "db.Text", "@map" for block attributes
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)

    def arg(self, key: str, position: int = 0) -> Any:
        if key in self.kwargs:
            return self.kwargs[key]
        return self.args[position] if len(self.args) > position else None


@dataclass(slots=True)
class Field:
    name: str
    type: str
    optional: bool = False
    is_list: bool = False
    unsupported: str | None = None  # the type text of Unsupported("...")
    attributes: list[Attribute] = field(default_factory=list)
    line: int = 0

    def attribute(self, name: str) -> Attribute | None:
        return next((a for a in self.attributes if a.name == name), None)

    @property
    def db_name(self) -> str:
        mapped = self.attribute("map")
        return str(mapped.arg("name")) if mapped else self.name

    @property
    def native_type(self) -> Attribute | None:
        return next((a for a in self.attributes if a.name.startswith("db.")), None)


@dataclass(slots=True)
class Model:
    name: str
    fields: list[Field] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    line: int = 0
    comment: list[str] = field(default_factory=list)  # lines written above the block (export)

    def attribute(self, name: str) -> list[Attribute]:
        return [a for a in self.attributes if a.name == name]

    @property
    def db_name(self) -> str:
        mapped = self.attribute("@map")
        return str(mapped[0].arg("name")) if mapped else self.name

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


@dataclass(slots=True)
class Schema:
    models: dict[str, Model] = field(default_factory=dict)
    enums: dict[str, list[str]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    generators: dict[str, dict[str, Any]] = field(default_factory=dict)


_TOKEN = re.compile(
    r"""
    (?P<comment>//[^\n]*)
  | (?P<newline>\n)
  | (?P<space>[ \t\r]+)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<attr>@@?[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[{}()\[\],:=?])
    """,
    re.VERBOSE,
)


@dataclass(slots=True)
class _Token:
    kind: str
    text: str
    line: int
    column: int


def _tokens(source: str) -> list[_Token]:
    found: list[_Token] = []
    line, line_start, position = 1, 0, 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        column = position - line_start + 1
        if match is None:
            raise PrismaSchemaError(f"unexpected character {source[position]!r}", line, column)
        kind = match.lastgroup or ""
        text = match.group()
        if kind == "newline":
            found.append(_Token("newline", text, line, column))
            line += 1
            line_start = match.end()
        elif kind not in ("space", "comment"):
            found.append(_Token(kind, text, line, column))
        position = match.end()
    found.append(_Token("eof", "", line, position - line_start + 1))
    return found


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = _tokens(source)
        self.index = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def fail(self, message: str, token: _Token | None = None) -> PrismaSchemaError:
        token = token or self.current
        return PrismaSchemaError(message, token.line, token.column)

    def advance(self) -> _Token:
        token = self.current
        self.index += 1
        return token

    def skip_newlines(self) -> None:
        while self.current.kind == "newline":
            self.index += 1

    def expect(self, kind: str, text: str | None = None) -> _Token:
        token = self.current
        if token.kind != kind or (text is not None and token.text != text):
            wanted = text or kind
            got = token.text or token.kind
            raise self.fail(f"expected {wanted!r}, found {got!r}")
        return self.advance()

    def parse(self) -> Schema:
        schema = Schema()
        self.skip_newlines()
        while self.current.kind != "eof":
            keyword = self.expect("ident")
            name = self.expect("ident")
            if keyword.text == "model":
                if name.text in schema.models:
                    raise self.fail(f"model {name.text} is defined twice", name)
                schema.models[name.text] = self.model(name)
            elif keyword.text == "enum":
                schema.enums[name.text] = self.enum()
            elif keyword.text in ("datasource", "generator"):
                target = schema.datasources if keyword.text == "datasource" else schema.generators
                target[name.text] = self.settings_block()
            else:
                raise self.fail(f"unknown block {keyword.text!r}", keyword)
            self.skip_newlines()
        return schema

    def block_lines(self) -> None:
        self.expect("punct", "{")
        self.expect("newline")

    def settings_block(self) -> dict[str, Any]:
        self.block_lines()
        values: dict[str, Any] = {}
        self.skip_newlines()
        while not (self.current.kind == "punct" and self.current.text == "}"):
            key = self.expect("ident").text
            self.expect("punct", "=")
            values[key] = self.value()
            self.end_of_line()
            self.skip_newlines()
        self.advance()
        return values

    def enum(self) -> list[str]:
        self.block_lines()
        values: list[str] = []
        self.skip_newlines()
        while not (self.current.kind == "punct" and self.current.text == "}"):
            if self.current.kind == "attr":
                self.attribute()
            else:
                values.append(self.expect("ident").text)
            self.end_of_line()
            self.skip_newlines()
        self.advance()
        return values

    def model(self, name: _Token) -> Model:
        self.block_lines()
        model = Model(name.text, line=name.line)
        self.skip_newlines()
        while not (self.current.kind == "punct" and self.current.text == "}"):
            if self.current.kind == "attr" and self.current.text.startswith("@@"):
                model.attributes.append(self.attribute())
            else:
                model.fields.append(self.field())
            self.end_of_line()
            self.skip_newlines()
        self.advance()
        names = [f.name for f in model.fields]
        for duplicate in {n for n in names if names.count(n) > 1}:
            raise self.fail(f"field {duplicate} is defined twice in {model.name}", name)
        return model

    def field(self) -> Field:
        name = self.expect("ident")
        type_token = self.expect("ident")
        found = Field(name.text, type_token.text, line=name.line)
        if type_token.text == "Unsupported":
            self.expect("punct", "(")
            found.unsupported = self.string(self.expect("string"))
            self.expect("punct", ")")
        if self.current.text == "[":
            self.advance()
            self.expect("punct", "]")
            found.is_list = True
        elif self.current.text == "?":
            self.advance()
            found.optional = True
        while self.current.kind == "attr":
            if self.current.text.startswith("@@"):
                raise self.fail("a block attribute (@@) cannot follow a field")
            found.attributes.append(self.attribute())
        return found

    def attribute(self) -> Attribute:
        token = self.advance()
        name = token.text.lstrip("@")
        if token.text.startswith("@@"):
            name = "@" + name  # keep block attributes apart: "@map", "@unique"
        attribute = Attribute(name)
        if self.current.text == "(":
            self.arguments(attribute)
        return attribute

    def arguments(self, attribute: Attribute) -> None:
        self.expect("punct", "(")
        while self.current.text != ")":
            if self.current.kind == "ident" and self.tokens[self.index + 1].text == ":":
                key = self.advance().text
                self.advance()
                attribute.kwargs[key] = self.value()
            else:
                attribute.args.append(self.value())
            if self.current.text == ",":
                self.advance()
            elif self.current.text != ")":
                raise self.fail(f"expected ',' or ')', found {self.current.text!r}")
        self.advance()

    def value(self) -> Any:
        token = self.current
        if token.kind == "string":
            self.advance()
            return self.string(token)
        if token.kind == "number":
            self.advance()
            return float(token.text) if "." in token.text else int(token.text)
        if token.text == "[":
            self.advance()
            items = []
            while self.current.text != "]":
                items.append(self.value())
                if self.current.text == ",":
                    self.advance()
                elif self.current.text != "]":
                    raise self.fail(f"expected ',' or ']', found {self.current.text!r}")
            self.advance()
            return items
        if token.kind == "ident":
            self.advance()
            if self.current.text == "(":
                self.advance()
                args: list[Any] = []
                kwargs: list[tuple[str, Any]] = []
                while self.current.text != ")":
                    if self.current.kind == "ident" and self.tokens[self.index + 1].text == ":":
                        key = self.advance().text
                        self.advance()
                        kwargs.append((key, self.value()))
                    else:
                        args.append(self.value())
                    if self.current.text == ",":
                        self.advance()
                    elif self.current.text != ")":
                        raise self.fail(f"expected ',' or ')', found {self.current.text!r}")
                self.advance()
                return Call(token.text, tuple(args), tuple(kwargs))
            if token.text in ("true", "false"):
                return token.text == "true"
            return Ref(token.text)
        raise self.fail(f"expected a value, found {token.text or token.kind!r}")

    @staticmethod
    def string(token: _Token) -> str:
        return bytes(token.text[1:-1], "utf-8").decode("unicode_escape")

    def end_of_line(self) -> None:
        if self.current.kind not in ("newline", "eof") and self.current.text != "}":
            raise self.fail(f"unexpected {self.current.text!r} at the end of a line")


def parse(source: str) -> Schema:
    """Parse schema.prisma text; raises PrismaSchemaError with line and column."""
    return _Parser(source).parse()
